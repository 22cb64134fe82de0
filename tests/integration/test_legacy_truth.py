"""The legacy tells the truth (issue 17): its C-FIND answers what its files hold, and a
seeded directory can be moved, copied and served from anywhere.

Expected values come from the seeded *files* (every object read with pydicom), never
from the archive's index; answers come over real associations (pynetdicom's Q/R SCU
against the Archive actor, or against ``pacsim legacy serve`` in a subprocess).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.qrscu import QrClient
from simulators.dicom.store import DicomStore
from simulators.legacy.seed import seed_archive
from simulators.peers.process import wait_for_port
from tests.helpers import free_port
from tests.unit.test_store import make_image

UNTIL = dt.date(2026, 1, 1)
ROOT = Path(__file__).resolve().parents[2]
DEMOGRAPHICS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex")
AET = "LEGACY_PACS"

Values = tuple[str, str, str, str]


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _values(ds: Dataset) -> Values:
    return tuple(_text(ds, kw) for kw in DEMOGRAPHICS)  # type: ignore[return-value]


class Files:
    """What the seeded files carry, per study and per series (read from every file)."""

    def __init__(self, root: Path) -> None:
        #: study -> series -> (series number, set of demographics its files carry)
        self.series: dict[str, dict[str, tuple[int, set[Values]]]] = defaultdict(dict)
        for path in sorted((root / "objects").rglob("*.dcm")):
            ds = dcmread(path, stop_before_pixels=True)
            study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
            number, seen = self.series[study].get(series, (int(ds.SeriesNumber), set()))
            seen.add(_values(ds))
            self.series[study][series] = (number, seen)

    def series_values(self, study: str, series: str) -> Values:
        _number, seen = self.series[study][series]
        assert len(seen) == 1, f"series {series} itself disagrees: {seen}"
        return next(iter(seen))

    def study_values(self, study: str) -> Values:
        """One value per study; a split study answers the series written (and indexed)
        first, series number 1 - the store's documented first-seen rule."""
        first = min(self.series[study], key=lambda uid: self.series[study][uid][0])
        return self.series_values(study, first)

    def conflicted_ids(self, position: int) -> set[str]:
        """Patient IDs whose files carry more than one value at ``position``."""
        seen: dict[str, set[str]] = defaultdict(set)
        for by_series in self.series.values():
            for _number, values in by_series.values():
                for value in values:
                    if value[position]:
                        seen[value[0]].add(value[position])
        return {pid for pid, names in seen.items() if len(names) > 1}


def _peer(archive: Archive) -> AeAddress:
    return AeAddress(ae_title=archive.config.ae_title, host="127.0.0.1", port=archive.port)


@pytest.fixture(scope="module", params=["patient-name-conflict", "birth-date-conflict", "heavy"])
def seeded(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Files, QrClient]]:
    out = tmp_path_factory.mktemp("truth") / "legacy"
    seed_archive(out, studies=80, years=5, dirt=request.param, seed=2, workers=1, until=UNTIL,
                 rows=8)
    files = Files(out)
    config = ArchiveConfig(name="legacy", ae_title=AET, storage_dir=out, lenient_uids=True)
    with Archive(config) as archive, QrClient(_peer(archive), "VALIDATOR",
                                              keep_open=True) as client:
        yield files, client


def test_study_level_cfind_answers_each_study_files_demographics(
        seeded: tuple[Files, QrClient]) -> None:
    files, client = seeded
    # the seeded conflict really is there, so a patient-row answer would be caught
    assert files.conflicted_ids(1) | files.conflicted_ids(2)
    status, answers = client.find("STUDY", {}, keys=("StudyInstanceUID", *DEMOGRAPHICS))
    assert status == 0 and len(answers) == len(files.series)
    differences = {str(ds.StudyInstanceUID): (_values(ds), files.study_values(
        str(ds.StudyInstanceUID))) for ds in answers
        if _values(ds) != files.study_values(str(ds.StudyInstanceUID))}
    assert differences == {}


def test_series_and_image_level_answer_their_own_files(seeded: tuple[Files, QrClient]) -> None:
    files, client = seeded
    checked = 0
    for study, by_series in files.series.items():
        status, answers = client.find("SERIES", {"StudyInstanceUID": study},
                                      keys=("SeriesInstanceUID", *DEMOGRAPHICS))
        assert status == 0
        assert {str(ds.SeriesInstanceUID): _values(ds) for ds in answers} == {
            series: files.series_values(study, series) for series in by_series}
        if len({files.series_values(study, s) for s in by_series}) > 1:  # a split study
            for series in by_series:
                _, images = client.find("IMAGE", {"StudyInstanceUID": study,
                                                  "SeriesInstanceUID": series},
                                        keys=("SOPInstanceUID", *DEMOGRAPHICS))
                assert images and {_values(ds) for ds in images} == {
                    files.series_values(study, series)}
        checked += len(answers)
    assert checked == sum(len(s) for s in files.series.values())


def test_study_level_matching_uses_each_study_values(seeded: tuple[Files, QrClient]) -> None:
    """Matching on PatientID, PatientBirthDate and PatientName (exact and wildcard) at
    STUDY level selects by the same per-study values the answers carry."""
    files, client = seeded
    by_id: dict[str, dict[str, Values]] = defaultdict(dict)
    for study in files.series:
        values = files.study_values(study)
        by_id[values[0]][study] = values
    conflicted = (files.conflicted_ids(1) | files.conflicted_ids(2)) & set(by_id)
    assert conflicted
    for pid in sorted(conflicted):
        studies = by_id[pid]
        _, answers = client.find("STUDY", {"PatientID": pid}, keys=("StudyInstanceUID",))
        assert {str(ds.StudyInstanceUID) for ds in answers} == set(studies)
        for birth in {v[2] for v in studies.values() if v[2]}:
            _, answers = client.find("STUDY", {"PatientID": pid, "PatientBirthDate": birth},
                                     keys=("StudyInstanceUID",))
            assert {str(ds.StudyInstanceUID) for ds in answers} == {
                uid for uid, v in studies.items() if v[2] == birth}
        for name in {v[1] for v in studies.values() if v[1]}:
            for key, wanted in ((name, lambda v, n=name: v.casefold() == n.casefold()),
                                (name[:-1] + "*",
                                 lambda v, n=name: v.casefold().startswith(n[:-1].casefold()))):
                _, answers = client.find("STUDY", {"PatientID": pid, "PatientName": key},
                                         keys=("StudyInstanceUID", "PatientName"))
                assert {str(ds.StudyInstanceUID) for ds in answers} == {
                    uid for uid, v in studies.items() if wanted(v[1])}, key
        # PATIENT level keeps one record per Patient ID
        _, patients = client.find("PATIENT", {"PatientID": pid}, keys=("PatientName",))
        assert len(patients) == 1


def test_an_old_index_gets_per_study_demographics_from_its_files(tmp_path: Path) -> None:
    """An index written before the per-study columns (the patient row only) answers
    the second spelling once reopened: the columns are filled from the files."""
    root = tmp_path / "old"
    store = DicomStore(root)
    first, second = ("1.2.826.0.1.3680043.10.17.1", "Meadows^Jason"), \
        ("1.2.826.0.1.3680043.10.17.2", "MEADOWS^JASON")
    for study_uid, name in (first, second):
        ds = make_image(patient_id="PID17", patient_name=name, study_uid=study_uid)
        assert store.put(ds, transfer_syntax=str(ds.file_meta.TransferSyntaxUID)).ok
    store.close()
    with sqlite3.connect(root / "index.sqlite") as conn:  # the pre-issue-17 schema
        for column in ("patient_name", "birth_date", "sex"):
            conn.execute(f"ALTER TABLE studies DROP COLUMN {column}")
        for column in ("patient_id", "patient_name", "birth_date", "sex"):
            conn.execute(f"ALTER TABLE series DROP COLUMN {column}")
    with Archive(ArchiveConfig(storage_dir=root)) as archive:
        _, answers = QrClient(_peer(archive), "VALIDATOR").find(
            "STUDY", {"PatientID": "PID17"}, keys=("StudyInstanceUID", "PatientName"))
        assert sorted((str(ds.StudyInstanceUID), str(ds.PatientName)) for ds in answers) == \
            [first, second]
        _, answers = QrClient(_peer(archive), "VALIDATOR").find(
            "SERIES", {"StudyInstanceUID": second[0]}, keys=("PatientName",))
        assert [str(ds.PatientName) for ds in answers] == [second[1]]


# --------------------------------------------------------- a seeded directory travels
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "simulators.cli", *args]


def _env() -> dict[str, str]:
    """The subprocess imports this checkout whatever its working directory."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["mv", "cp -r"])
def test_a_seeded_legacy_moved_or_copied_is_served_from_another_cwd(
        tmp_path: Path, how: str) -> None:
    seeding, serving = tmp_path / "seeding", tmp_path / "serving"
    seeding.mkdir()
    serving.mkdir()
    seeded = subprocess.run(
        _cli("legacy", "seed", "--studies", "40", "--years", "3", "--dirt", "heavy", "--seed",
             "7", "--out", "A"),
        cwd=seeding, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert seeded.returncode == 0, seeded.stderr
    files = Files(seeding / "A")
    expected = {study: sum(1 for p in (seeding / "A" / "objects").rglob("*.dcm")
                           if dcmread(p, stop_before_pixels=True).StudyInstanceUID == study)
                for study in files.series}
    target = tmp_path / "elsewhere" / "B"
    target.parent.mkdir()
    if how == "mv":
        shutil.move(str(seeding / "A"), str(target))
    else:
        shutil.copytree(seeding / "A", target)
        shutil.rmtree(seeding / "A")  # the copy must not lean on the original's files
    port = free_port()
    server = subprocess.Popen(
        _cli("legacy", "serve", os.path.relpath(target, serving), "--port", str(port),
             "--ae-title", AET),
        cwd=serving, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, server)
        peer = AeAddress(ae_title=AET, host="127.0.0.1", port=port)
        with QrClient(peer, "MIGRATOR", keep_open=True) as client:
            status, answers = client.find("STUDY", {}, keys=(
                "StudyInstanceUID", "NumberOfStudyRelatedInstances", *DEMOGRAPHICS))
            assert status == 0
            assert {str(ds.StudyInstanceUID): int(ds.NumberOfStudyRelatedInstances)
                    for ds in answers} == expected
            assert {str(ds.StudyInstanceUID): _values(ds) for ds in answers} == {
                study: files.study_values(study) for study in files.series}
        classes = sorted({str(dcmread(p, stop_before_pixels=True).SOPClassUID)
                          for p in target.joinpath("objects").rglob("*.dcm")})
        client = QrClient(peer, "MIGRATOR")
        for study, count in expected.items():
            got = client.get({"StudyInstanceUID": study}, classes)
            assert got.ok and got.received == count, (study, got.summary())
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stderr is not None:
            server.stderr.close()
