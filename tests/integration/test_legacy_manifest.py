"""The manifest lists every study of an injected conflict (issue 17, the manifest half
of deliver 3).

For the four cross-study classes the expected (study, class) pairs are re-derived here
from the seeded *files* - every object read with pydicom - by the contract the
validator applies, written out independently of the seeder's own derivation:

* patient-name-conflict: every study of a PatientID whose files carry more than one
  distinct non-empty PatientName (exact compare after strip);
* birth-date-conflict: the same with PatientBirthDate;
* duplicate-sop-uid: every study holding a SOP Instance UID another study also holds;
* split-study: a study whose files carry more than one PatientID.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import pytest
from pydicom import dcmread

from simulators.legacy.dirt import DEFECT_CLASSES
from simulators.legacy.seed import seed_archive
from simulators.quality.values import quiet_pydicom

UNTIL = dt.date(2026, 1, 1)
CROSS = ("patient-name-conflict", "birth-date-conflict", "duplicate-sop-uid", "split-study")
PROFILES = ("heavy", *DEFECT_CLASSES)


def _text(ds, keyword: str) -> str:  # noqa: ANN001 - pydicom Dataset
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _from_files(root: Path) -> set[tuple[str, str]]:
    studies_of, ids_of, holders = defaultdict(set), defaultdict(set), defaultdict(set)
    values: dict[str, dict[str, set[str]]] = {"PatientName": defaultdict(set),
                                              "PatientBirthDate": defaultdict(set)}
    with quiet_pydicom():
        for path in (root / "objects").rglob("*.dcm"):
            ds = dcmread(path, stop_before_pixels=True)
            study, patient = _text(ds, "StudyInstanceUID"), _text(ds, "PatientID")
            studies_of[patient].add(study)
            ids_of[study].add(patient)
            holders[_text(ds, "SOPInstanceUID")].add(study)
            for keyword, seen in values.items():
                if _text(ds, keyword):
                    seen[patient].add(_text(ds, keyword))
    pairs = set()
    for keyword, cls in (("PatientName", CROSS[0]), ("PatientBirthDate", CROSS[1])):
        for patient, seen in values[keyword].items():
            if len(seen) > 1:
                pairs |= {(study, cls) for study in studies_of[patient]}
    for studies in holders.values():
        if len(studies) > 1:
            pairs |= {(study, CROSS[2]) for study in studies}
    pairs |= {(study, CROSS[3]) for study, ids in ids_of.items() if len(ids) > 1}
    return pairs


def _manifest(root: Path) -> list[dict[str, str]]:
    return json.loads((root / "manifest.json").read_text())["defects"]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("dirt", PROFILES)
def test_manifest_lists_exactly_the_cross_study_defects_in_the_files(
        tmp_path: Path, dirt: str, seed: int) -> None:
    out = tmp_path / "legacy"
    seed_archive(out, studies=90, years=4, dirt=dirt, seed=seed, workers=1, until=UNTIL,
                 rows=8)
    manifest = {(d["study_uid"], d["class"]) for d in _manifest(out)}
    truth = _from_files(out)
    assert {pair for pair in manifest if pair[1] in CROSS} == truth
    if dirt != "heavy":
        assert {cls for _, cls in manifest} <= {dirt}
    if dirt in CROSS:  # the class's own profile really injected it (not a vacuous pass)
        assert any(cls == dirt for _, cls in truth)


def test_a_name_conflict_lists_every_study_of_the_patient(tmp_path: Path) -> None:
    """The canonical-name studies are listed with the variant one (not the variant alone)."""
    out = tmp_path / "names"
    seed_archive(out, studies=90, years=4, dirt="patient-name-conflict", seed=2, workers=1,
                 until=UNTIL, rows=8)
    listed = {d["study_uid"] for d in _manifest(out)}
    by_patient: dict[str, dict[str, str]] = defaultdict(dict)
    for path in (out / "objects").rglob("*.dcm"):
        ds = dcmread(path, stop_before_pixels=True)
        by_patient[_text(ds, "PatientID")][_text(ds, "StudyInstanceUID")] = \
            _text(ds, "PatientName")
    conflicted = {pid: studies for pid, studies in by_patient.items()
                  if len(set(studies.values())) > 1}
    assert conflicted
    for studies in conflicted.values():
        assert len(studies) >= 3 and set(studies) <= listed
    assert listed == {uid for studies in conflicted.values() for uid in studies}
