"""Issue 13, defect 3: idle, slow or hostile TCP clients never lock out others.

Reproduced from outside: ~50 connections that never send an A-ASSOCIATE-RQ used to
take every association slot of the archive and the RIS, so real requestors got
"local limit exceeded" until ARTIM (30 s) cut the idle ones. Every test here opens
real sockets on loopback and proves *order*: the real request is answered while the
idle sockets are demonstrably still open (no wall-clock upper bounds).
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import Verification

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.dicom.fast import FastClient
from simulators.dicom.fast.acceptance import SupportedContext
from simulators.dicom.fast.server import FastServer, ServerSettings
from simulators.events import EventBus
from simulators.faults.raw_dicom import RawAssociation
from simulators.hl7 import messages
from simulators.hl7.ack import ack
from simulators.hl7.er7 import ack_code
from simulators.hl7.mllp import MllpClient, MllpServer
from simulators.peers.dcmtk import run_dcmtk
from tests.helpers import require_tool
from tests.integration.test_ris import make_order
from tests.unit.test_hl7_messages import sample_patient

IDLE = 300
VERIFY = (Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])


def _open_idle(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` TCP connections that never send a byte (what the attacker did)."""
    return [socket.create_connection((host, port), timeout=10) for _ in range(count)]


def _still_open(sockets: list[socket.socket]) -> bool:
    """True when no socket has been closed by the server (a read would block, not EOF)."""
    for sock in sockets:
        sock.setblocking(False)
        try:
            if sock.recv(1, socket.MSG_PEEK) == b"":
                return False
        except BlockingIOError:
            pass
        finally:
            sock.setblocking(True)
    return True


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _fast_echo(host: str, port: int, called: str) -> int:
    with FastClient(events=EventBus()) as client:
        client.connect(host, port, "ECHOSCU", called, [VERIFY])
        return client.echo()


@pytest.fixture
def idle_archive(tmp_path: Path) -> Iterator[tuple[Archive, list[socket.socket]]]:
    with Archive(ArchiveConfig(storage_dir=tmp_path / "arc"), events=EventBus()) as archive:
        idle = _open_idle("127.0.0.1", archive.port, IDLE)
        try:
            yield archive, idle
        finally:
            _close(idle)


# ---------------------------------------------------------------------- DICOM
def test_archive_answers_a_c_echo_while_300_idle_sockets_are_open(
        idle_archive: tuple[Archive, list[socket.socket]]) -> None:
    archive, idle = idle_archive
    assert archive.config.max_associations == 50  # the default that 300 used to exhaust
    assert _fast_echo("127.0.0.1", archive.port, archive.config.ae_title) == 0x0000
    assert _still_open(idle)  # the echo was served while every idle socket was held


@pytest.mark.dcmtk
def test_echoscu_is_accepted_by_the_archive_while_300_idle_sockets_are_open(
        idle_archive: tuple[Archive, list[socket.socket]]) -> None:
    require_tool("echoscu")
    archive, idle = idle_archive
    result = run_dcmtk("echoscu", "-aec", archive.config.ae_title, "127.0.0.1",
                       str(archive.port), timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _still_open(idle)


def test_ris_answers_a_c_echo_and_an_orm_while_300_idle_sockets_are_open_on_each_port() -> None:
    with Ris(RisConfig(name="ris-idle"), events=EventBus()) as ris:
        host, port = ris.dicom_address
        hl7_host, hl7_port = ris.hl7_address
        idle = _open_idle(host, port, IDLE) + _open_idle(hl7_host, hl7_port, IDLE)
        try:
            assert _fast_echo(host, port, ris.config.ae_title) == 0x0000
            with MllpClient(hl7_host, hl7_port, timeout=30) as client:
                reply = client.send(messages.orm_o01(make_order(1)))
            assert ack_code(reply) == "AA"
            assert _still_open(idle)
        finally:
            _close(idle)


def _fast_server(events: EventBus, **settings: object) -> FastServer:
    contexts = (SupportedContext(Verification, (ExplicitVRLittleEndian, ImplicitVRLittleEndian)),)
    return FastServer(ServerSettings(ae_title="IDLE_SCP", contexts=contexts, **settings),  # type: ignore[arg-type]
                      events=events, actor="idle-test")


def test_a_connection_silent_past_artim_is_closed_logged_and_emitted(
        caplog: pytest.LogCaptureFixture) -> None:
    events, seen = EventBus(), []
    events.subscribe(seen.append)
    with _fast_server(events, artim_timeout=0.5) as server, caplog.at_level(logging.INFO):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as silent:
            assert silent.recv(16) == b""  # EOF: the server closed it
        assert time.monotonic() - started >= 0.5  # not before ARTIM expired
        assert _fast_echo("127.0.0.1", server.port, "IDLE_SCP") == 0x0000
    closed = [e for e in seen if e.kind == "dicom.artim-expired"]
    assert len(closed) == 1 and closed[0].outcome == "failed" and closed[0].peer
    assert any("ARTIM" in record.getMessage() for record in caplog.records)


def test_association_limit_still_applies_to_associations_with_100_idle_sockets_open() -> None:
    with _fast_server(EventBus(), max_associations=2) as server:
        idle = _open_idle("127.0.0.1", server.port, 100)
        held: list[RawAssociation] = []
        try:
            for n in range(2):  # idle sockets first: they must not have taken these slots
                raw = RawAssociation("127.0.0.1", server.port, timeout=30)
                held.append(raw)
                answer = raw.associate(f"HELD{n}", "IDLE_SCP", [VERIFY])
                assert answer.kind == "accepted", answer.describe()
            assert server.active_associations == 2
            with RawAssociation("127.0.0.1", server.port, timeout=30) as third:
                answer = third.associate("THIRD", "IDLE_SCP", [VERIFY])
                assert (answer.kind, answer.reject) == ("rejected", (2, 3, 2))
            assert _still_open(idle)
        finally:
            for raw in held:
                raw.close()
            _close(idle)


def test_connections_past_the_unassociated_cap_are_closed_at_once() -> None:
    with _fast_server(EventBus(), max_unassociated=5) as server:
        idle = _open_idle("127.0.0.1", server.port, 5)
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as extra:
                assert extra.recv(16) == b""  # closed, not queued until ARTIM
            assert _still_open(idle)
            assert server.unassociated_connections == 5
        finally:
            _close(idle)
        deadline = time.monotonic() + 10  # a wait for the server to see the FINs, not a bound
        while server.unassociated_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _fast_echo("127.0.0.1", server.port, "IDLE_SCP") == 0x0000


# ---------------------------------------------------------------------- MLLP
def test_mllp_acks_an_adt_while_300_idle_connections_are_open() -> None:
    received: list[str] = []

    def handler(text: str) -> str:
        received.append(text)
        return ack(text, "AA")

    with MllpServer(handler, events=EventBus()) as server:
        host, port = server.address
        idle = _open_idle(host, port, IDLE)
        try:
            with MllpClient(host, port, timeout=30) as client:
                reply = client.send(messages.adt("A01", sample_patient()))
            assert ack_code(reply) == "AA" and len(received) == 1
            assert _still_open(idle)
        finally:
            _close(idle)


def test_mllp_idle_timeout_closes_a_quiet_connection_and_the_next_sender_is_served() -> None:
    """Opt-in reclaiming of abandoned sockets (off by default: HL7 senders keep quiet
    persistent connections)."""
    with MllpServer(lambda text: ack(text, "AA"), idle_timeout=0.5, events=EventBus()) as server:
        host, port = server.address
        started = time.monotonic()
        with socket.create_connection((host, port), timeout=30) as quiet:
            assert quiet.recv(16) == b""  # EOF: closed by the server
        assert time.monotonic() - started >= 0.5
        with MllpClient(host, port, timeout=30) as client:
            assert ack_code(client.send(messages.adt("A08", sample_patient()))) == "AA"


def test_an_association_request_trickled_slower_than_artim_is_cut_at_artim() -> None:
    """ARTIM is one deadline for the whole RQ: a header then a byte now and then
    (slowloris) cannot hold the connection for the 30 s DIMSE stall timeout."""
    with _fast_server(EventBus(), artim_timeout=0.5, dimse_timeout=120) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
            slow.sendall(bytes([0x01, 0, 0, 0, 0, 200]))  # A-ASSOCIATE-RQ header, 200 bytes due
            sent = 0
            slow.settimeout(0.05)
            while sent < 200:  # one byte per 0.05 s: each gap far inside the stall timeout
                try:
                    closed = slow.recv(16) == b""
                except TimeoutError:
                    closed = False
                if closed:
                    break
                slow.sendall(b"\x00")
                sent += 1
            assert sent < 200  # the server closed it before the RQ was complete
            assert server.unassociated_connections <= 1
