"""The validator's acceptance test: a target corrupted on purpose, every corruption caught.

Each case seeds a legacy (a dirt profile and a seed), migrates it, checks the run was
signed off (no false alarm on an intact target), then damages the target behind its
back in eight known ways, one study each (tests/corruption.py), and re-validates
(``validate_only``). Zero escapes: every damaged study is reported with the class the
damage predicts and is not ``validated``. Zero false alarms: every other study stays
``validated`` with no transfer finding. The victims are chosen among studies whose
source carries dirt whenever possible: a defect must never excuse a corruption.

Both targets run every dirt profile (three seeds for ``heavy``); Orthanc in the
orthanc lane.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from simulators.dicom.address import AeAddress
from simulators.legacy.dirt import PROFILES
from simulators.legacy.seed import seed_archive
from simulators.migration.judge import Evidence
from simulators.migration.runner import MigrationOptions, run_migration
from simulators.migration.validation import PixelCheck
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from tests.corruption import BuiltinCorruptor, Corruptor, OrthancCorruptor, builtin_target_dir
from tests.helpers import require_tool

#: corruption -> the transfer class it must be reported with
EXPECTED = {
    "drop_instance": {"sop-uid-set", "instance-count"},
    "drop_study": {"missing-study"},
    "set_patient_id": {"demographics"},
    "set_patient_name": {"demographics"},
    "set_birth_date": {"demographics"},
    "set_modality": {"modality"},
    "change_pixels": {"pixel-hash"},
    "recompress": {"pixel-hash"},
}
#: On Orthanc a name or birth date is the patient record's: changed on one study of a
#: shared patient it may not show at all, so the record of a whole patient is changed
#: (every study of it a victim). The built-in archive answers each study's own values.
STUDIES = 36


def _cases() -> Iterator[tuple[str, int]]:
    for index, profile in enumerate(sorted(PROFILES)):
        yield profile, 11 + index
    yield "heavy", 2
    yield "heavy", 5


def _run(legacy: Path, target: str, report: Path, *, validate_only: bool = False) -> dict:
    return run_migration(MigrationOptions(source=str(legacy), target=target, report_dir=report,
                                          rollback_threshold=1.0, workers=2,
                                          validate_only=validate_only)).report


def _verdicts(report: Path) -> tuple[dict[str, str], dict[str, Evidence], dict[str, set[str]]]:
    with sqlite3.connect(report / "checkpoint.sqlite") as conn:
        states = dict(conn.execute("SELECT study_uid, state FROM studies"))
        evidence = {uid: Evidence.from_json(text)
                    for uid, text in conn.execute("SELECT study_uid, json FROM evidence")}
        findings: dict[str, set[str]] = {}
        for uid, cls in conn.execute("SELECT study_uid, cls FROM findings "
                                     "WHERE kind = 'transfer'"):
            findings.setdefault(uid, set()).add(cls)
        quality: dict[str, set[str]] = {}
        for uid, cls in conn.execute("SELECT study_uid, cls FROM findings WHERE kind = 'quality'"):
            quality.setdefault(uid, set()).add(cls)
    return states, evidence, {"transfer": findings, "quality": quality}  # type: ignore[dict-item]


def choose_victims(report: Path, *, patient_alone: bool) -> dict[str, list[str]]:
    """The studies each corruption damages: one validated study with >= 2 instances on
    the target, in none of the cross-study groups whose excuses the damage could borrow;
    dirty studies first, so a data-quality defect is on the victim whenever there is
    one. With ``patient_alone`` (Orthanc) a name or birth-date change takes a study
    alone of its patient, or else every study of one patient (the patient record)."""
    states, evidence, findings = _verdicts(report)
    quality = findings["quality"]
    with sqlite3.connect(report / "checkpoint.sqlite") as conn:
        patients: dict[str, set[str]] = {}
        for study_uid, patient_id in conn.execute("SELECT DISTINCT study_uid, patient_id "
                                                  "FROM demo"):
            patients.setdefault(patient_id, set()).add(study_uid)
    # the only defects whose excuses a damage could borrow: a lost instance "held under
    # the other study", a Patient ID "one of the study's own"
    borrowed = {"duplicate-sop-uid", "split-study"}
    # on the target (a study whose every instance the rules exclude is validated, not held)
    clean = {uid for uid, state in states.items()
             if state == "validated" and evidence[uid].found and evidence[uid].target_count
             and not quality.get(uid, set()) & borrowed}
    usable = sorted((uid for uid in clean if evidence[uid].target_count >= 2),
                    key=lambda uid: (not quality.get(uid), uid))
    taken: set[str] = set()
    victims: dict[str, list[str]] = {}
    record_level = ("set_patient_name", "set_birth_date") if patient_alone else ()
    for name in (*record_level, *(n for n in EXPECTED if n not in record_level)):
        if name in record_level:
            groups = sorted((sorted(studies) for studies in patients.values()
                             if studies <= clean and not studies & taken),
                            key=lambda group: (len(group), group))
            assert groups, f"no patient left for {name}: seed a larger legacy"
            victims[name] = groups[0]
        else:
            pool = [u for u in usable if u not in taken]
            assert pool, f"no study left for {name}: seed a larger legacy"
            victims[name] = pool[:1]
        taken.update(victims[name])
    return victims


def corrupt(corruptor: Corruptor, victims: dict[str, list[str]]) -> None:
    operations: dict[str, Callable[[str], object]] = {
        "drop_instance": corruptor.drop_instance, "drop_study": corruptor.drop_study,
        "set_patient_id": lambda s: corruptor.set_patient_id(s, "CORRUPT-ID-1"),
        "set_patient_name": lambda s: corruptor.set_patient_name(s, "CORRUPT^NAME"),
        "set_birth_date": lambda s: corruptor.set_birth_date(s, "19000101"),
        "set_modality": lambda s: corruptor.set_modality(s, "ZZ"),
        "change_pixels": corruptor.change_pixels, "recompress": corruptor.recompress,
    }
    for name, studies in victims.items():
        for study_uid in studies:
            operations[name](study_uid)


def assert_every_corruption_caught(report: Path, victims: dict[str, list[str]],
                                   before: dict[str, str]) -> None:
    states, _evidence, findings = _verdicts(report)
    transfer = findings["transfer"]
    escapes = {(name, uid): (states[uid], sorted(transfer.get(uid, ())))
               for name, studies in victims.items() for uid in studies
               if states[uid] == "validated" or not EXPECTED[name] & transfer.get(uid, set())}
    assert escapes == {}, f"corruptions not caught: {escapes}"
    damaged = {uid for studies in victims.values() for uid in studies}
    false_alarms = {uid: (state, sorted(transfer.get(uid, ()))) for uid, state in states.items()
                    if uid not in damaged and (state != before[uid] or transfer.get(uid))}
    assert false_alarms == {}, f"intact studies flagged: {false_alarms}"


def check_matrix(legacy: Path, target: str, report: Path,
                 corruptor: Callable[[], Corruptor], *, patient_alone: bool = False) -> None:
    first = _run(legacy, target, report)
    before, _, _ = _verdicts(report)
    assert first["signed_off"], [m for m in first["mismatches"]
                                 if m["class"] in {c for s in EXPECTED.values() for c in s}]
    victims = choose_victims(report, patient_alone=patient_alone)
    with _closing(corruptor()) as damage:
        corrupt(damage, victims)
    again = _run(legacy, target, report, validate_only=True)
    assert not again["signed_off"]
    assert_every_corruption_caught(report, victims, before)


@contextmanager
def _closing(corruptor: Corruptor) -> Iterator[Corruptor]:
    try:
        yield corruptor
    finally:
        close = getattr(corruptor, "close", None)
        if close is not None:
            close()


@pytest.mark.slow
@pytest.mark.parametrize(("dirt", "seed"), list(_cases()))
def test_builtin_target_corruption_matrix(dirt: str, seed: int, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    seed_archive(legacy, studies=STUDIES, years=4, dirt=dirt, seed=seed, workers=1)
    report = tmp_path / "report"
    check_matrix(legacy, "builtin", report,
                 lambda: BuiltinCorruptor.open(builtin_target_dir(report)))


@pytest.mark.orthanc
@pytest.mark.parametrize(("dirt", "seed"), [(dirt, seed + 20) for dirt, seed in _cases()])
def test_orthanc_target_corruption_matrix(dirt: str, seed: int, tmp_path: Path) -> None:
    require_tool("Orthanc")
    legacy = tmp_path / "legacy"
    seed_archive(legacy, studies=STUDIES, years=4, dirt=dirt, seed=seed, workers=1)
    settings = OrthancSettings(ae_title="NEWPACS", workdir=tmp_path / "orthanc", extra={
        "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "DicomAlwaysAllowStore": True})
    with OrthancProcess(settings) as orthanc:
        target = str(AeAddress(ae_title="NEWPACS", host="127.0.0.1", port=orthanc.dicom_port))
        check_matrix(legacy, target, tmp_path / "report",
                     lambda: OrthancCorruptor(orthanc.rest_url), patient_alone=True)


def test_pixel_check_all_catches_one_damaged_instance(tmp_path: Path) -> None:
    """A sample of one instance per study cannot see one damaged instance among many;
    ``--pixel-check all`` compares every instance and must."""
    legacy = tmp_path / "legacy"
    seed_archive(legacy, studies=8, years=2, dirt="none", seed=4, workers=1)
    report = tmp_path / "report"
    every = PixelCheck("all")
    first = run_migration(MigrationOptions(source=str(legacy), target="builtin",
                                           report_dir=report, pixel_check=every)).report
    assert first["signed_off"] and first["pixel_check"] == "all"
    _states, evidence, _findings = _verdicts(report)
    study_uid = max(evidence, key=lambda uid: (evidence[uid].target_count, uid))
    assert evidence[study_uid].target_count >= 3
    assert len(evidence[study_uid].pixels) == evidence[study_uid].target_count
    with BuiltinCorruptor.open(builtin_target_dir(report)) as damage:
        sop_uid = damage.change_pixels_of_one(study_uid)
    again = run_migration(MigrationOptions(source=str(legacy), target="builtin",
                                           report_dir=report, pixel_check=every,
                                           validate_only=True)).report
    found = [m for m in again["mismatches"] if m["class"] == "pixel-hash"]
    assert [m["study_uid"] for m in found] == [study_uid] and sop_uid in found[0]["detail"]
