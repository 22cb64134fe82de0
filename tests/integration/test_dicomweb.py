"""The built-in archive's DICOMweb endpoint over real HTTP on loopback.

Happy paths go through dicomweb-client (what viewers use); error paths through raw
``requests`` and raw sockets, because a client library would refuse to send the
broken requests the server must survive. Every assertion reads what came back
over HTTP, or what a DIMSE C-FIND on the same archive answers.
"""

from __future__ import annotations

import socket
from io import BytesIO
from typing import Iterator

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.fast import FastClient
from simulators.events import Exchange
from tests.helpers import RecordedEvents
from tests.unit.test_store import make_image

STUDY_A, STUDY_B = generate_uid(), generate_uid()
SERIES_A1, SERIES_A2 = generate_uid(), generate_uid()


def _images() -> list[Dataset]:
    """Two patients: A has a CT study in two series (3 images), B an MR study."""
    return [
        make_image(patient_id="DW001", patient_name="WEBB^ALICE", study_uid=STUDY_A,
                   series_uid=SERIES_A1, modality="CT", study_date="20240105",
                   accession="DWACC1", instance_number=1, size=32, fill=1),
        make_image(patient_id="DW001", patient_name="WEBB^ALICE", study_uid=STUDY_A,
                   series_uid=SERIES_A1, modality="CT", study_date="20240105",
                   accession="DWACC1", instance_number=2, size=32, fill=2),
        make_image(patient_id="DW001", patient_name="WEBB^ALICE", study_uid=STUDY_A,
                   series_uid=SERIES_A2, modality="CT", study_date="20240105",
                   accession="DWACC1", series_number=2, size=32, fill=3),
        make_image(patient_id="DW002", patient_name="STONE^BOB", study_uid=STUDY_B,
                   modality="MR", study_date="20230610", accession="DWACC2", size=32, fill=4),
    ]


def _part10(ds: Dataset) -> bytes:
    buffer = DicomBytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _multipart(parts: list[bytes], boundary: str = "pacsim-test") -> tuple[bytes, str]:
    body = b"".join(b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n"
                    % (boundary.encode(), p) for p in parts) + b"--%s--\r\n" % boundary.encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


@pytest.fixture
def events(event_bus: RecordedEvents) -> list[Exchange]:
    """What the test's archive emitted (on the test's own bus)."""
    return event_bus.events


@pytest.fixture
def images() -> list[Dataset]:
    return _images()


@pytest.fixture
def archive(event_bus: RecordedEvents, images: list[Dataset]) -> Iterator[Archive]:
    """An archive on the test's own bus, holding ``images``; its only event so far is the
    setup STOW's (waited for: the server emits once the response is written, so without
    the wait it could land among the test's own events)."""
    with Archive(ArchiveConfig(dicomweb_port=0), events=event_bus.bus) as arc:
        statuses = DICOMwebClient(arc.dicomweb_url).store_instances(images)
        assert len(statuses.ReferencedSOPSequence) == len(images)
        setup = event_bus.wait_for(lambda seen: len(seen) >= 1)
        assert [(e.kind, e.status) for e in setup] == [("dicomweb.stow", "200")]
        yield arc


@pytest.fixture
def client(archive: Archive) -> DICOMwebClient:
    assert archive.dicomweb_url is not None
    return DICOMwebClient(archive.dicomweb_url)


def _uids(found: list[dict], tag: str = "0020000D") -> set[str]:
    return {item[tag]["Value"][0] for item in found}


# --------------------------------------------------------------------------- QIDO-RS
def test_qido_matches_the_usual_keys(client: DICOMwebClient) -> None:
    assert _uids(client.search_for_studies()) == {STUDY_A, STUDY_B}
    assert _uids(client.search_for_studies(search_filters={"PatientID": "DW001"})) == {STUDY_A}
    assert _uids(client.search_for_studies(search_filters={"PatientName": "webb*"})) == {STUDY_A}
    assert _uids(client.search_for_studies(
        search_filters={"StudyDate": "20240101-20241231"})) == {STUDY_A}
    assert _uids(client.search_for_studies(search_filters={"AccessionNumber": "DWACC2"})) \
        == {STUDY_B}
    assert _uids(client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"})) \
        == {STUDY_B}
    assert _uids(client.search_for_studies(
        search_filters={"StudyInstanceUID": f"{STUDY_A},{STUDY_B}"})) == {STUDY_A, STUDY_B}
    study = client.search_for_studies(search_filters={"PatientID": "DW001"})[0]
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "WEBB^ALICE"}]}
    assert study["00201208"]["Value"] == [3] and study["00080061"]["Value"] == ["CT"]
    assert study["00081190"]["Value"][0].endswith(f"/studies/{STUDY_A}")


def test_qido_paging_and_includefield(client: DICOMwebClient, archive: Archive) -> None:
    first = client.search_for_studies(limit=1, offset=0)
    second = client.search_for_studies(limit=1, offset=1)
    assert len(first) == len(second) == 1 and _uids(first) != _uids(second)
    assert client.search_for_studies(offset=2) == []
    plain = requests.get(f"{archive.dicomweb_url}/studies?PatientID=DW001").json()[0]
    assert "00081030" not in plain  # StudyDescription is not a default attribute
    wide = requests.get(f"{archive.dicomweb_url}/studies?PatientID=DW001"
                        "&includefield=StudyDescription").json()[0]
    assert wide["00081030"]["Value"] == ["SYNTHETIC"]
    everything = requests.get(f"{archive.dicomweb_url}/studies?PatientID=DW001"
                              "&includefield=all").json()[0]
    assert everything["00100040"]["Value"] == ["F"]


def test_qido_series_and_instances(client: DICOMwebClient) -> None:
    series = client.search_for_series(STUDY_A)
    assert _uids(series, "0020000E") == {SERIES_A1, SERIES_A2}
    assert len(client.search_for_instances(STUDY_A)) == 3
    assert len(client.search_for_instances(STUDY_A, SERIES_A1)) == 2
    assert len(client.search_for_series(search_filters={"Modality": "MR"})) == 1
    assert len(client.search_for_instances()) == 4
    assert client.search_for_series(generate_uid()) == []


# --------------------------------------------------------------------------- WADO-RS
def test_wado_returns_the_stored_objects(client: DICOMwebClient, images: list[Dataset]) -> None:
    sent = {ds.SOPInstanceUID: ds for ds in images}
    study = client.retrieve_study(STUDY_A)
    assert sorted(ds.SOPInstanceUID for ds in study) == sorted(
        uid for uid, ds in sent.items() if ds.StudyInstanceUID == STUDY_A)
    for ds in study:
        assert ds.PixelData == sent[ds.SOPInstanceUID].PixelData
    assert len(client.retrieve_series(STUDY_A, SERIES_A1)) == 2
    one = study[0]
    again = client.retrieve_instance(STUDY_A, one.SeriesInstanceUID, one.SOPInstanceUID)
    assert again.SOPInstanceUID == one.SOPInstanceUID


def test_wado_metadata_omits_bulk_data(client: DICOMwebClient) -> None:
    metadata = client.retrieve_study_metadata(STUDY_A)
    assert len(metadata) == 3
    assert all("7FE00010" not in item for item in metadata)
    assert {item["00100020"]["Value"][0] for item in metadata} == {"DW001"}
    series = client.retrieve_series_metadata(STUDY_A, SERIES_A2)
    assert len(series) == 1


def test_wado_converts_between_uncompressed_syntaxes(archive: Archive) -> None:
    accept = ('multipart/related; type="application/dicom"; '
              f"transfer-syntax={ImplicitVRLittleEndian}")
    response = requests.get(f"{archive.dicomweb_url}/studies/{STUDY_B}",
                            headers={"Accept": accept}, timeout=10)
    assert response.status_code == 200
    boundary = response.headers["Content-Type"].split("boundary=")[1]
    part = response.content.split(f"--{boundary}".encode())[1]
    ds = dcmread(BytesIO(part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")))
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert ds.PatientID == "DW002"
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    assert requests.get(f"{archive.dicomweb_url}/studies/{STUDY_B}",
                        headers={"Accept": jpeg}, timeout=10).status_code == 406


# --------------------------------------------------------------------------- STOW-RS
def _cfind_study(archive: Archive, study_uid: str) -> list[Dataset]:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    identifier.NumberOfStudyRelatedInstances = None
    with FastClient(actor="test") as dimse:
        dimse.connect("127.0.0.1", archive.port, "TESTSCU", archive.config.ae_title,
                      [("1.2.840.10008.5.1.4.1.2.2.1", ["1.2.840.10008.1.2.1"])])
        status, found = dimse.find(identifier, "study")
    assert status == 0
    return found


def test_stow_stores_durably_and_dimse_sees_it(client: DICOMwebClient, archive: Archive) -> None:
    study = generate_uid()
    response = client.store_instances([make_image(study_uid=study, patient_id="DW003"),
                                       make_image(study_uid=study, patient_id="DW003")])
    assert len(response.ReferencedSOPSequence) == 2
    assert "FailedSOPSequence" not in response
    found = _cfind_study(archive, study)
    assert [int(ds.NumberOfStudyRelatedInstances) for ds in found] == [2]


def test_stow_statuses_200_202_409(archive: Archive) -> None:
    url = f"{archive.dicomweb_url}/studies"
    original = make_image(patient_id="DW004", fill=7)
    body, content_type = _multipart([_part10(original)])
    assert requests.post(url, data=body, headers={"Content-Type": content_type}).status_code == 200
    conflicting = make_image(patient_id="DW004", sop_uid=original.SOPInstanceUID,
                             study_uid=original.StudyInstanceUID,
                             series_uid=original.SeriesInstanceUID, fill=9)
    body, content_type = _multipart([_part10(conflicting)])
    response = requests.post(url, data=body, headers={"Content-Type": content_type})
    assert response.status_code == 409
    failed = Dataset.from_json(response.json()).FailedSOPSequence
    assert [(f.ReferencedSOPInstanceUID, f.FailureReason) for f in failed] == [
        (original.SOPInstanceUID, 0xC000)]
    body, content_type = _multipart([_part10(make_image(patient_id="DW005")), b"not dicom"])
    response = requests.post(url, data=body, headers={"Content-Type": content_type})
    assert response.status_code == 202
    result = Dataset.from_json(response.json())
    assert len(result.ReferencedSOPSequence) == 1
    assert [f.FailureReason for f in result.FailedSOPSequence] == [0xC000]


def test_stow_to_a_study_refuses_other_studies(archive: Archive) -> None:
    other = make_image(patient_id="DW006")
    body, content_type = _multipart([_part10(other)])
    response = requests.post(f"{archive.dicomweb_url}/studies/{STUDY_A}", data=body,
                             headers={"Content-Type": content_type})
    assert response.status_code == 409
    assert Dataset.from_json(response.json()).FailedSOPSequence[0].FailureReason == 0xC409
    assert _cfind_study(archive, other.StudyInstanceUID) == []


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("query", ["limit=abc", "offset=-1", "NoSuchAttribute=1",
                                   "includefield=NotAKeyword"])
def test_bad_query_parameters_are_400(archive: Archive, query: str) -> None:
    assert requests.get(f"{archive.dicomweb_url}/studies?{query}", timeout=10).status_code == 400


def test_unknown_uids_and_paths_are_404(archive: Archive) -> None:
    base = archive.dicomweb_url
    for path in (f"/studies/{generate_uid()}", f"/studies/{STUDY_A}/series/{generate_uid()}",
                 f"/studies/{STUDY_A}/series/{SERIES_A1}/instances/{generate_uid()}",
                 f"/studies/{generate_uid()}/metadata", "/nothing-here"):
        assert requests.get(base + path, timeout=10).status_code == 404, path
    assert requests.put(f"{base}/studies", data=b"", timeout=10).status_code == 405


def test_unsupported_media_types_are_406_and_415(archive: Archive) -> None:
    base = archive.dicomweb_url
    assert requests.get(f"{base}/studies", headers={"Accept": "application/dicom+xml"},
                        timeout=10).status_code == 406
    assert requests.get(f"{base}/studies/{STUDY_A}", headers={"Accept": "image/jpeg"},
                        timeout=10).status_code == 406
    assert requests.post(f"{base}/studies", data=b"{}", timeout=10,
                         headers={"Content-Type": "application/json"}).status_code == 415
    assert requests.post(f"{base}/studies", data=b"x", timeout=10, headers={
        "Content-Type": 'multipart/related; type="application/dicom+xml"; boundary=b'}
    ).status_code == 415


def test_broken_bodies_get_4xx_and_the_server_keeps_serving(archive: Archive,
                                                            events: list[Exchange]) -> None:
    base = archive.dicomweb_url
    dicom = 'multipart/related; type="application/dicom"; boundary=abc'
    assert requests.post(f"{base}/studies", data=b"no boundary in here",
                         headers={"Content-Type": dicom}, timeout=10).status_code == 400
    assert requests.post(f"{base}/studies", data=b"--abc\r\nContent-Type: application/dicom",
                         headers={"Content-Type": dicom}, timeout=10).status_code == 400
    assert requests.post(f"{base}/studies", data=b"x", timeout=10, headers={
        "Content-Type": "multipart/related; type=\"application/dicom\""}).status_code == 400
    host, port = "127.0.0.1", int(base.split(":")[2].split("/")[0])
    raw_requests = [
        # body shorter than announced, then the client disappears
        f"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nContent-Type: {dicom}\r\n"
        "Content-Length: 100000\r\n\r\n--abc\r\n".encode(),
        # a chunk size that is not hexadecimal
        f"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nContent-Type: {dicom}\r\n"
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n".encode(),
        b"\x16\x03\x01\x02\x00garbage that is not HTTP\r\n\r\n",
    ]
    for payload in raw_requests:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            try:
                sock.recv(4096)
            except OSError:
                pass
    # a client that walks away in the middle of a WADO-RS stream
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET /dicom-web/studies/{STUDY_A} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(100)
    client = DICOMwebClient(base)
    assert len(client.retrieve_study(STUDY_A)) == 3
    assert _uids(client.search_for_studies()) >= {STUDY_A, STUDY_B}
    statuses = {e.status for e in events if e.kind == "dicomweb.stow"}
    assert "400" in statuses


def test_every_request_is_one_exchange_event(client: DICOMwebClient,
                                             event_bus: RecordedEvents) -> None:
    """The bus is this test's own and the archive fixture waited for its setup STOW, so
    every event after that one is a request made here: no need to tell them apart by
    time. A last, sentinel request (a series search) comes back on the same kept-alive
    connection, whose handler emits each request's event before reading the next: once
    the sentinel's event is in, a duplicate of the three would be in too."""
    (setup,) = event_bus.events
    client.search_for_studies()
    client.retrieve_study(STUDY_B)
    client.retrieve_study_metadata(STUDY_B)
    client.search_for_series(STUDY_A)
    sentinel = f"/dicom-web/studies/{STUDY_A}/series"

    def done(seen: list[Exchange]) -> bool:
        return len(seen) >= 5 and any(e.detail["path"] == sentinel for e in seen)

    seen = event_bus.wait_for(done)
    assert seen[0] is setup
    ours = [e for e in seen[1:] if e.detail["path"] != sentinel]
    kinds = sorted((e.kind, e.status) for e in ours)
    assert kinds == [("dicomweb.qido", "200"), ("dicomweb.wado", "200"),
                     ("dicomweb.wado", "200")]
    wado = next(e for e in ours
                if e.kind == "dicomweb.wado" and "metadata" not in e.detail["path"])
    assert wado.actor == "archive" and wado.bytes > 2048 and wado.detail["path"].endswith(STUDY_B)
