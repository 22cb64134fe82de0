"""FastServer, the asyncio acceptor, against real requestors on loopback.

Requestors: DCMTK echoscu, pynetdicom AEs, our own FastAssociation and raw sockets
for what no well-behaved library sends (garbage, oversized PDUs, silence). Every
assertion reads what came back over the wire or what the server's handlers saw.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit
from pynetdicom import AE
from pynetdicom.presentation import build_role
from pynetdicom.sop_class import (
    CTImageStorage, ModalityPerformedProcedureStep, MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind, Verification,
)

from simulators.dicom.fast import FastAssociation, FastClient, encode_dataset
from simulators.dicom.fast.negotiation import associate_rq_bytes, build_contexts
from simulators.dicom.fast.server import DimseRequest, FastServer, Reply, ServerSettings
from simulators.dicom.fast.acceptance import SupportedContext
from simulators.events import EventBus, Exchange
from simulators.peers.dcmtk import run_dcmtk
from tests.helpers import require_tool, wait_until
from tests.unit.test_store import make_image

AET = "FAST_SCP"
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
CONTEXTS = (
    SupportedContext(Verification, UNCOMPRESSED),
    SupportedContext(CTImageStorage, UNCOMPRESSED, True, True),
    SupportedContext(StudyRootQueryRetrieveInformationModelFind, UNCOMPRESSED),
    SupportedContext(ModalityPerformedProcedureStep, UNCOMPRESSED),  # no handler on purpose
)




class Recorder:
    """Handlers that remember what arrived, so tests check the server's side too."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.find_sent = 0

    async def on_store(self, request: DimseRequest) -> int:
        self.stored[str(request.get("AffectedSOPInstanceUID"))] = request.data
        return 0x0000

    async def on_find(self, request: DimseRequest) -> Reply | int:
        """Up to 50 matches, slowly, so a C-CANCEL can arrive in between."""
        for number in range(50):
            if request.cancelled:
                return 0xFE00
            match = Dataset()
            match.QueryRetrieveLevel = "STUDY"
            match.StudyInstanceUID = f"1.2.826.0.1.3680043.10.7.{number + 1}"
            self.find_sent += 1
            await request.pending(match)
            await asyncio.sleep(0.01)
        return 0x0000


def _server(recorder: Recorder, bus: EventBus, **settings: object) -> FastServer:
    config = ServerSettings(ae_title=AET, contexts=CONTEXTS, **settings)  # type: ignore[arg-type]
    server = FastServer(config, events=bus, actor="fast-test")
    server.handle("C-STORE", recorder.on_store)
    server.handle("C-FIND", recorder.on_find)
    return server


@pytest.fixture
def recorded() -> tuple[EventBus, list[Exchange]]:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    return bus, seen


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder, recorded: tuple[EventBus, list[Exchange]]) -> Iterator[FastServer]:
    with _server(recorder, recorded[0], artim_timeout=2.0, acse_timeout=2.0) as running:
        yield running


def _echoscu(port: int, called: str = AET, *extra: str) -> tuple[int, str]:
    result = run_dcmtk("echoscu", "-v", "-aec", called, *extra, "127.0.0.1", str(port), timeout=30)
    return result.returncode, result.stdout + result.stderr


def _pynetdicom_ae(title: str = "PYSCU") -> AE:
    ae = AE(ae_title=title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    return ae


# --------------------------------------------------------------------- negotiation
@pytest.mark.dcmtk
def test_echoscu_is_accepted_and_one_event_is_emitted(
        server: FastServer, recorded: tuple[EventBus, list[Exchange]]) -> None:
    require_tool("echoscu")
    code, output = _echoscu(server.port)
    assert code == 0, output
    assert "Received Echo Response (Success)" in output
    assert f"Max Send PDV: {server.settings.max_pdu - 12}" in output  # our max PDU, announced
    echoes = [e for e in recorded[1] if e.kind == "dicom.c-echo"]
    assert [(e.status, e.detail["calling_ae"]) for e in echoes] == [("0x0000", "ECHOSCU")]


@pytest.mark.dcmtk
def test_echoscu_with_a_wrong_called_ae_is_rejected_permanently(server: FastServer) -> None:
    require_tool("echoscu")
    code, output = _echoscu(server.port, "SOMEONE_ELSE")
    assert code != 0
    assert "Rejected Permanent" in output and "Called AE Title Not Recognized" in output
    assert _echoscu(server.port)[0] == 0  # still serving


def test_calling_ae_allowlist_rejects_strangers(recorder: Recorder,
                                                recorded: tuple[EventBus, list[Exchange]]) -> None:
    with _server(recorder, recorded[0], allowed_calling=frozenset({"KNOWN"})) as server:
        stranger = _pynetdicom_ae("STRANGER")
        stranger.add_requested_context(Verification)
        rj = _associate_expecting_rejection(stranger, server.port).acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (1, 1, 3)
        known = _pynetdicom_ae("KNOWN")
        known.add_requested_context(Verification)
        assoc = known.associate("127.0.0.1", server.port, ae_title=AET)
        assert assoc.is_established and assoc.send_c_echo().Status == 0
        assoc.release()


def test_presentation_contexts_and_roles_are_negotiated_per_context(server: FastServer) -> None:
    ae = _pynetdicom_ae()
    ae.add_requested_context(CTImageStorage, [ImplicitVRLittleEndian])
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)        # not served
    ae.add_requested_context(Verification, [JPEGBaseline8Bit])              # syntax refused
    assoc = ae.associate("127.0.0.1", server.port, ae_title=AET,
                         ext_neg=[build_role(CTImageStorage, scp_role=True)])
    try:
        assert assoc.is_established
        [ct] = assoc.accepted_contexts
        assert (ct.abstract_syntax, ct.transfer_syntax[0]) == (CTImageStorage, ImplicitVRLittleEndian)
        assert ct.as_scp  # the requestor asked for the SCP role (C-GET style) and got it
        results = {cx.abstract_syntax: cx.result for cx in assoc.rejected_contexts}
        assert results == {MRImageStorage: 0x03, Verification: 0x04}
        assert assoc.acceptor.maximum_length == server.settings.max_pdu
    finally:
        assoc.release()


def test_association_limit_rejects_transient_then_accepts_after_a_release(
        recorder: Recorder, recorded: tuple[EventBus, list[Exchange]]) -> None:
    """PS3.8 9.3.4: rejected-transient, source service-provider (presentation),
    reason local-limit-exceeded - an A-ASSOCIATE-RJ the requestor reads, not a reset."""
    with _server(recorder, recorded[0], max_associations=2) as server:
        ae = _pynetdicom_ae()
        ae.add_requested_context(Verification)
        held = [ae.associate("127.0.0.1", server.port, ae_title=AET) for _ in range(2)]
        assert all(a.is_established for a in held)
        refused = _associate_expecting_rejection(ae, server.port)
        rj = refused.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (2, 3, 2)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(associate_rq_bytes("RAWSCU", AET, build_contexts(
                [(Verification, UNCOMPRESSED)]), 16384))
            assert _recv_exactly(raw, 10) == bytes([0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2])
            raw.shutdown(socket.SHUT_WR)  # we close first: the server lingers, never resets
            assert raw.recv(16) == b""
        held[0].release()
        assert wait_until(lambda: server.active_associations == 1)
        again = ae.associate("127.0.0.1", server.port, ae_title=AET)
        assert again.is_established and again.send_c_echo().Status == 0
        for assoc in (again, held[1]):
            assoc.release()


def _associate_expecting_rejection(ae: AE, port: int):  # type: ignore[no-untyped-def]
    """pynetdicom's requestor races a fast A-ASSOCIATE-RJ: its DUL thread may close the
    socket on the RJ before the main thread checks ``socket._is_connected``, which it
    then reports as a failed connection (abort). Retry a few times (bounded) until
    pynetdicom itself reports the rejection."""
    for _ in range(5):
        assoc = ae.associate("127.0.0.1", port, ae_title=AET)
        if assoc.is_rejected or assoc.is_established:
            break
    assert assoc.is_rejected, (assoc.is_established, assoc.is_aborted)
    return assoc


# ------------------------------------------------------------------- DIMSE services
def test_c_store_bytes_arrive_exactly_and_unhandled_commands_answer_0211(
        server: FastServer, recorder: Recorder) -> None:
    image = make_image(size=300, fill=9)  # 180 kB: several P-DATA PDUs at 128 kB max
    with FastClient(events=EventBus()) as client:
        client.connect("127.0.0.1", server.port, "FASTSCU", AET,
                       [(CTImageStorage, [ExplicitVRLittleEndian]),
                        (ModalityPerformedProcedureStep, [ExplicitVRLittleEndian])])
        assert client.store(image) == 0x0000
        attributes = Dataset()
        attributes.PatientID = "P1"
        result = client.n_create(ModalityPerformedProcedureStep, None, attributes)
        assert result.status == 0x0211  # PS3.7 C.5: unrecognized operation
        assert client.store(image) == 0x0000  # the association is still fine
    assert recorder.stored[image.SOPInstanceUID] == encode_dataset(image, ExplicitVRLittleEndian)


def test_c_cancel_stops_a_pending_find_and_keeps_the_association(
        server: FastServer, recorder: Recorder, recorded: tuple[EventBus, list[Exchange]]) -> None:
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", ""

    async def scenario() -> tuple[list[str], int]:
        association = FastAssociation(events=EventBus())
        await association.connect("127.0.0.1", server.port, "FASTSCU", AET,
                                  [(StudyRootQueryRetrieveInformationModelFind, UNCOMPRESSED),
                                   (Verification, UNCOMPRESSED)])
        async with association:
            got = []
            responses = association.find(query, "study")
            async for _status, match in responses:
                got.append(str(match.StudyInstanceUID))
                if len(got) == 2:
                    break
            await responses.aclose()  # sends C-CANCEL and drains to the final status
            return got, await association.echo()

    got, echo = asyncio.run(scenario())
    assert len(got) == 2 and echo == 0
    [find] = [e for e in recorded[1] if e.kind == "dicom.c-find"]
    assert find.status == "0xFE00"
    assert 2 <= recorder.find_sent < 50


def test_release_and_abort_both_free_the_slot(server: FastServer) -> None:
    ae = _pynetdicom_ae()
    ae.add_requested_context(Verification)
    released = ae.associate("127.0.0.1", server.port, ae_title=AET)
    aborted = ae.associate("127.0.0.1", server.port, ae_title=AET)
    assert wait_until(lambda: server.active_associations == 2)
    released.release()
    assert released.is_released
    aborted.abort()
    assert wait_until(lambda: server.active_associations == 0)
    assert _store_one(server.port) == 0


def test_stop_aborts_open_associations(recorder: Recorder,
                                       recorded: tuple[EventBus, list[Exchange]]) -> None:
    server = _server(recorder, recorded[0]).start()
    ae = _pynetdicom_ae()
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", server.port, ae_title=AET)
    assert assoc.is_established
    server.stop()
    assert wait_until(lambda: assoc.is_aborted)
    server.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


# ------------------------------------------------------------------------- robustness
def _associated_socket(port: int, max_pdu: int = 16384) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(associate_rq_bytes("RAWSCU", AET, build_contexts([(Verification, UNCOMPRESSED)]),
                                    max_pdu))
    header = _recv_exactly(sock, 6)
    assert header[0] == 0x02, "expected A-ASSOCIATE-AC"
    _recv_exactly(sock, struct.unpack(">I", header[2:])[0])
    return sock


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def _read_abort(sock: socket.socket) -> bytes:
    """The A-ABORT PDU the server sends, then the close."""
    pdu = _recv_exactly(sock, 10)
    assert pdu[0] == 0x07, f"expected A-ABORT, got PDU type 0x{pdu[0]:02X}"
    assert sock.recv(16) == b""  # and the connection is closed
    return pdu


def test_a_claimed_pdu_over_our_maximum_is_aborted_before_it_is_read(server: FastServer) -> None:
    """The body is never sent, so the A-ABORT can only come if the server refused on the
    header: one awaiting the body would hold until its DIMSE timeout (30 s), past this
    socket's 5 s read timeout, and the read would fail. No stopwatch needed."""
    with _associated_socket(server.port) as sock:
        assert sock.gettimeout() < server.settings.dimse_timeout
        sock.sendall(struct.pack(">BBI", 0x04, 0, server.settings.max_pdu + 1) + b"\x00" * 64)
        pdu = _read_abort(sock)
        assert (pdu[8], pdu[9]) == (2, 6)  # service provider, invalid PDU parameter value
    assert _store_one(server.port) == 0  # the server still serves


@pytest.mark.parametrize("payload", [
    b"\x00GARBAGE\xff" * 64,                                   # not a PDU at all
    struct.pack(">BBI", 0x04, 0, 12) + b"\x00" * 12,          # P-DATA before association
    struct.pack(">BBI", 0x01, 0, 200) + b"\x00\x01" + b"\xff" * 198,  # broken A-ASSOCIATE-RQ
])
def test_garbage_before_association_gets_an_abort(server: FastServer, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(payload)
        _read_abort(sock)
    assert _store_one(server.port) == 0


def test_unknown_pdu_on_an_association_is_aborted_as_unrecognised(server: FastServer) -> None:
    with _associated_socket(server.port) as sock:
        sock.sendall(struct.pack(">BBI", 0x0A, 0, 4) + b"\x00" * 4)
        pdu = _read_abort(sock)
        assert (pdu[8], pdu[9]) == (2, 1)  # service provider, unrecognised PDU
    assert _store_one(server.port) == 0


def test_silence_is_cut_by_artim_and_by_the_idle_timeout(
        recorder: Recorder, recorded: tuple[EventBus, list[Exchange]]) -> None:
    with _server(recorder, recorded[0], artim_timeout=0.3, idle_timeout=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
            assert silent.recv(16) == b""  # no A-ASSOCIATE-RQ within ARTIM: closed
        with _associated_socket(server.port) as idle:
            _read_abort(idle)  # established but idle: A-ABORT
        assert wait_until(lambda: server.active_associations == 0)


def _store_one(port: int) -> int:
    with FastClient(events=EventBus()) as client:
        client.connect("127.0.0.1", port, "CHECK", AET, [(CTImageStorage, [ExplicitVRLittleEndian])])
        return client.store(make_image())
