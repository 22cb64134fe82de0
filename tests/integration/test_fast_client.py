"""FastAssociation against real peers: DCMTK storescp and wlmscpfs, pynetdicom, raw sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from simulators.peers.dcmtk import dcmtk_server
from simulators.dicom.ae import AeSettings, make_ae
from simulators.dicom.fast import FIND_MODELS, FastAssociation, FastClient, read_part10
from simulators.dicom.fast.codec import PduTooLarge
from simulators.dicom.worklist import build_worklist_item
from simulators.errors import AssociationError
from simulators.events import EventBus
from simulators.world.context import StudyContext
from simulators.world.images import build_study, write_study
from simulators.world.world import World
from tests.helpers import free_port, require_tool, start_server

VERIFICATION = "1.2.840.10008.1.1"
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def ct_files(directory: Path, count: int) -> list[Path]:
    world = World(seed=11)
    order = world.order(world.patient(3), "CT", station_ae="CT1", station_name="CT1", index=3)
    context = StudyContext.from_worklist(build_worklist_item(order), world, station_name="CT1")
    return write_study(build_study(context, series=1, per_series=count, rows=128, cols=128), directory)


@pytest.mark.dcmtk
def test_store_to_storescp_is_byte_identical(tmp_path: Path) -> None:
    require_tool("storescp")
    files = ct_files(tmp_path / "in", 3)
    received, port, events = tmp_path / "out", free_port(), EventBus()
    received.mkdir()
    seen: list = []
    events.subscribe(seen.append)
    with dcmtk_server(["storescp", "-aet", "STORESCP", "-od", str(received)], port):
        with FastClient(actor="ct1", events=events) as client:
            accepted = client.connect("127.0.0.1", port, "FASTSCU", "STORESCP",
                                      [(CTImageStorage, [ExplicitVRLittleEndian]), (VERIFICATION, UNCOMPRESSED)])
            assert all(cx.accepted for cx in accepted)
            assert client.peer_max_pdu == 16384  # storescp's default receive limit
            assert client.echo() == 0x0000
            assert client.store_files(files) == [0, 0, 0]
    sent = {read_part10(path).sop_instance: read_part10(path).data for path in files}
    got = {read_part10(path).sop_instance: read_part10(path).data for path in received.iterdir()}
    assert got == sent
    stores = [e for e in seen if e.kind == "dicom.c-store"]
    assert [e.status for e in stores] == ["0x0000"] * 3
    assert all(e.bytes == len(data) for e, data in zip(stores, sent.values()))
    assert [e.kind for e in seen].count("dicom.c-echo") == 1


@pytest.mark.dcmtk
def test_store_a_dataset_object_with_the_accepted_syntax(tmp_path: Path) -> None:
    require_tool("storescp")
    path = ct_files(tmp_path / "in", 1)[0]
    received, port = tmp_path / "out", free_port()
    received.mkdir()

    async def send() -> int:
        association = FastAssociation(events=EventBus())
        await association.connect("127.0.0.1", port, "FASTSCU", "STORESCP",
                                  [(CTImageStorage, [ImplicitVRLittleEndian])])
        async with association:
            return await association.store(pydicom.dcmread(path))

    with dcmtk_server(["storescp", "-aet", "STORESCP", "-od", str(received)], port):
        assert asyncio.run(send()) == 0
    stored = next(received.iterdir())
    assert read_part10(stored).transfer_syntax == ImplicitVRLittleEndian


def write_worklist(directory: Path, ae_title: str, world: World, count: int,
                   station_ae: str | None = None) -> list[Dataset]:
    """wlmscpfs reads ``<dir>/<called AE title>/*.wl`` (one item per file) plus a lock file."""
    folder = directory / ae_title
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    items = []
    for index in range(count):
        order = world.order(world.patient(index), "CT", station_ae=station_ae or ae_title,
                            station_name="CT1", index=index)
        item = build_worklist_item(order)
        item.SpecificCharacterSet = "ISO_IR 192"
        item.save_as(folder / f"item{index}.wl", implicit_vr=False, little_endian=True)
        items.append(item)
    return items


def mwl_identifier(station_ae: str) -> Dataset:
    step = Dataset()
    step.ScheduledStationAETitle = station_ae
    step.ScheduledProcedureStepStartDate = ""
    step.Modality = ""
    step.ScheduledProcedureStepID = ""
    identifier = Dataset()
    identifier.PatientName = ""
    identifier.PatientID = ""
    identifier.AccessionNumber = ""
    identifier.StudyInstanceUID = ""
    identifier.ScheduledProcedureStepSequence = [step]
    return identifier


@pytest.mark.dcmtk
def test_find_against_wlmscpfs(tmp_path: Path) -> None:
    require_tool("wlmscpfs")
    items = write_worklist(tmp_path, "WLM", World(seed=5), 3)
    port, events = free_port(), EventBus()
    seen: list = []
    events.subscribe(seen.append)
    with dcmtk_server(["wlmscpfs", "-dfp", str(tmp_path)], port):
        with FastClient(events=events) as client:
            client.connect("127.0.0.1", port, "FASTSCU", "WLM", [(FIND_MODELS["worklist"], UNCOMPRESSED)])
            status, matches = client.find(mwl_identifier("WLM"))
    assert status == 0x0000
    assert sorted(m.AccessionNumber for m in matches) == sorted(i.AccessionNumber for i in items)
    assert {m.PatientID for m in matches} == {i.PatientID for i in items}
    find_events = [e for e in seen if e.kind == "dicom.c-find"]
    assert len(find_events) == 1 and find_events[0].detail["matches"] == 3


@pytest.mark.dcmtk
def test_leaving_a_find_early_cancels_and_keeps_the_association(tmp_path: Path) -> None:
    require_tool("wlmscpfs")
    write_worklist(tmp_path, "WLM", World(seed=6), 4)
    port = free_port()

    async def first_then_more() -> tuple[int, int]:
        association = FastAssociation(events=EventBus())
        await association.connect("127.0.0.1", port, "FASTSCU", "WLM",
                                  [(FIND_MODELS["worklist"], UNCOMPRESSED)])
        async with association:
            query = association.find(mwl_identifier("WLM"))
            async for status, _ in query:
                break
            await query.aclose()
            final, matches = await association.find_all(mwl_identifier("WLM"))
        return final, len(matches)

    with dcmtk_server(["wlmscpfs", "-dfp", str(tmp_path)], port):
        assert asyncio.run(first_then_more()) == (0x0000, 4)


def test_rejected_called_ae_names_the_reason() -> None:
    ae = make_ae(AeSettings("ARCHIVE", require_called=True))
    ae.add_supported_context(VERIFICATION)
    server = start_server(ae, "127.0.0.1", 0)
    try:
        with FastClient(events=EventBus()) as client:
            with pytest.raises(AssociationError) as info:
                client.connect("127.0.0.1", server.server_address[1], "FASTSCU", "WRONG",
                               [(VERIFICATION, UNCOMPRESSED)])
    finally:
        server.shutdown()
    assert "called AE title not recognised" in str(info.value)
    assert info.value.context["called_ae"] == "WRONG"


def test_unreachable_peer_is_a_clear_error() -> None:
    with FastClient(events=EventBus()) as client:
        with pytest.raises(AssociationError, match="unreachable"):
            client.connect("127.0.0.1", free_port(), "FASTSCU", "NOBODY", [(VERIFICATION, UNCOMPRESSED)],
                           timeout=2)


class RawPeer:
    """A TCP peer that answers the A-ASSOCIATE-RQ with canned bytes and records the rest."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.received = b""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(5)
            header = conn.recv(6, socket.MSG_WAITALL)
            conn.recv(struct.unpack(">I", header[2:6])[0], socket.MSG_WAITALL)
            if self.answer:
                conn.sendall(self.answer)
            try:
                while chunk := conn.recv(4096):
                    self.received += chunk
            except OSError:
                pass
        self.listener.close()


def test_huge_claimed_pdu_gets_an_abort_and_no_allocation() -> None:
    peer = RawPeer(struct.pack(">BxI", 0x02, 3_000_000_000))  # A-ASSOCIATE-AC "3 GB"
    with FastClient(events=EventBus()) as client:
        with pytest.raises(PduTooLarge):
            client.connect("127.0.0.1", peer.port, "FASTSCU", "RAW", [(VERIFICATION, UNCOMPRESSED)])
    peer.thread.join(5)
    assert peer.received[:1] == b"\x07"  # A-ABORT-RQ
    assert peer.received[8:10] == b"\x02\x06"  # provider, invalid PDU parameter value


def test_silent_peer_times_out() -> None:
    peer = RawPeer(b"")
    with FastClient(events=EventBus()) as client:
        with pytest.raises(AssociationError, match="timed out"):
            client.connect("127.0.0.1", peer.port, "FASTSCU", "RAW", [(VERIFICATION, UNCOMPRESSED)],
                           timeout=0.3)
    peer.thread.join(5)
    assert peer.received[:1] == b"\x07"


@pytest.mark.dcmtk
def test_count_matches_counts_what_find_all_decodes(tmp_path: Path) -> None:
    """The lean C-FIND: same status and count as decoding everything, first items decoded."""
    require_tool("wlmscpfs")
    items = write_worklist(tmp_path, "WLM", World(seed=8), 12)
    port, events = free_port(), EventBus()
    seen: list = []
    events.subscribe(seen.append)

    async def both() -> tuple[object, tuple[int, list[Dataset]]]:
        results = []
        for lean in (True, False):
            association = FastAssociation(events=events)
            await association.connect("127.0.0.1", port, "FASTSCU", "WLM",
                                      [(FIND_MODELS["worklist"], UNCOMPRESSED)], max_pdu=32768)
            async with association:
                if lean:
                    results.append(await association.count_matches(mwl_identifier("WLM"),
                                                                   keep=2))
                else:
                    results.append(await association.find_all(mwl_identifier("WLM")))
        return results[0], results[1]

    with dcmtk_server(["wlmscpfs", "-dfp", str(tmp_path)], port):
        counted, (status, matches) = asyncio.run(both())
    assert (counted.status, counted.matches) == (status, len(matches)) == (0x0000, len(items))
    assert [m.AccessionNumber for m in counted.items] == [m.AccessionNumber for m in matches[:2]]
    finds = [e for e in seen if e.kind == "dicom.c-find"]
    assert [e.detail["matches"] for e in finds] == [12, 12]
    assert [e.status for e in finds] == ["0x0000", "0x0000"]


@pytest.mark.dcmtk
def test_store_in_pieces_is_byte_identical(tmp_path: Path) -> None:
    """A dataset given as header + pixel pieces arrives as the joined bytes."""
    require_tool("storescp")
    files = ct_files(tmp_path / "in", 2)
    received, port = tmp_path / "out", free_port()
    received.mkdir()
    instances = [read_part10(path) for path in files]
    with dcmtk_server(["storescp", "-aet", "STORESCP", "-od", str(received)], port):
        with FastClient(events=EventBus()) as client:
            client.connect("127.0.0.1", port, "FASTSCU", "STORESCP",
                           [(CTImageStorage, [ExplicitVRLittleEndian])])
            statuses = [client.store([i.data[:1001], i.data[1001:20_000], i.data[20_000:]],
                                     i.sop_class, i.sop_instance, i.transfer_syntax)
                        for i in instances]
    assert statuses == [0, 0]
    got = {read_part10(path).sop_instance: read_part10(path).data for path in received.iterdir()}
    assert got == {i.sop_instance: i.data for i in instances}
