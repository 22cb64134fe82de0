"""The archive actor against real peers on loopback: DCMTK tools and pynetdicom SCUs.

Every assertion reads what came back over a real association (DCMTK's extracted
responses, files a real storescp received, statuses a pynetdicom SCU saw) or what
is on the archive's disk; nothing is mocked.
"""

from __future__ import annotations

import socket
from io import BytesIO
import struct
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    CTImageStorage, MRImageStorage, StudyRootQueryRetrieveInformationModelMove, Verification,
)
from pydicom.uid import ExplicitVRLittleEndian

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.commitment import (
    REASON_CLASS_INSTANCE_CONFLICT, REASON_NO_SUCH_INSTANCE, CommitmentListener,
    CommitmentWaiter, request_commitment,
)
from simulators.events import EventBus, Exchange
from simulators.peers.dcmtk import dcmtk_argv
from tests.helpers import free_port, needs, require_tool, start_server, wait_until
from tests.unit.test_store import make_image

AET = "PACSIM_ARC"
STUDY_A, STUDY_B = "1.2.826.0.1.3680043.10.1.1", "1.2.826.0.1.3680043.10.1.2"




def _run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool (resolved by absolute path: pynetdicom's apps shadow it)."""
    return subprocess.run(dcmtk_argv(args), capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Six files: study A (CT, 2 series: 2 + 2 images) and study B (MR, 2 images)."""
    folder = tmp_path / "in"
    folder.mkdir()
    datasets = [make_image(patient_id="P100", patient_name="Sample^Alice", study_uid=STUDY_A,
                           series_uid=f"{STUDY_A}.{s}", series_number=s, instance_number=n,
                           accession="ACC-A", study_date="20240110", fill=s * 10 + n)
                for s in (1, 2) for n in (1, 2)]
    datasets += [make_image(patient_id="P100", patient_name="Sample^Alice", study_uid=STUDY_B,
                            series_uid=f"{STUDY_B}.1", modality="MR", sop_class=MRImageStorage,
                            instance_number=n, accession="ACC-B", study_date="20240220", fill=n)
                 for n in (1, 2)]
    paths = []
    for index, ds in enumerate(datasets):
        path = folder / f"img{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture
def recorded() -> tuple[EventBus, list[Exchange]]:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    return bus, seen


def _archive(tmp_path: Path, bus: EventBus | None = None, **config: object) -> Archive:
    return Archive(ArchiveConfig(storage_dir=tmp_path / "arc", **config), events=bus)  # type: ignore[arg-type]


@pytest.fixture
def archive(tmp_path: Path, recorded: tuple[EventBus, list[Exchange]]) -> Iterator[Archive]:
    with _archive(tmp_path, recorded[0]) as running:
        yield running


def _storescu(port: int, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return _run("storescu", "-aec", AET, "127.0.0.1", str(port), *map(str, files))


@pytest.fixture
@needs("storescu")
def loaded(archive: Archive, images: list[Path]) -> Archive:
    require_tool("storescu")
    result = _storescu(archive.port, images)
    assert result.returncode == 0, result.stderr
    return archive


# ------------------------------------------------------------------------ C-ECHO, C-STORE
@pytest.mark.dcmtk
def test_echoscu(archive: Archive, recorded: tuple[EventBus, list[Exchange]]) -> None:
    require_tool("echoscu")
    result = _run("echoscu", "-aec", AET, "127.0.0.1", str(archive.port))
    assert result.returncode == 0, result.stderr
    assert [e.kind for e in recorded[1]] == ["dicom.c-echo"]


def test_storescu_objects_are_indexed_and_on_disk(loaded: Archive, images: list[Path],
                                                 recorded: tuple[EventBus, list[Exchange]]) -> None:
    stats = loaded.store.stats()
    assert (stats["patients"], stats["studies"], stats["series"], stats["instances"]) == (1, 2, 3, 6)
    for source in images:
        sent = dcmread(source)
        [held] = loaded.store.instances(sop_uids=[sent.SOPInstanceUID])
        back = dcmread(held.path)
        assert back.PixelData == sent.PixelData and back.PatientID == "P100"
        assert back.file_meta.SourceApplicationEntityTitle.strip() == "STORESCU"
    stores = [e for e in recorded[1] if e.kind == "dicom.c-store"]
    assert len(stores) == 6 and all(e.status == "0x0000" and e.bytes > 0 for e in stores)
    assert loaded.study_count() == 2
    assert [s["AccessionNumber"] for s in loaded.find_studies(ModalitiesInStudy="MR")] == ["ACC-B"]


def test_store_statuses_for_conflict_and_missing_uid(archive: Archive) -> None:
    ae = make_ae(AeSettings(ae_title="TESTSCU"))
    assoc = associate(ae, "127.0.0.1", archive.port, AET,
                      contexts=[build_context(CTImageStorage, ExplicitVRLittleEndian)])
    try:
        first = make_image(fill=1)
        assert assoc.send_c_store(first).Status == 0x0000
        assert assoc.send_c_store(first).Status == 0x0000  # identical resend: idempotent
        clash = make_image(sop_uid=first.SOPInstanceUID, fill=2)
        assert assoc.send_c_store(clash).Status == 0xC000
        no_study = make_image()
        del no_study.StudyInstanceUID
        assert assoc.send_c_store(no_study).Status == 0xA900
    finally:
        assoc.release()
    assert archive.store.stats()["instances"] == 1


# ------------------------------------------------------------------------------- C-FIND
@pytest.mark.dcmtk
@pytest.mark.parametrize("model, keys, expected", [
    ("-P", ["QueryRetrieveLevel=PATIENT", "PatientID=P100", "PatientName",
            "NumberOfPatientRelatedStudies"], [("NumberOfPatientRelatedStudies", "2")]),
    ("-P", ["QueryRetrieveLevel=STUDY", "PatientID=P100", "StudyInstanceUID",
            "StudyDate=20240201-"], [("StudyInstanceUID", STUDY_B)]),
    ("-S", ["QueryRetrieveLevel=STUDY", "PatientName=sample*", "AccessionNumber",
            "ModalitiesInStudy=CT", "NumberOfStudyRelatedInstances"],
     [("AccessionNumber", "ACC-A")]),
    ("-S", ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY_A}", "SeriesInstanceUID",
            "SeriesNumber=2", "NumberOfSeriesRelatedInstances"],
     [("SeriesInstanceUID", f"{STUDY_A}.2")]),
    ("-S", ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={STUDY_B}",
            f"SeriesInstanceUID={STUDY_B}.1", "SOPInstanceUID", "InstanceNumber=2"],
     [("InstanceNumber", "2")]),
    ("-P", ["QueryRetrieveLevel=IMAGE", "PatientID=P100", f"StudyInstanceUID={STUDY_A}",
            f"SeriesInstanceUID={STUDY_A}.1", "SOPInstanceUID"], [None, None]),
])
def test_findscu_levels(loaded: Archive, tmp_path: Path, model: str, keys: list[str],
                        expected: list[tuple[str, str] | None]) -> None:
    require_tool("findscu")
    out = tmp_path / "rsp"
    out.mkdir()
    args = ["findscu", model, "-X", "-od", str(out), "-aec", AET]
    for key in keys:
        args += ["-k", key]
    result = _run(*args, "127.0.0.1", str(loaded.port))
    assert result.returncode == 0, result.stderr
    responses = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert len(responses) == len(expected)
    for response, wanted in zip(responses, expected):
        if wanted is not None:
            assert str(response.data_element(wanted[0]).value) == wanted[1]
    if "NumberOfStudyRelatedInstances" in keys:
        assert responses[0].NumberOfStudyRelatedInstances == 4


@pytest.mark.dcmtk
def test_find_with_bad_level_answers_a900(loaded: Archive) -> None:
    require_tool("findscu")
    result = _run("findscu", "-v", "-S", "-aec", AET, "-k", "QueryRetrieveLevel=PATIENT", "-k",
                  "PatientID", "127.0.0.1", str(loaded.port))
    # DCMTK prints status 0xA900 by its name in the standard
    assert "error: datasetdoesnotmatchsopclass" in (result.stdout + result.stderr).lower()


# ------------------------------------------------------------------------ C-MOVE, C-GET
@pytest.fixture
@needs("storescp", "echoscu")
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    require_tool("storescp", "echoscu")
    port, folder = free_port(), tmp_path / "dest"
    folder.mkdir()
    process = subprocess.Popen(dcmtk_argv(["storescp", "-aet", "DEST", "-od", str(folder), str(port)]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _run("echoscu", "-aec", "DEST", "127.0.0.1", str(port),
                                        timeout=5).returncode == 0, timeout=10, step=0.05), \
            "storescp did not start"
        yield port, folder
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.dcmtk
def test_movescu_to_storescp(tmp_path: Path, images: list[Path], storescp: tuple[int, Path]) -> None:
    require_tool("movescu", "storescu")
    port, folder = storescp
    with _archive(tmp_path, destinations={"DEST": ("127.0.0.1", port)}) as archive:
        assert _storescu(archive.port, images).returncode == 0
        result = _run("movescu", "-S", "-aec", AET, "-aem", "DEST", "-k",
                      "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY_A}",
                      "127.0.0.1", str(archive.port))
        assert result.returncode == 0, result.stderr
    arrived = {dcmread(p).SOPInstanceUID for p in folder.iterdir() if p.is_file()}
    expected = {dcmread(p).SOPInstanceUID for p in images if dcmread(p).StudyInstanceUID == STUDY_A}
    assert arrived == expected and len(arrived) == 4


def _move(port: int, destination: str, study_uid: str) -> list[Dataset]:
    ae = make_ae(AeSettings(ae_title="MOVESCU"))
    assoc = associate(ae, "127.0.0.1", port, AET,
                      contexts=[build_context(StudyRootQueryRetrieveInformationModelMove)])
    identifier = Dataset()
    identifier.QueryRetrieveLevel, identifier.StudyInstanceUID = "STUDY", study_uid
    try:
        return [status for status, _ in assoc.send_c_move(
            identifier, destination, StudyRootQueryRetrieveInformationModelMove)]
    finally:
        assoc.release()


def test_move_unknown_destination_answers_a801(loaded: Archive) -> None:
    statuses = _move(loaded.port, "NOWHERE", STUDY_A)
    assert [s.Status for s in statuses] == [0xA801]


@pytest.mark.dcmtk
def test_move_with_failed_suboperation_answers_b000(tmp_path: Path, images: list[Path]) -> None:
    """A destination refusing one object: pending counts, then 0xB000 naming it."""
    refused = dcmread(images[1]).SOPInstanceUID
    receiver = make_ae(AeSettings(ae_title="PICKY"))
    receiver.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)
    server = start_server(receiver, "127.0.0.1", 0, [
        (evt.EVT_C_STORE, lambda e: 0xA700 if e.request.AffectedSOPInstanceUID == refused else 0)])
    try:
        destinations = {"PICKY": ("127.0.0.1", server.server_address[1])}
        with _archive(tmp_path, destinations=destinations) as archive:
            require_tool("storescu")
            assert _storescu(archive.port, images).returncode == 0
            statuses = _move(archive.port, "PICKY", STUDY_A)
    finally:
        server.shutdown()
    pending, final = statuses[:-1], statuses[-1]
    assert [s.Status for s in pending] == [0xFF00] * 4
    assert [s.NumberOfRemainingSuboperations for s in pending] == [3, 2, 1, 0]
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (3, 1)


@pytest.mark.dcmtk
def test_getscu(loaded: Archive, tmp_path: Path) -> None:
    require_tool("getscu")
    out = tmp_path / "got"
    out.mkdir()
    result = _run("getscu", "-S", "-aec", AET, "-od", str(out), "-k", "QueryRetrieveLevel=SERIES",
                  "-k", f"StudyInstanceUID={STUDY_A}", "-k", f"SeriesInstanceUID={STUDY_A}.2",
                  "127.0.0.1", str(loaded.port))
    assert result.returncode == 0, result.stderr
    got = [dcmread(p) for p in out.iterdir()]
    assert sorted(int(d.InstanceNumber) for d in got) == [1, 2]
    assert {d.SeriesInstanceUID for d in got} == {f"{STUDY_A}.2"}


# ----------------------------------------------------------------- storage commitment
def _references(images: list[Path]) -> list[tuple[str, str]]:
    return [(str(d.SOPClassUID), str(d.SOPInstanceUID)) for d in map(dcmread, images)]


@pytest.mark.dcmtk
def test_commitment_on_the_same_association(tmp_path: Path, images: list[Path]) -> None:
    require_tool("storescu")
    with _archive(tmp_path, commitment_reply="same") as archive:
        assert _storescu(archive.port, images[:3]).returncode == 0
        refs = _references(images[:3])
        refs.append((CTImageStorage, "1.2.826.0.1.3680043.10.99"))   # never stored
        refs.append((MRImageStorage, refs[0][1]))                    # stored as CT
        ae = make_ae(AeSettings(ae_title="MODALITY"))
        result = request_commitment(ae, "127.0.0.1", archive.port, AET, refs, timeout=10)
    assert result is not None and result.via == "same"
    assert result.event_type == 2
    assert sorted(result.committed) == sorted(_references(images[:3]))
    assert sorted(result.failed) == sorted([
        (CTImageStorage, "1.2.826.0.1.3680043.10.99", REASON_NO_SUCH_INSTANCE),
        (MRImageStorage, refs[0][1], REASON_CLASS_INSTANCE_CONFLICT)])


@pytest.mark.dcmtk
def test_commitment_on_a_new_association(tmp_path: Path, images: list[Path]) -> None:
    require_tool("storescu")
    waiter = CommitmentWaiter()
    with CommitmentListener("MODALITY", waiter) as listener:
        config = {"commitment_reply": "new", "destinations": {"MODALITY": ("127.0.0.1", listener.port)}}
        with _archive(tmp_path, **config) as archive:
            assert _storescu(archive.port, images).returncode == 0
            ae = make_ae(AeSettings(ae_title="MODALITY"))
            result = request_commitment(ae, "127.0.0.1", archive.port, AET, _references(images),
                                        waiter=waiter, keep_open=False, timeout=10)
    assert result is not None and result.via == "new"
    assert result.all_committed and len(result.committed) == 6


# ------------------------------------------------------------------------- robustness
def _send_raw(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.settimeout(0.5)
        try:
            sock.recv(1024)  # an A-ABORT/A-ASSOCIATE-RJ or a close; either is fine
        except OSError:
            pass


@pytest.mark.dcmtk
@pytest.mark.parametrize("payload", [
    b"\x00GARBAGE\xff" * 64,                                   # not a PDU at all
    struct.pack(">BBI", 0x01, 0, 4000) + b"\x00\x01\x00\x00",  # A-ASSOCIATE-RQ cut short
    struct.pack(">BBI", 0x04, 0, 0x7FFFFFFF) + b"\x00" * 16,  # P-DATA before association, huge length
])
def test_malformed_bytes_leave_the_archive_serving(archive: Archive, payload: bytes) -> None:
    require_tool("echoscu")
    _send_raw(archive.port, payload)
    result = _run("echoscu", "-aec", AET, "127.0.0.1", str(archive.port))
    assert result.returncode == 0, result.stderr


@pytest.mark.dcmtk
@pytest.mark.parametrize("how", ["abort", "disconnect"])
def test_interrupted_c_store_stores_no_partial_object(archive: Archive, images: list[Path],
                                                      how: str) -> None:
    """Command and half the data set reach the archive, then an A-ABORT or a dead socket."""
    require_tool("storescu")
    ae = make_ae(AeSettings(ae_title="HALFSCU"))
    assoc = associate(ae, "127.0.0.1", archive.port, AET,
                      contexts=[build_context(CTImageStorage, ExplicitVRLittleEndian)])
    big = make_image(size=256)  # 128 KiB of pixels: several P-DATA PDUs
    assert assoc.send_c_store(make_image()).Status == 0  # one complete object first
    request = C_STORE()
    request.MessageID, request.AffectedSOPClassUID = 7, CTImageStorage
    request.AffectedSOPInstanceUID, request.Priority = big.SOPInstanceUID, 2
    request.DataSet = BytesIO(encode(big, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = assoc.accepted_contexts[0].context_id
    fragments = list(message.encode_msg(context_id, 16_384))
    raw = assoc.dul.socket.socket
    for primitive in fragments[: len(fragments) // 2]:
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        raw.sendall(pdu.encode())
    if how == "abort":
        assoc.abort()
    else:
        raw.shutdown(socket.SHUT_RDWR)
        raw.close()
        assoc.dul.kill_dul()
    assert wait_until(lambda: not archive.store.instances(sop_uids=[big.SOPInstanceUID]), 2)
    assert archive.store.stats()["instances"] == 1
    assert not list(archive.store.objects.rglob(f"{big.SOPInstanceUID}*"))
    assert list((archive.store.root / "incoming").iterdir()) == []
    assert _storescu(archive.port, images[:2]).returncode == 0  # still serving
    assert archive.store.stats()["instances"] == 3


@pytest.mark.dcmtk
def test_verification_after_peer_vanishes(archive: Archive) -> None:
    """An association left half-open by a peer that disappears does not block others."""
    require_tool("echoscu")
    ae = make_ae(AeSettings(ae_title="GHOST"))
    assoc = associate(ae, "127.0.0.1", archive.port, AET, contexts=[build_context(Verification)])
    assoc.dul.socket.socket.close()
    assert _run("echoscu", "-aec", AET, "127.0.0.1", str(archive.port)).returncode == 0
    assoc.kill()


# ----------------------------------------------------- fast acceptor specifics
def test_store_refuses_undecodable_and_mismatching_data_sets(archive: Archive) -> None:
    """The index keys come from the received bytes; what cannot be read or contradicts
    the command is refused with a status, and nothing is stored."""
    from simulators.dicom.fast import FastClient, encode_dataset

    image = make_image()
    with FastClient(events=EventBus()) as client:
        client.connect("127.0.0.1", archive.port, "FASTSCU", AET,
                       [(CTImageStorage, [ExplicitVRLittleEndian])])
        garbage = struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", 200) + b"1.2" * 3  # cut short
        assert client.store(garbage, CTImageStorage, "1.2.3.4",
                            ExplicitVRLittleEndian) in (0xA900, 0xC210)
        encoded = encode_dataset(image, ExplicitVRLittleEndian)
        assert client.store(encoded, CTImageStorage, "1.2.3.4", ExplicitVRLittleEndian) == 0xA900
        assert client.store(image) == 0x0000
    assert archive.store.stats()["instances"] == 1


def test_archive_mpps_scp_answers_on_the_fast_acceptor(
        tmp_path: Path, recorded: tuple[EventBus, list[Exchange]]) -> None:
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    from simulators.dicom.fast import FastClient

    incomplete = Dataset()
    incomplete.PatientID = "P1"  # no status, no Type 1 attributes
    with _archive(tmp_path, recorded[0], mpps=True) as archive:
        with FastClient(events=EventBus()) as client:
            client.connect("127.0.0.1", archive.port, "MODALITY", AET,
                           [(ModalityPerformedProcedureStep, [ExplicitVRLittleEndian])])
            refused = client.n_create(ModalityPerformedProcedureStep, "1.2.826.0.1.3680043.10.5.1",
                                      incomplete)
            unknown = client.n_set(ModalityPerformedProcedureStep, "1.2.826.0.1.3680043.10.5.2",
                                   incomplete)
    assert refused.status in (0x0106, 0x0120, 0x0121) and unknown.status == 0x0112
    kinds = {e.kind: e.status for e in recorded[1]}
    assert kinds["dicom.n-create"] == f"0x{refused.status:04X}" and kinds["dicom.n-set"] == "0x0112"


def test_many_simultaneous_associations_all_store(tmp_path: Path) -> None:
    """Sixty requestors hold their associations at once, each stores one object."""
    import asyncio

    from simulators.dicom.fast import FastAssociation, encode_dataset

    images = [make_image(instance_number=n) for n in range(60)]

    async def run(port: int, archive: Archive) -> tuple[int, list[int]]:
        associations = [FastAssociation(events=EventBus()) for _ in images]
        await asyncio.gather(*(a.connect("127.0.0.1", port, f"LOAD{n}", AET,
                                         [(CTImageStorage, [ExplicitVRLittleEndian])])
                               for n, a in enumerate(associations)))
        held = archive.active_associations

        async def one(association: FastAssociation, image: Dataset) -> int:
            async with association:
                return await association.store(encode_dataset(image, ExplicitVRLittleEndian),
                                               CTImageStorage, image.SOPInstanceUID,
                                               ExplicitVRLittleEndian)
        return held, await asyncio.gather(*(one(a, i) for a, i in zip(associations, images)))

    with _archive(tmp_path, max_associations=64) as archive:
        held, statuses = asyncio.run(run(archive.port, archive))
        assert held == 60 and statuses == [0] * 60
        assert archive.store.stats()["instances"] == 60


def test_optional_mpps_scp_answers_as_ps3_4_f72_requires(tmp_path: Path) -> None:
    """With ``mpps: true`` the archive runs the RIS's MPPS state machine over the wire."""
    import datetime as dt

    from pydicom.uid import generate_uid

    from simulators.dicom.fast import FastClient
    from simulators.dicom.fast.requests import mpps_create, mpps_final
    from simulators.dicom.worklist import build_worklist_item
    from simulators.world import World
    from simulators.world.context import StudyContext
    from simulators.world.images import build_study

    mpps_class = "1.2.840.10008.3.1.2.3.3"
    world = World(seed=5)
    order = world.order(world.patient(1), "CT", station_ae="CT1", station_name="CT1", index=1)
    item = build_worklist_item(order)
    started = dt.datetime.now().replace(microsecond=0)
    ctx = StudyContext.from_worklist(item, world, station_name="CT1", performed_start=started)
    created = mpps_create(ctx, item, "CT1", started)
    completed = mpps_final(ctx, build_study(ctx, per_series=1), "COMPLETED", "CT1", started, None)
    uid = generate_uid()
    with _archive(tmp_path, mpps=True) as arc, FastClient(actor="test") as client:
        client.connect("127.0.0.1", arc.port, "CT1", "PACSIM_ARC",
                       [(mpps_class, [ExplicitVRLittleEndian])])
        assert client.n_create(mpps_class, uid, created).status == 0x0000
        assert client.n_create(mpps_class, uid, created).status == 0x0111  # duplicate
        assert client.n_set(mpps_class, generate_uid(), completed).status == 0x0112  # unknown
        assert client.n_set(mpps_class, uid, completed).status == 0x0000
        again = client.n_set(mpps_class, uid, completed)
        assert again.status == 0x0110 and "no longer" in (again.comment or "")
        assert arc.mpps is not None and arc.mpps.get(uid).status == "COMPLETED"
