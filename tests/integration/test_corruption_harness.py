"""The corruption harness (tests/corruption.py) does exactly what it says, over the wire.

Each test migrates a small seeded legacy (no dirt) into a fresh target, records
everything the target answers - C-FIND at study, series and image level, and every
instance by C-GET (header values, transfer syntax, pixel bytes and values) - applies
one corruption, records again, and asserts that the difference is exactly the one
the operation promises: nothing missing, nothing else changed. The built-in target is
corrupted while stopped (as the matrix test will: between the migration run and the
validate-only run) and re-opened, so a reopen (reconcile) must not undo the damage;
one test corrupts a running archive instead. Orthanc tests run in the orthanc lane.

The validator is not exercised here: the matrix test that uses this harness does that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from pydicom.dataset import FileMetaDataset
from pydicom.uid import RLELossless

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.fast.files import EncodedInstance, decode_dataset
from simulators.dicom.qrscu import QrClient
from simulators.dicom.store import DicomStore
from simulators.events import EventBus
from simulators.http.client import JsonClient
from simulators.legacy.seed import seed_archive
from simulators.migration.endpoints import BUILTIN_TARGET_AE, MIGRATOR_AE
from simulators.migration.inventory import text
from simulators.migration.runner import MigrationOptions, run_migration
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from tests.corruption import (
    LOST_INSTANCE_NUMBER, RECOMPRESSED_SYNTAX, BuiltinCorruptor, Corruptor, OrthancCorruptor,
    builtin_target_dir, lossy_builtin_target, lossy_orthanc,
)
from tests.helpers import needs, require_tool

STUDY_KEYS = ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
              "StudyDate", "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances")
SERIES_KEYS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances")
IMAGE_KEYS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")
FILE_KEYS = ("PatientID", "PatientName", "PatientBirthDate", "Modality", "SeriesInstanceUID")

View = dict[tuple[str, ...], Any]
#: Instances a lossy target keeps before it starts losing instance 2 of each series.
KEEP_FIRST = 6


# ---------------------------------------------------------------------- what the target says
def target_view(address: AeAddress) -> View:
    """Everything the target answers, flattened to ``{path: value}``: C-FIND at every
    level for every study, and each instance as a C-GET delivered it."""
    view: View = {}
    with QrClient(address, MIGRATOR_AE, events=EventBus()) as client:
        for study in client.find_matches("STUDY", {}, keys=STUDY_KEYS):
            uid = text(study, "StudyInstanceUID")
            for key in STUDY_KEYS[1:]:
                value = text(study, key)
                if key == "ModalitiesInStudy":  # a set: the order is the target's own
                    value = "\\".join(sorted(filter(None, value.split("\\"))))
                view[("study", uid, key)] = value
            classes: set[str] = set()
            for series in client.find_matches("SERIES", {"StudyInstanceUID": uid},
                                              keys=SERIES_KEYS):
                series_uid = text(series, "SeriesInstanceUID")
                for key in SERIES_KEYS[1:]:
                    view[("series", uid, series_uid, key)] = text(series, key)
                for image in client.find_matches("IMAGE", {"StudyInstanceUID": uid,
                                                           "SeriesInstanceUID": series_uid},
                                                 keys=IMAGE_KEYS):
                    sop = text(image, "SOPInstanceUID")
                    classes.add(text(image, "SOPClassUID"))
                    for key in IMAGE_KEYS[1:]:
                        view[("image", uid, series_uid, sop, key)] = text(image, key)
            for item in _get_study(client, uid, sorted(classes), series_of(view, uid)):
                ds = decode_dataset(BytesIO(item.data), item.transfer_syntax)
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = item.transfer_syntax
                view[("file", uid, item.sop_instance, "transfer_syntax")] = item.transfer_syntax
                view[("file", uid, item.sop_instance, "pixels")] = _sha(bytes(ds.PixelData))
                view[("file", uid, item.sop_instance, "values")] = _sha(
                    ds.pixel_array.astype("<u2").tobytes())
                for key in FILE_KEYS:
                    view[("file", uid, item.sop_instance, key)] = text(ds, key)
    return view


def _get_study(client: QrClient, study: str, classes: list[str],
               expected: dict[str, str]) -> list[EncodedInstance]:
    """Every instance of the study by C-GET, each once, in the syntax it is stored in.

    One C-GET proposes the uncompressed syntaxes; an instance that did not come (one
    stored RLE-compressed: the built-in archive does not decompress for a retrieve)
    is asked for again at image level with RLE Lossless alone. The target must
    deliver exactly the instances its C-FIND listed (``expected``: SOP -> series)."""
    got = client.get({"StudyInstanceUID": study}, classes, keep=True)
    instances = list(got.instances)
    missing = set(expected) - {item.sop_instance for item in instances}
    for sop in sorted(missing):
        instances += client.get({"StudyInstanceUID": study, "SeriesInstanceUID": expected[sop],
                                 "SOPInstanceUID": sop}, classes, level="IMAGE", keep=True,
                                transfer_syntaxes=[str(RLELossless)]).instances
    arrived = [item.sop_instance for item in instances]
    assert sorted(arrived) == sorted(expected), (got.summary(), sorted(missing))
    return instances


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def changes(before: View, after: View) -> dict[tuple[str, ...], tuple[Any, Any]]:
    """Every path whose value differs (``None`` for a path one side lacks)."""
    return {path: (before.get(path), after.get(path)) for path in before.keys() | after.keys()
            if before.get(path) != after.get(path)}


def studies(view: View) -> dict[str, dict[str, Any]]:
    """Per study: its patient ID, series -> SOP UIDs, for choosing victims."""
    found: dict[str, dict[str, Any]] = {}
    for path, value in view.items():
        if path[0] == "study" and path[2] == "PatientID":
            found.setdefault(path[1], {"series": {}})["PatientID"] = value
    for path in view:
        if path[0] == "image" and path[4] == "InstanceNumber":
            found[path[1]]["series"].setdefault(path[2], []).append(path[3])
    return found


def choose(view: View, what: str) -> str:
    """A study fit for one operation: ``alone`` (only study of its patient, 2+
    instances), ``multi-series`` (2+ series, the first of them with 2+ instances),
    ``deep`` (its largest series has 2+ instances)."""
    found = studies(view)
    patients = [info["PatientID"] for info in found.values()]
    for uid, info in sorted(found.items()):
        sizes = sorted((len(s) for s in info["series"].values()), reverse=True)
        if what == "alone" and patients.count(info["PatientID"]) == 1 and sum(sizes) >= 2:
            return uid
        first = info["series"][min(info["series"])]
        if what == "multi-series" and len(sizes) >= 2 and len(first) >= 2:
            return uid
        if what == "deep" and sizes[0] >= 2:
            return uid
    raise AssertionError(f"the seeded legacy has no {what} study: change its seed")


def series_of(view: View, study: str) -> dict[str, str]:
    """SOP Instance UID -> Series Instance UID of a study, as its image C-FIND said."""
    return {p[3]: p[2] for p in view if p[0] == "image" and p[1] == study}


def sops_of(view: View, study: str, series: str | None = None) -> set[str]:
    return {p[3] for p in view if p[0] == "image" and p[1] == study
            and (series is None or p[2] == series)}


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("legacy")
    # a fixed end date as well as a fixed seed: the studies the tests choose (one alone
    # of its patient, one with two series...) must exist whatever day the suite runs
    seed_archive(root, studies=8, years=2, dirt="none", seed=4, workers=1,
                 until=dt.date(2026, 6, 1))
    return root


@pytest.fixture(scope="module")
def migrated_builtin(legacy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in target of one migration; each test corrupts its own copy."""
    report = tmp_path_factory.mktemp("builtin-report")
    result = run_migration(MigrationOptions(source=str(legacy), target="builtin",
                                            report_dir=report, batch=8))
    assert result.signed_off, result.report["mismatches"]
    return builtin_target_dir(report)


@dataclass
class BuiltinCase:
    """A copy of the migrated built-in target: ``view()`` serves it and asks."""

    root: Path

    def view(self) -> View:
        with Archive(ArchiveConfig(name="target", ae_title=BUILTIN_TARGET_AE,
                                   storage_dir=self.root), EventBus()) as archive:
            return target_view(AeAddress(ae_title=BUILTIN_TARGET_AE, host="127.0.0.1",
                                         port=archive.port))

    #: A C-GET proposing uncompressed syntaxes gets an RLE-stored object as stored
    #: (the archive never decompresses; :func:`_get_study` then asks for RLE).
    delivers_as_stored = True

    def corrupt(self, operation: Callable[[Corruptor], Any]) -> Any:
        with BuiltinCorruptor.open(self.root) as corruptor:  # the target is stopped
            return operation(corruptor)

    def stored_syntaxes(self, study: str) -> set[str]:
        store = DicomStore(self.root)
        try:
            return {item.transfer_syntax for item in store.instances(study_uid=study)}
        finally:
            store.close()


@dataclass
class OrthancCase:
    orthanc: OrthancProcess

    def view(self) -> View:
        return target_view(AeAddress(ae_title=self.orthanc.ae_title, host="127.0.0.1",
                                     port=self.orthanc.dicom_port))

    #: Orthanc decompresses an RLE-stored object for a C-GET that proposes only
    #: uncompressed syntaxes, so the syntax it stores is asked of its REST API.
    delivers_as_stored = False

    def corrupt(self, operation: Callable[[Corruptor], Any]) -> Any:
        return operation(OrthancCorruptor(self.orthanc.rest_url))

    def stored_syntaxes(self, study: str) -> set[str]:
        found = self.orthanc.rest(f"/studies/{_orthanc_study(self.orthanc, study)}/instances")
        with requests.Session() as session:
            session.trust_env = False  # loopback
            return {session.get(f"{self.orthanc.rest_url}/instances/{item['ID']}/metadata/"
                                "TransferSyntax", timeout=10).text.strip() for item in found}


def _orthanc_study(orthanc: OrthancProcess, study_uid: str) -> str:
    studies = orthanc.rest("/studies?expand")
    return next(s["ID"] for s in studies if s["MainDicomTags"]["StudyInstanceUID"] == study_uid)


def _orthanc_settings() -> OrthancSettings:
    return OrthancSettings(ae_title="NEWPACS", extra={
        "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "DicomAlwaysAllowStore": True})


@pytest.fixture
def builtin_case(migrated_builtin: Path, tmp_path: Path) -> BuiltinCase:
    """A freshly migrated built-in target (a copy of the module's migration)."""
    root = tmp_path / "target"
    shutil.copytree(migrated_builtin, root)
    return BuiltinCase(root)


@pytest.fixture(scope="module")
@needs("Orthanc")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    """One Orthanc for the module (stopping one takes seconds); emptied per test."""
    require_tool("Orthanc")
    with OrthancProcess(_orthanc_settings()) as process:
        yield process


@pytest.fixture
@needs("Orthanc")
def orthanc_case(orthanc: OrthancProcess, legacy: Path, tmp_path: Path) -> OrthancCase:
    """The module's Orthanc, emptied, with the legacy just migrated into it."""
    rest = JsonClient(orthanc.rest_url, name="Orthanc")
    for patient in rest.get("/patients"):
        rest.delete(f"/patients/{patient}")
    assert rest.get("/instances") == []
    result = run_migration(MigrationOptions(
        source=str(legacy), target=f"NEWPACS@127.0.0.1:{orthanc.dicom_port}",
        report_dir=tmp_path / "report", batch=8))
    assert result.signed_off, result.report["mismatches"]
    return OrthancCase(orthanc)


# ---------------------------------------------------------------------- one test per operation
def check_drop_instance_loses_exactly_that_instance(case: BuiltinCase | OrthancCase) -> None:
    before = case.view()
    study = choose(before, "deep")
    sop = case.corrupt(lambda c: c.drop_instance(study))
    after = case.view()
    series = next(p[2] for p in before if p[0] == "image" and p[3] == sop)
    assert sop in sops_of(before, study) and sop not in sops_of(after, study)
    diff = changes(before, after)
    gone = {p for p in before if (p[0] == "image" and p[3] == sop)
            or (p[0] == "file" and p[2] == sop)}
    counts = {("study", study, "NumberOfStudyRelatedInstances"),
              ("series", study, series, "NumberOfSeriesRelatedInstances")}
    assert set(diff) == gone | counts
    assert all(diff[p][1] is None for p in gone)
    for path in counts:
        assert int(diff[path][1]) == int(diff[path][0]) - 1


def check_drop_study_loses_exactly_that_study(case: BuiltinCase | OrthancCase) -> None:
    before = case.view()
    study = choose(before, "deep")
    case.corrupt(lambda c: c.drop_study(study))
    after = case.view()
    diff = changes(before, after)
    assert set(diff) == {p for p in before if p[1] == study}
    assert all(new is None for _, new in diff.values())


PATIENT_CHANGES = pytest.mark.parametrize("operation, keyword, value", [
    ("set_patient_id", "PatientID", "CORRUPT-77"),
    ("set_patient_name", "PatientName", "Corrupt^Name"),
    ("set_birth_date", "PatientBirthDate", "19010101"),
])


def check_patient_attribute_changes_every_answer_of_the_study_only(
        case: BuiltinCase | OrthancCase, operation: str, keyword: str, value: str) -> None:
    before = case.view()
    study = choose(before, "alone")
    case.corrupt(lambda c: getattr(c, operation)(study, value))
    after = case.view()
    expected = {("study", study, keyword)} | {("file", study, sop, keyword)
                                              for sop in sops_of(before, study)}
    diff = changes(before, after)
    assert set(diff) == expected
    assert {new for _, new in diff.values()} == {value}


@PATIENT_CHANGES
def test_builtin_patient_attribute_changes_every_answer_of_the_study_only(
        builtin_case: BuiltinCase, operation: str, keyword: str, value: str) -> None:
    check_patient_attribute_changes_every_answer_of_the_study_only(builtin_case, operation,
                                                                   keyword, value)


@pytest.mark.orthanc
@PATIENT_CHANGES
def test_orthanc_patient_attribute_changes_every_answer_of_the_study_only(
        orthanc_case: OrthancCase, operation: str, keyword: str, value: str) -> None:
    check_patient_attribute_changes_every_answer_of_the_study_only(orthanc_case, operation,
                                                                   keyword, value)


def check_set_modality_relabels_one_series_only(case: BuiltinCase | OrthancCase) -> None:
    before = case.view()
    study = choose(before, "multi-series")
    series = case.corrupt(lambda c: c.set_modality(study, "OT"))
    after = case.view()
    members = sops_of(before, study, series)
    assert len(members) >= 2 and series in {p[2] for p in before if p[0] == "series"}
    diff = changes(before, after)
    assert set(diff) == ({("series", study, series, "Modality"),
                          ("study", study, "ModalitiesInStudy")}
                         | {("file", study, sop, "Modality") for sop in members})
    assert after[("series", study, series, "Modality")] == "OT"
    assert "OT" in after[("study", study, "ModalitiesInStudy")].split("\\")
    assert all(after[("file", study, sop, "Modality")] == "OT" for sop in members)


def check_change_pixels_alters_every_pixel_same_syntax(case: BuiltinCase | OrthancCase) -> None:
    before = case.view()
    study = choose(before, "deep")
    case.corrupt(lambda c: c.change_pixels(study))
    after = case.view()
    members = sops_of(before, study)
    diff = changes(before, after)
    assert set(diff) == {("file", study, sop, key) for sop in members
                         for key in ("pixels", "values")}
    assert case.stored_syntaxes(study) == {before[("file", study, sop, "transfer_syntax")]
                                           for sop in members}


def check_recompress_changes_values_and_transfer_syntax(case: BuiltinCase | OrthancCase) -> None:
    before = case.view()
    study = choose(before, "deep")
    syntax = case.corrupt(lambda c: c.recompress(study))
    after = case.view()
    assert syntax == RECOMPRESSED_SYNTAX
    members = sops_of(before, study)
    diff = changes(before, after)
    keys = ("pixels", "values") + (("transfer_syntax",) if case.delivers_as_stored else ())
    assert set(diff) == {("file", study, sop, key) for sop in members for key in keys}
    assert case.stored_syntaxes(study) == {syntax}
    if case.delivers_as_stored:
        assert all(after[("file", study, sop, "transfer_syntax")] == syntax for sop in members)


def test_builtin_drop_instance_loses_exactly_that_instance(builtin_case: BuiltinCase) -> None:
    check_drop_instance_loses_exactly_that_instance(builtin_case)


@pytest.mark.orthanc
def test_orthanc_drop_instance_loses_exactly_that_instance(orthanc_case: OrthancCase) -> None:
    check_drop_instance_loses_exactly_that_instance(orthanc_case)


def test_builtin_drop_study_loses_exactly_that_study(builtin_case: BuiltinCase) -> None:
    check_drop_study_loses_exactly_that_study(builtin_case)


@pytest.mark.orthanc
def test_orthanc_drop_study_loses_exactly_that_study(orthanc_case: OrthancCase) -> None:
    check_drop_study_loses_exactly_that_study(orthanc_case)


def test_builtin_set_modality_relabels_one_series_only(builtin_case: BuiltinCase) -> None:
    check_set_modality_relabels_one_series_only(builtin_case)


@pytest.mark.orthanc
def test_orthanc_set_modality_relabels_one_series_only(orthanc_case: OrthancCase) -> None:
    check_set_modality_relabels_one_series_only(orthanc_case)


def test_builtin_change_pixels_alters_every_pixel_same_syntax(builtin_case: BuiltinCase) -> None:
    check_change_pixels_alters_every_pixel_same_syntax(builtin_case)


@pytest.mark.orthanc
def test_orthanc_change_pixels_alters_every_pixel_same_syntax(orthanc_case: OrthancCase) -> None:
    check_change_pixels_alters_every_pixel_same_syntax(orthanc_case)


def test_builtin_recompress_changes_values_and_transfer_syntax(builtin_case: BuiltinCase) -> None:
    check_recompress_changes_values_and_transfer_syntax(builtin_case)


@pytest.mark.orthanc
def test_orthanc_recompress_changes_values_and_transfer_syntax(orthanc_case: OrthancCase) -> None:
    check_recompress_changes_values_and_transfer_syntax(orthanc_case)


# ---------------------------------------------------------------------- builtin specifics
def test_builtin_patient_change_on_a_shared_patient_stays_in_its_study(
        migrated_builtin: Path, tmp_path: Path) -> None:
    """A study sharing its Patient ID: the archive answers each study's own
    demographics at STUDY level and below, so the change shows on that study only."""
    root = tmp_path / "target"
    shutil.copytree(migrated_builtin, root)
    case = BuiltinCase(root)
    before = case.view()
    found = studies(before)
    patients = [info["PatientID"] for info in found.values()]
    shared = next(uid for uid, info in sorted(found.items())
                  if patients.count(info["PatientID"]) > 1)
    case.corrupt(lambda c: c.set_patient_name(shared, "Corrupt^Name"))
    diff = changes(before, case.view())
    assert diff and {key[1] for key in diff} == {shared}


def test_builtin_corrupted_while_running_answers_at_once(migrated_builtin: Path,
                                                         tmp_path: Path) -> None:
    root = tmp_path / "target"
    shutil.copytree(migrated_builtin, root)
    with Archive(ArchiveConfig(name="target", ae_title=BUILTIN_TARGET_AE, storage_dir=root),
                 EventBus()) as archive:
        address = AeAddress(ae_title=BUILTIN_TARGET_AE, host="127.0.0.1", port=archive.port)
        before = target_view(address)
        study = choose(before, "multi-series")
        corruptor = BuiltinCorruptor.of_archive(archive)
        sop = corruptor.drop_instance(study)
        series = corruptor.set_modality(study, "OT")
        after = target_view(address)
    assert sop not in sops_of(after, study) and sop in sops_of(before, study)
    assert after[("series", study, series, "Modality")] == "OT"
    assert {p[1] for p in changes(before, after)} == {study}


@pytest.mark.orthanc
def test_orthanc_of_a_run_corrupted_between_runs(legacy: Path, tmp_path: Path) -> None:
    """``--target orthanc``: the run's own Orthanc is stopped after it; the corruptor
    starts one on its storage, and the next Orthanc on it answers the change."""
    require_tool("Orthanc")
    report = tmp_path / "report"
    result = run_migration(MigrationOptions(source=str(legacy), target="orthanc",
                                            report_dir=report, batch=8))
    assert result.signed_off, result.report["mismatches"]

    def view() -> View:
        settings = _orthanc_settings()
        settings.workdir = report / "orthanc"
        with OrthancProcess(settings) as orthanc:
            return OrthancCase(orthanc).view()

    before = view()
    study = choose(before, "deep")
    with OrthancCorruptor.on_workdir(report / "orthanc") as corruptor:
        corruptor.drop_study(study)
    diff = changes(before, view())
    assert diff and set(diff) == {p for p in before if p[1] == study}


# ---------------------------------------------------------------------- lossy targets
def _check_lossy(legacy: Path, view: View, lost: list[str], received: list[str],
                 keep_first: int) -> None:
    """The target lacks exactly the instances numbered 2 that arrived after the first
    ``keep_first`` (those it says it lost), and holds every other the legacy has."""
    with Archive(ArchiveConfig(name="legacy", ae_title="LEGACY_PACS", storage_dir=legacy,
                               lenient_uids=True), EventBus()) as source:
        expected = target_view(AeAddress(ae_title="LEGACY_PACS", host="127.0.0.1",
                                         port=source.port))
    number = {p[3]: value for p, value in expected.items()
              if p[0] == "image" and p[4] == "InstanceNumber"}
    on_target = {p[3] for p in view if p[0] == "image"}
    assert sorted(received) == sorted(number)  # each instance sent once, none unknown
    should_lose = [sop for sop in received[keep_first:] if number[sop] == LOST_INSTANCE_NUMBER]
    assert should_lose, "the seeded legacy has no instance 2 after the first K: change K"
    assert any(number[sop] == LOST_INSTANCE_NUMBER for sop in received[:keep_first]), \
        "no instance 2 among the first K: the test would not show that they are kept"
    assert lost == should_lose
    assert set(number) - on_target == set(lost)


def test_lossy_builtin_target_acknowledges_and_loses_instance_two(legacy: Path,
                                                                  tmp_path: Path) -> None:
    events = EventBus()
    statuses: list[str] = []
    events.subscribe(lambda e: statuses.append(e.status)
                     if e.kind == "dicom.c-store" and e.actor == "lossy-target" else None)
    with lossy_builtin_target(KEEP_FIRST, events=events) as target:
        run_migration(MigrationOptions(source=str(legacy), target=target.spec,
                                       report_dir=tmp_path / "report", batch=8))
        view = target_view(target.address)
        lost, received = target.lost(), target.received()
    assert len(statuses) == len(received) and set(statuses) == {"0x0000"}  # all acknowledged
    _check_lossy(legacy, view, lost, received, KEEP_FIRST)


@pytest.mark.orthanc
def test_lossy_orthanc_acknowledges_and_loses_instance_two(legacy: Path, tmp_path: Path) -> None:
    require_tool("Orthanc")
    with lossy_orthanc(KEEP_FIRST, tmp_path / "orthanc") as target:
        result = run_migration(MigrationOptions(source=str(legacy), target=target.spec,
                                                report_dir=tmp_path / "report", batch=8))
        view = target_view(target.address)
        lost, received = target.lost(), target.received()
    # the mover saw no refused C-STORE: Orthanc answered success for the lost ones too
    assert [m for m in result.report["mismatches"] if m["class"] == "rejected"] == []
    _check_lossy(legacy, view, lost, received, KEEP_FIRST)
