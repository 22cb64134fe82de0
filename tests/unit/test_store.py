"""DicomStore: durable writes, conflict policy, index queries and C-FIND matching.

No network here: these pin the store's contract (what reaches disk, what the index
answers) so the integration tests can focus on the wire.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import (
    CTImageStorage, MRImageStorage, PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from simulators.dicom.qr import check_identifier, match_instances, run_find, status_of
from simulators.dicom.store import (
    STATUS_DUPLICATE_CONFLICT, STATUS_MISSING_ATTRIBUTE, DicomStore,
)
from simulators.errors import ProtocolError

TS = ExplicitVRLittleEndian


def make_image(*, patient_id: str = "PAT001", patient_name: str = "DOE^JANE",
               study_uid: str | None = None, series_uid: str | None = None,
               sop_uid: str | None = None, modality: str = "CT", study_date: str = "20240105",
               study_time: str = "101500", accession: str = "ACC001", series_number: int = 1,
               instance_number: int = 1, sop_class: str = CTImageStorage, size: int = 8,
               fill: int = 0) -> Dataset:
    """A small, valid-enough image (synthetic data only) with file meta set."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.PatientID, ds.PatientName = patient_id, patient_name
    ds.PatientBirthDate, ds.PatientSex = "19700101", "F"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = study_date, study_time, accession
    ds.StudyID, ds.StudyDescription, ds.ReferringPhysicianName = "1", "SYNTHETIC", "REF^DOC"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, series_number, instance_number
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes([fill % 256, 0]) * (size * size)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = TS
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture
def store(tmp_path: Path) -> DicomStore:
    s = DicomStore(tmp_path / "arc")
    yield s
    s.close()


def _identifier(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_put_writes_a_part10_file_and_indexes_it(store: DicomStore) -> None:
    ds = make_image()
    outcome = store.put(ds, transfer_syntax=TS, calling_ae="MODALITY1")
    assert outcome.ok and outcome.path is not None and outcome.path.is_file()
    back = dcmread(outcome.path)
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    assert back.file_meta.TransferSyntaxUID == TS
    assert back.file_meta.SourceApplicationEntityTitle.strip() == "MODALITY1"
    assert back.PixelData == ds.PixelData
    assert store.stats()["instances"] == 1 and store.stats()["bytes"] == outcome.path.stat().st_size
    assert list((store.root / "incoming").iterdir()) == []  # no temp file left behind


def test_index_survives_reopening(tmp_path: Path) -> None:
    first = DicomStore(tmp_path)
    ds = make_image()
    first.put(ds, transfer_syntax=TS)
    first.close()
    again = DicomStore(tmp_path)
    try:
        assert [i.sop_instance_uid for i in again.instances(ds.StudyInstanceUID)] == [ds.SOPInstanceUID]
    finally:
        again.close()


def test_identical_resend_is_idempotent_and_conflict_keeps_first(store: DicomStore) -> None:
    ds = make_image(fill=1)
    first = store.put(ds, transfer_syntax=TS)
    again = store.put(ds, transfer_syntax=TS)
    assert again.ok and again.duplicate
    changed = make_image(sop_uid=ds.SOPInstanceUID, study_uid=ds.StudyInstanceUID,
                         series_uid=ds.SeriesInstanceUID, fill=2)
    conflict = store.put(changed, transfer_syntax=TS)
    assert conflict.status == STATUS_DUPLICATE_CONFLICT and conflict.duplicate
    assert store.stats()["instances"] == 1
    assert dcmread(first.path).PixelData == ds.PixelData  # first copy kept


@pytest.mark.parametrize("missing", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_type1_uid_is_refused_and_nothing_written(store: DicomStore, missing: str) -> None:
    ds = make_image()
    delattr(ds, missing)
    outcome = store.put(ds, transfer_syntax=TS)
    assert outcome.status == STATUS_MISSING_ATTRIBUTE and missing in outcome.comment
    assert store.stats()["instances"] == 0
    assert not any(p.is_file() for p in store.objects.rglob("*"))


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_hostile_uid_is_refused_and_cannot_escape_a_lenient_store(store: DicomStore,
                                                                   tmp_path: Path) -> None:
    ds = make_image(study_uid="../../../etc")
    refused = store.put(ds, transfer_syntax=TS)
    assert refused.status == STATUS_MISSING_ATTRIBUTE and refused.path is None
    lenient = DicomStore(tmp_path / "legacy", lenient_uids=True)  # keeps it, inside objects/
    try:
        outcome = lenient.put(ds, transfer_syntax=TS)
        assert outcome.ok and lenient.objects in outcome.path.parents
    finally:
        lenient.close()


def test_concurrent_puts_from_several_threads(store: DicomStore) -> None:
    study = generate_uid()
    images = [make_image(study_uid=study, series_uid=f"1.2.3.{n % 4}", instance_number=n)
              for n in range(40)]
    errors: list[BaseException] = []

    def worker(chunk: list[Dataset]) -> None:
        try:
            for ds in chunk:
                assert store.put(ds, transfer_syntax=TS).ok
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(images[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    summary = store.studies()[0]
    assert (summary.series_count, summary.instance_count) == (4, 40)


@pytest.fixture
def populated(store: DicomStore) -> DicomStore:
    """Two patients, three studies (CT, CT+MR, MR) with known dates and names."""
    a, b, c = "1.2.826.0.1.1", "1.2.826.0.1.2", "1.2.826.0.1.3"
    images = [
        make_image(patient_id="P1", patient_name="Smith^Anna", study_uid=a, series_uid=a + ".1",
                   study_date="20240110", study_time="081500", accession="A1", instance_number=n)
        for n in (1, 2)
    ] + [
        make_image(patient_id="P1", patient_name="Smith^Anna", study_uid=b, series_uid=b + ".1",
                   study_date="20240215", study_time="143000", accession="A2"),
        make_image(patient_id="P1", patient_name="Smith^Anna", study_uid=b, series_uid=b + ".2",
                   modality="MR", sop_class=MRImageStorage, study_date="20240215",
                   study_time="143000", accession="A2", series_number=2),
        make_image(patient_id="P2", patient_name="Müller^Jörg", study_uid=c, series_uid=c + ".1",
                   modality="MR", sop_class=MRImageStorage, study_date="20240301",
                   study_time="090000", accession="B[1]"),
    ]
    for ds in images:
        assert store.put(ds, transfer_syntax=TS).ok
    return store


def _find(store: DicomStore, level: str, root: str = "STUDY", **keys: object) -> list[Dataset]:
    return list(run_find(store, level, _identifier(level, **keys), root=root))


def test_find_patient_level_with_counts(populated: DicomStore) -> None:
    found = _find(populated, "PATIENT", "PATIENT", PatientID="P1", PatientName="",
                  NumberOfPatientRelatedStudies="", NumberOfPatientRelatedInstances="")
    assert len(found) == 1
    assert found[0].PatientName == "Smith^Anna"
    assert (found[0].NumberOfPatientRelatedStudies, found[0].NumberOfPatientRelatedInstances) == (2, 4)


def test_find_study_level_matching_rules(populated: DicomStore) -> None:
    def uids(**keys: object) -> list[str]:
        keys.setdefault("StudyInstanceUID", "")
        return [d.StudyInstanceUID for d in _find(populated, "STUDY", **keys)]

    assert len(uids()) == 3  # universal
    assert uids(StudyDate="20240201-") == ["1.2.826.0.1.2", "1.2.826.0.1.3"]
    assert uids(StudyDate="-20240215") == ["1.2.826.0.1.1", "1.2.826.0.1.2"]
    assert uids(StudyTime="0800-0900") == ["1.2.826.0.1.1", "1.2.826.0.1.3"]
    assert uids(PatientName="smith*") == ["1.2.826.0.1.1", "1.2.826.0.1.2"]  # PN folds case
    assert uids(AccessionNumber="A?") == ["1.2.826.0.1.1", "1.2.826.0.1.2"]
    assert uids(AccessionNumber="B[1]") == ["1.2.826.0.1.3"]  # brackets are literal
    assert uids(AccessionNumber="a1") == []  # LO is case-sensitive
    assert uids(ModalitiesInStudy="MR") == ["1.2.826.0.1.2", "1.2.826.0.1.3"]
    assert uids(StudyInstanceUID=["1.2.826.0.1.1", "1.2.826.0.1.3"]) == ["1.2.826.0.1.1",
                                                                          "1.2.826.0.1.3"]


def test_find_study_response_carries_requested_keys(populated: DicomStore) -> None:
    found = _find(populated, "STUDY", StudyInstanceUID="1.2.826.0.1.2", ModalitiesInStudy="",
                  NumberOfStudyRelatedSeries="", NumberOfStudyRelatedInstances="",
                  InstitutionName="")
    assert len(found) == 1
    ds = found[0]
    assert list(ds.ModalitiesInStudy) == ["CT", "MR"]
    assert (ds.NumberOfStudyRelatedSeries, ds.NumberOfStudyRelatedInstances) == (2, 2)
    assert "InstitutionName" in ds and not ds.InstitutionName  # unsupported: zero length
    umlaut = _find(populated, "STUDY", StudyInstanceUID="1.2.826.0.1.3", PatientName="")[0]
    assert umlaut.SpecificCharacterSet == "ISO_IR 192" and umlaut.PatientName == "Müller^Jörg"


def test_find_series_and_image_levels(populated: DicomStore) -> None:
    series = _find(populated, "SERIES", StudyInstanceUID="1.2.826.0.1.2", Modality="MR",
                   SeriesInstanceUID="", NumberOfSeriesRelatedInstances="")
    assert [(s.SeriesInstanceUID, s.NumberOfSeriesRelatedInstances) for s in series] == [
        ("1.2.826.0.1.2.2", 1)]
    images = _find(populated, "IMAGE", StudyInstanceUID="1.2.826.0.1.1",
                   SeriesInstanceUID="1.2.826.0.1.1.1", SOPInstanceUID="", InstanceNumber="")
    assert [i.InstanceNumber for i in images] == [1, 2]


def test_match_instances_for_retrieve(populated: DicomStore) -> None:
    found = match_instances(populated, "STUDY", _identifier("STUDY",
                                                            StudyInstanceUID="1.2.826.0.1.2"))
    assert len(found) == 2 and all(i.path.is_file() for i in found)
    by_patient = match_instances(populated, "PATIENT", _identifier("PATIENT", PatientID="P1"))
    assert len(by_patient) == 4


@pytest.mark.parametrize("sop_class, keys", [
    (StudyRootQueryRetrieveInformationModelFind, {}),  # no level
    (StudyRootQueryRetrieveInformationModelFind, {"QueryRetrieveLevel": "FRAME"}),
    (StudyRootQueryRetrieveInformationModelFind, {"QueryRetrieveLevel": "PATIENT"}),
    (StudyRootQueryRetrieveInformationModelFind, {"QueryRetrieveLevel": "SERIES"}),
    (StudyRootQueryRetrieveInformationModelFind,
     {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2*"}),
    (PatientRootQueryRetrieveInformationModelFind,
     {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2"}),  # no PatientID
])
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_bad_identifiers_answer_a900(sop_class: str, keys: dict[str, str]) -> None:
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    with pytest.raises(ProtocolError) as caught:
        check_identifier(identifier, sop_class)
    assert status_of(caught.value) == 0xA900


def test_good_identifier_returns_level() -> None:
    identifier = _identifier("IMAGE", PatientID="P1", StudyInstanceUID="1.2",
                             SeriesInstanceUID="1.2.1")
    assert check_identifier(identifier, PatientRootQueryRetrieveInformationModelFind) == "IMAGE"


# ------------------------------------------------------------ header-only index keys
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, "1.2.840.10008.1.2",
                                    "1.2.840.10008.1.2.1.99"])
def test_index_keys_from_bytes_match_a_full_decode(syntax: str) -> None:
    """The raw fast path and pydicom's full conversion agree, charset included."""
    from pynetdicom.dsutils import encode

    from simulators.dicom.part10 import index_keys as _index_keys, read_index_keys

    ds = make_image(patient_name="Müller^Jörg", accession="A\\B", series_number=7,
                    instance_number=12)
    ds.SpecificCharacterSet = "ISO_IR 192"
    uid = UID(syntax)
    payload = encode(ds, uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated)
    keys = read_index_keys(payload, syntax)
    assert keys == _index_keys(ds)
    assert (keys["PatientName"], keys["AccessionNumber"]) == ("Müller^Jörg", "A\\B")
    assert (keys["SeriesNumber"], keys["InstanceNumber"]) == ("7", "12")


def test_put_encoded_stores_the_received_bytes(store: DicomStore) -> None:
    from simulators.dicom.fast import encode_dataset, read_part10

    ds = make_image(size=64, fill=3)
    payload = encode_dataset(ds, TS)
    outcome = store.put_encoded(payload, transfer_syntax=TS, calling_ae="CT1")
    assert outcome.ok
    assert read_part10(outcome.path).data == payload  # byte for byte behind the meta header
    assert dcmread(outcome.path).SOPInstanceUID == ds.SOPInstanceUID


# --------------------------------------------------------------- crash reconciliation
def test_reconcile_indexes_files_whose_rows_were_lost(tmp_path: Path) -> None:
    """synchronous=NORMAL may lose the last index rows on power loss, never the fsync'd
    files: reopening the store indexes them again, and unfinished temp files go."""
    import sqlite3

    first = DicomStore(tmp_path)
    kept, lost = make_image(), make_image(patient_id="P-LOST", accession="LOST1")
    assert first.put(kept, transfer_syntax=TS).ok
    assert first.put(lost, transfer_syntax=TS).ok
    first.close()
    with sqlite3.connect(tmp_path / "index.sqlite") as conn:  # the "crash": rows gone
        conn.execute("DELETE FROM instances WHERE sop_uid = ?", (lost.SOPInstanceUID,))
        conn.execute("DELETE FROM studies WHERE study_uid = ?", (lost.StudyInstanceUID,))
    conn.close()
    (tmp_path / "incoming" / "half.dcm.part").write_bytes(b"\x00" * 10)
    again = DicomStore(tmp_path)
    try:
        [found] = again.instances(sop_uids=[lost.SOPInstanceUID])
        assert found.path.is_file() and found.study_uid == lost.StudyInstanceUID
        studies = list(run_find(again, "STUDY", _identifier("STUDY", AccessionNumber="LOST1",
                                                       StudyInstanceUID="")))
        assert [s.StudyInstanceUID for s in studies] == [lost.StudyInstanceUID]
        assert again.stats()["instances"] == 2
        assert list((tmp_path / "incoming").iterdir()) == []
        assert again.reconcile() == 0  # idempotent
    finally:
        again.close()
