"""Each failure condition raises its own error type, against real peers on real sockets.

Callers (probes, load statistics, steps) now decide by type and attributes, so the
types must be right whichever requestor (pynetdicom via ``associate``, the fast
client, the MLLP clients) met whichever peer (pynetdicom, the fast acceptor, DCMTK).
A rejection's fields are compared with the A-ASSOCIATE-RJ bytes the acceptor itself
sends to a raw socket, not with what our decoder thinks it sent. Timeouts are
injected short and checked by type, never by elapsed time.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.sop_class import CTImageStorage, Verification

from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.fast import FastClient, FastServer, ServerSettings, SupportedContext
from simulators.dicom.fast.negotiation import associate_rq_bytes, build_contexts
from simulators.errors import (
    AssociationError, AssociationRejected, DicomTimeout, DicomUnreachable, MllpError,
    MllpTimeout, MllpUnreachable, PeerUnreachable, PortInUse, StatusError, Timeout,
)
from simulators.events import EventBus, Exchange
from simulators.hl7.mllp import AsyncMllpClient, MllpClient, MllpServer
from simulators.kpi import probes_dicom
from simulators.kpi.canary import new_cycle
from simulators.kpi.target import ProbeTarget
from simulators.dicom.qrscu import QrClient
from simulators.peers.dcmtk import dcmtk_server
from tests.helpers import free_port, require_tool, start_server

VERIFICATION = "1.2.840.10008.1.1"
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
HL7 = "MSH|^~\\&|A|B|C|D|20240101000000||ADT^A01|X1|P|2.5.1\rPID|1||P1\r"
SHORT = 0.3  # seconds: the injected timeout of every "silent peer" case


# ------------------------------------------------------------------------------ peers
class SilentPeer:
    """Accepts TCP connections and reads whatever comes, but never answers a byte."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            self._connections.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def __enter__(self) -> "SilentPeer":
        return self

    def __exit__(self, *exc: object) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown does.
        # No thread may outlive the test: the legacy seeder forks workers only when its
        # process runs no other thread.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for conn in self._connections:
            conn.close()
        self._acceptor.join(5)


def wire_rejection(port: int, calling: str, called: str) -> tuple[int, int, int]:
    """(result, source, reason) of the A-ASSOCIATE-RJ the acceptor sends, read off a raw
    socket (PS3.8 9.3.4: type 03, length 4, then reserved, result, source, reason)."""
    request = associate_rq_bytes(calling, called, build_contexts([(VERIFICATION, UNCOMPRESSED)]),
                                 16384)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while len(answer) < 10:
            chunk = sock.recv(10 - len(answer))
            assert chunk, "the acceptor closed without answering"
            answer += chunk
    pdu_type, length = struct.unpack(">BxI", answer[:6])
    assert (pdu_type, length) == (0x03, 4), answer
    return answer[7], answer[8], answer[9]


DCMQRSCP_CONFIG = """\
NetworkTCPPort  = 0
MaxPDUSize      = 16384
MaxAssociations = 16

HostTable BEGIN
allowed1 = (ALLOWED, localhost, 0)
allowednodes = allowed1
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
QRSCP  {db}  RW (10, 10mb)  allowednodes
AETable END
"""


@contextmanager
def dcmqrscp(directory: Path) -> Iterator[int]:
    """DCMTK's Q/R SCP as ``QRSCP``, accepting the calling AE ``ALLOWED`` only."""
    require_tool("dcmqrscp")
    db = directory / "db"
    db.mkdir()
    config = directory / "dcmqrscp.cfg"
    config.write_text(DCMQRSCP_CONFIG.format(db=db))
    port = free_port()
    with dcmtk_server(["dcmqrscp", "-c", str(config)], port):
        yield port


@contextmanager
def pynetdicom_acceptor() -> Iterator[int]:
    ae = make_ae(AeSettings("ACCEPTOR", allowed_calling=frozenset({"ALLOWED"})))
    ae.add_supported_context(Verification)
    server = start_server(ae, "127.0.0.1", 0)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@contextmanager
def fast_acceptor(**settings: Any) -> Iterator[FastServer]:
    contexts = (SupportedContext(VERIFICATION, tuple(UNCOMPRESSED)),)
    server = FastServer(ServerSettings(ae_title="ACCEPTOR", contexts=contexts, **settings),
                        events=EventBus())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------ requestors
def pynetdicom_connect(port: int, calling: str, called: str, timeout: float = 5.0) -> None:
    ae = make_ae(AeSettings(calling, acse_timeout=timeout, connection_timeout=timeout))
    ae.add_requested_context(Verification)
    try:
        associate(ae, "127.0.0.1", port, called).release()
    finally:
        ae.shutdown()


def fast_connect(port: int, calling: str, called: str, timeout: float = 5.0,
                 events: EventBus | None = None) -> None:
    with FastClient(events=events or EventBus()) as client:
        client.connect("127.0.0.1", port, calling, called, [(VERIFICATION, UNCOMPRESSED)],
                       timeout=timeout)


REQUESTORS: dict[str, Callable[..., None]] = {"associate": pynetdicom_connect,
                                              "fast": fast_connect}


# ------------------------------------------------------------------------------ unreachable
@pytest.mark.parametrize("requestor", REQUESTORS)
def test_a_closed_port_is_an_unreachable_dicom_peer(requestor: str) -> None:
    with pytest.raises(PeerUnreachable) as caught:
        REQUESTORS[requestor](free_port(), "CALLER", "NOBODY", 2.0)
    assert isinstance(caught.value, DicomUnreachable)
    assert isinstance(caught.value, AssociationError)  # what callers caught before
    assert not isinstance(caught.value, Timeout)
    assert "unreachable" in caught.value.message  # the message people read is unchanged


def test_a_closed_port_is_an_unreachable_mllp_peer() -> None:
    port = free_port()
    with pytest.raises(PeerUnreachable) as caught:
        MllpClient("127.0.0.1", port, timeout=2.0, events=EventBus()).send(HL7)
    assert isinstance(caught.value, MllpUnreachable) and isinstance(caught.value, MllpError)

    async def send() -> str:
        async with AsyncMllpClient("127.0.0.1", port, timeout=2.0, events=EventBus()) as client:
            return await client.send(HL7)
    with pytest.raises(MllpUnreachable):
        asyncio.run(send())


# ------------------------------------------------------------------------------ rejected
@pytest.mark.parametrize("requestor", REQUESTORS)
@pytest.mark.parametrize("acceptor", ["pynetdicom", "fast"])
def test_an_unknown_calling_ae_is_rejected_with_the_fields_the_acceptor_sent(
        requestor: str, acceptor: str) -> None:
    events, seen = EventBus(), list[Exchange]()
    events.subscribe(seen.append)
    with (pynetdicom_acceptor() if acceptor == "pynetdicom"
          else _port_of(fast_acceptor(allowed_calling=frozenset({"ALLOWED"})))) as port:
        sent = wire_rejection(port, "STRANGER", "ACCEPTOR")
        with pytest.raises(AssociationRejected) as caught:
            if requestor == "fast":
                fast_connect(port, "STRANGER", "ACCEPTOR", events=events)
            else:
                pynetdicom_connect(port, "STRANGER", "ACCEPTOR")
    rejected = caught.value
    # permanent (1), service user (1), calling AE title not recognised (3): PS3.8 table 9-21
    assert sent == (1, 1, 3)
    assert (rejected.result, rejected.source, rejected.reason) == sent
    assert isinstance(rejected, AssociationError)
    assert rejected.message == "association rejected: permanent, calling AE title not recognised"
    if requestor == "fast":  # what load statistics group errors by, recorded from the type
        (associate_event,) = [e for e in seen if e.kind == "dicom.associate"]
        assert associate_event.detail["rejection"] == "permanent, calling AE title not recognised"


@pytest.mark.dcmtk
@pytest.mark.parametrize("requestor", REQUESTORS)
def test_dcmtk_rejection_fields_come_through_as_sent(requestor: str, tmp_path: Path) -> None:
    with dcmqrscp(tmp_path) as port:
        sent = wire_rejection(port, "STRANGER", "QRSCP")
        with pytest.raises(AssociationRejected) as caught:
            REQUESTORS[requestor](port, "STRANGER", "QRSCP")
    assert sent[:2] == (1, 1)  # permanent, by the service user (DCMTK names reason 7 here)
    assert (caught.value.result, caught.value.source, caught.value.reason) == sent


def test_a_full_acceptor_rejects_transiently() -> None:
    with fast_acceptor(max_associations=1) as server, FastClient(events=EventBus()) as held:
        held.connect("127.0.0.1", server.port, "ALLOWED", "ACCEPTOR",
                     [(VERIFICATION, UNCOMPRESSED)])
        sent = wire_rejection(server.port, "ALLOWED", "ACCEPTOR")
        with pytest.raises(AssociationRejected) as caught:
            fast_connect(server.port, "ALLOWED", "ACCEPTOR")
    assert sent == (2, 3, 2)  # transient, provider (presentation), local limit exceeded
    assert (caught.value.result, caught.value.source, caught.value.reason) == sent


# ------------------------------------------------------------------------------ timeouts
@pytest.mark.parametrize("requestor", REQUESTORS)
def test_a_peer_that_never_answers_the_association_request_is_a_timeout(requestor: str) -> None:
    with SilentPeer() as peer:
        with pytest.raises(Timeout) as caught:
            REQUESTORS[requestor](peer.port, "CALLER", "SILENT", SHORT)
    assert isinstance(caught.value, DicomTimeout)
    assert isinstance(caught.value, AssociationError) and isinstance(caught.value, TimeoutError)


def test_a_dimse_answer_that_does_not_come_is_a_timeout() -> None:
    async def slow_echo(request: Any) -> int:
        await asyncio.sleep(3)
        return 0x0000

    with fast_acceptor() as server:
        server.handle("C-ECHO", slow_echo)
        with FastClient(events=EventBus(), dimse_timeout=SHORT) as client:
            client.connect("127.0.0.1", server.port, "CALLER", "ACCEPTOR",
                           [(VERIFICATION, UNCOMPRESSED)])
            with pytest.raises(DicomTimeout):
                client.echo()


def test_an_mllp_peer_that_never_replies_is_a_timeout() -> None:
    with SilentPeer() as peer:
        with pytest.raises(Timeout) as caught:
            MllpClient("127.0.0.1", peer.port, timeout=SHORT, events=EventBus()).send(HL7)
        assert isinstance(caught.value, MllpTimeout) and isinstance(caught.value, MllpError)

        async def send() -> str:
            async with AsyncMllpClient("127.0.0.1", peer.port, timeout=SHORT,
                                       events=EventBus()) as client:
                return await client.send(HL7)
        with pytest.raises(MllpTimeout):
            asyncio.run(send())


# ------------------------------------------------------------------------------ status
def test_a_refused_c_store_is_a_status_error_with_the_peers_status() -> None:
    """A pynetdicom storage SCP out of resources answers A702 to every C-STORE."""
    ae = make_ae(AeSettings("FULLSCP"))
    ae.add_supported_context(Verification)
    ae.add_supported_context(CTImageStorage, UNCOMPRESSED)
    ae.add_supported_context("1.2.840.10008.5.1.4.1.2.2.1", UNCOMPRESSED)  # study root find
    server = start_server(ae, "127.0.0.1", 0, [(evt.EVT_C_STORE, lambda event: 0xA702)])
    try:
        target = ProbeTarget("full", AeAddress(ae_title="FULLSCP", host="127.0.0.1",
                                               port=server.server_address[1]),
                             timeout=5.0)
        cycle = new_cycle()
        with pytest.raises(StatusError) as caught:
            probes_dicom.store_to_queryable(target, cycle, cycle.images(1, 32), EventBus())
    finally:
        server.shutdown()
    assert caught.value.status == 0xA702
    assert caught.value.context["status"] == "0xA702"  # the form reports show


@pytest.mark.dcmtk
def test_a_failed_c_find_at_dcmtk_is_a_status_error(tmp_path: Path) -> None:
    with dcmqrscp(tmp_path) as port:
        session = QrClient(AeAddress(ae_title="QRSCP", host="127.0.0.1", port=port), "ALLOWED",
                           EventBus(), "migration", timeout=5.0, keep_open=True)
        try:
            with pytest.raises(StatusError) as caught:
                session.find_matches("BOGUS", {}, keys=["StudyInstanceUID"])
        finally:
            session.close()
    assert caught.value.status == 0xC000  # dcmqrscp: unable to process


# ------------------------------------------------------------------------------ port in use
def test_every_listener_says_port_in_use_with_host_and_port() -> None:
    """pacsim's listeners: the one DICOM acceptor stack and MLLP (HTTP: test_busy_ports)."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        starts: dict[str, Callable[[], object]] = {
            "fast": lambda: FastServer(ServerSettings(ae_title="TAKEN", port=port)).start(),
            "mllp": lambda: MllpServer(lambda text: text, "127.0.0.1", port).start(),
        }
        for name, start in starts.items():
            with pytest.raises(PortInUse) as caught:
                start()
            assert (caught.value.host, caught.value.port) == ("127.0.0.1", port), name


@contextmanager
def _port_of(server_context: Any) -> Iterator[int]:
    with server_context as server:
        yield server.port
