"""The migration validator's verdicts, each checked against what the target holds.

Regression tests of issue 17's reproductions: a verdict ("validated", "signed off")
must stand on the target's own answer and an excuse must be proven to explain exactly
the one difference it excuses. Real loopback associations throughout: a seeded legacy
served by the Archive actor, the built-in target (or Orthanc), C-MOVE/C-GET/C-STORE.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pydicom import dcmread

from simulators.dicom.address import AeAddress
from simulators.dicom.qrscu import QrClient
from simulators.dicom.store import DicomStore
from simulators.legacy.seed import seed_archive
from simulators.migration.judge import TRANSFER_CLASSES
from simulators.migration.runner import MigrationOptions, run_migration
from simulators.migration.validation import pixel_digest
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from tests.corruption import lossy_builtin_target, lossy_orthanc
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
PACSIM = [sys.executable, str(ROOT / "cli.py")]


def seeded(root: Path, studies: int, dirt: str, seed: int) -> Path:
    seed_archive(root, studies=studies, years=5, dirt=dirt, seed=seed, workers=1)
    return root


def pairs(report: dict) -> set[tuple[str, str]]:
    """Every (study, class) the report names, data quality and transfer alike."""
    return {(m["study_uid"], m["class"]) for m in report["mismatches"]}


def states(report_dir: Path) -> dict[str, str]:
    with sqlite3.connect(report_dir / "checkpoint.sqlite") as conn:
        return dict(conn.execute("SELECT study_uid, state FROM studies"))


def test_a_changed_patient_id_is_never_excused(tmp_path: Path) -> None:
    """Repro 1: a morph rewriting every Patient ID; studies that also carry a name,
    birth-date or split-study defect used to end 'validated'. Now none may."""
    legacy = seeded(tmp_path / "legacy", 30, "heavy", 3)
    rules = tmp_path / "rules.yaml"
    rules.write_text('morph:\n  PatientID: {prefix: "LEG-"}\n')
    result = run_migration(MigrationOptions(source=str(legacy), target="builtin", via="get",
                                            rules=rules, rollback_threshold=1.0,
                                            report_dir=tmp_path / "report"))
    report = result.report
    assert not result.signed_off
    assert report["totals"]["validated"] == 0, report["explained"]
    changed = {m["study_uid"] for m in report["mismatches"]
               if m["class"] == "demographics" and "PatientID" in m["detail"]}
    assert changed == set(states(tmp_path / "report"))
    assert not [e for e in report["explained"] if "PatientID" in e["detail"]]


def test_a_study_the_legacy_cannot_deliver_is_never_validated(tmp_path: Path) -> None:
    """Repro 3: the legacy's retrieve failed, the target lacked the study, and the run
    was signed off. A failed transfer is now 'failed', whatever else the study shows."""
    legacy = seeded(tmp_path / "legacy", 12, "none", 4)
    store = DicomStore(legacy)
    try:
        broken = sorted(store.study_uids())[:2]
        for study_uid in broken:
            next(iter(store.instances(study_uid=study_uid))).path.unlink()
    finally:
        store.close()
    for via in ("get", "move"):
        report_dir = tmp_path / f"report-{via}"
        result = run_migration(MigrationOptions(source=str(legacy), target="builtin", via=via,
                                                rollback_threshold=1.0, report_dir=report_dir))
        assert not result.signed_off, via
        found = states(report_dir)
        assert {uid for uid, state in found.items() if state == "failed"} == set(broken), via
        assert sum(state == "validated" for state in found.values()) == 10, via


def test_verdicts_do_not_depend_on_order_batch_or_workers(tmp_path: Path) -> None:
    """Repro 5: conflict findings depended on migration order. The same legacy, run
    oldest-first on one worker and recent-years-first on three, gives the same
    (study, class) pairs, the same states and the same conflict groups."""
    legacy = seeded(tmp_path / "legacy", 45, "heavy", 3)
    one = run_migration(MigrationOptions(source=str(legacy), target="builtin", workers=1,
                                         batch=50, rollback_threshold=1.0,
                                         report_dir=tmp_path / "one"))
    other = run_migration(MigrationOptions(source=str(legacy), target="builtin",
                                           strategy="staged", since="2y", workers=3, batch=7,
                                           check_every=5, rollback_threshold=1.0,
                                           report_dir=tmp_path / "other"))
    assert pairs(one.report) == pairs(other.report)
    assert states(tmp_path / "one") == states(tmp_path / "other")
    groups = lambda r: sorted((c["class"], c["key"], tuple(c["studies"]))  # noqa: E731
                              for c in r["conflicts"])
    assert groups(one.report) == groups(other.report) and one.report["conflicts"]
    # a conflict is reported once, with every study of the patient
    for conflict in one.report["conflicts"]:
        if conflict["class"] == "patient-name-conflict":
            assert sum(conflict["values"].values()) >= 2
            assert len(conflict["studies"]) >= 2


def test_kill_and_resume_keeps_the_cross_study_state(tmp_path: Path) -> None:
    """Repro 4: after a kill -9 and resume the cross-study store held 534 SOP rows for
    771 instances, missing 18 defects. Identities are now committed with each study,
    so the resumed run finds exactly what an uninterrupted one finds."""
    legacy = seeded(tmp_path / "legacy", 60, "heavy", 5)
    whole = run_migration(MigrationOptions(source=str(legacy), target="builtin", batch=5,
                                           rollback_threshold=1.0, report_dir=tmp_path / "whole"))
    report_dir = tmp_path / "killed"
    command = [*PACSIM, "migrate", "--source", str(legacy), "--target", "builtin",
               "--batch", "5", "--rollback-threshold", "100%", "--report-dir", str(report_dir)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    checkpoint = report_dir / "checkpoint.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _done(checkpoint) < 15:
        assert process.poll() is None, "the run ended before the kill"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert 15 <= _done(checkpoint) < 60, "the kill must land mid-run"
    resumed = run_migration(MigrationOptions(source=str(legacy), target="builtin", batch=5,
                                             rollback_threshold=1.0, report_dir=report_dir))
    assert pairs(resumed.report) == pairs(whole.report)
    assert states(report_dir) == states(tmp_path / "whole")
    store = DicomStore(legacy)
    try:
        instances = sum(1 for uid in store.study_uids() for _ in store.instances(study_uid=uid))
    finally:
        store.close()
    with sqlite3.connect(checkpoint) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM sops").fetchone()[0]
    assert rows == instances


def _done(checkpoint: Path) -> int:
    if not checkpoint.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{checkpoint}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM studies WHERE state IN "
                                "('validated', 'mismatch', 'failed')").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.orthanc
def test_orthanc_holding_both_copies_of_a_duplicate_sop_uid(tmp_path: Path) -> None:
    """Repro 9: 'target did not return it' for duplicated SOP UIDs, while Orthanc holds
    and returns both copies. The pixel sample compares the copy *of the study*: checked
    for every duplicated SOP UID, on both studies, against the legacy's own copies."""
    require_tool("Orthanc")
    legacy = seeded(tmp_path / "legacy", 30, "duplicate-sop-uid", 6)
    settings = OrthancSettings(ae_title="NEWPACS", extra={
        "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "DicomAlwaysAllowStore": True})
    with OrthancProcess(settings) as orthanc:
        address = AeAddress(ae_title="NEWPACS", host="127.0.0.1", port=orthanc.dicom_port)
        result = run_migration(MigrationOptions(source=str(legacy), target=str(address),
                                                report_dir=tmp_path / "report", seed=1))
        transfer = [m for m in result.report["mismatches"] if m["class"] in TRANSFER_CLASSES]
        assert transfer == [] and result.signed_off, transfer
        duplicated = [c for c in result.report["conflicts"] if c["class"] == "duplicate-sop-uid"]
        assert duplicated
        store = DicomStore(legacy)
        target = QrClient(address, "PACSIM_TEST", timeout=30)
        try:
            for conflict in duplicated:
                sop_uid = conflict["key"].split()[-1]
                digests = set()
                for study_uid in conflict["studies"]:
                    item = next(i for i in store.instances(study_uid=study_uid)
                                if i.sop_instance_uid == sop_uid)
                    ds = dcmread(item.path)
                    own = hashlib.sha256(ds.pixel_array.tobytes()).hexdigest()
                    found = pixel_digest(target, study_uid, item.series_uid, sop_uid,
                                         str(ds.SOPClassUID))
                    assert found is not None and found[0] == own, (study_uid, sop_uid)
                    digests.add(own)
                assert len(digests) == 2, "the two copies carry different pixels"
        finally:
            target.close()
            store.close()


def test_lost_instances_are_never_excused_by_duplicate_sop_uids(tmp_path: Path) -> None:
    """Repro 2: legacy seeded with duplicate SOP UIDs, a target that acknowledges and
    loses every instance numbered 2: studies lacking instances ended 'validated' as
    if their duplicates explained it. Now every study that lost one is not validated
    and every study the target holds whole is."""
    _check_losses(tmp_path, lossy_builtin_target(0))


@pytest.mark.orthanc
def test_lost_instances_on_orthanc_are_never_excused(tmp_path: Path) -> None:
    """Repro 2 as found: Orthanc with a Lua filter that drops InstanceNumber 2."""
    require_tool("Orthanc")
    _check_losses(tmp_path, lossy_orthanc(0, tmp_path / "orthanc"))


def _check_losses(tmp_path: Path, lossy) -> None:  # noqa: ANN001 - a lossy target context
    legacy = seeded(tmp_path / "legacy", 30, "duplicate-sop-uid", 8)
    with lossy as target:
        result = run_migration(MigrationOptions(source=str(legacy), target=target.spec,
                                                rollback_threshold=1.0,
                                                report_dir=tmp_path / "report"))
        lost = set(target.lost())
    assert lost, "the target must have lost something for the test to mean anything"
    store = DicomStore(legacy)
    try:
        lost_in = {item.study_uid for uid in store.study_uids()
                   for item in store.instances(study_uid=uid) if item.sop_instance_uid in lost}
    finally:
        store.close()
    found = states(tmp_path / "report")
    assert {uid for uid, state in found.items() if state != "validated"} == lost_in
    assert not result.signed_off


def test_rollback_trigger_checked_every_n_studies(tmp_path: Path) -> None:
    """Repro 8: the trigger was checked per batch (50), not "after 20 studies". A target
    that starts losing images mid-run is stopped at the first check after the loss:
    within ``check_every`` studies of the first damaged one, with a batch of 50."""
    legacy = seeded(tmp_path / "legacy", 70, "none", 9)
    store = DicomStore(legacy)
    try:
        per_study = {uid: len(store.instances(study_uid=uid)) for uid in store.study_uids()}
    finally:
        store.close()
    order = sorted(per_study, key=lambda uid: (_study_date(legacy, uid), uid))
    keep_first = sum(per_study[uid] for uid in order[:25])  # loss starts at study 26
    with lossy_builtin_target(keep_first) as target:
        result = run_migration(MigrationOptions(source=str(legacy), target=target.spec,
                                                batch=50, check_every=20,
                                                report_dir=tmp_path / "report"))
    assert result.stopped == "rollback", result.report["stop_reason"]
    found = states(tmp_path / "report")
    done = [uid for uid in order if found[uid] in ("validated", "mismatch", "failed")]
    first_bad = min(order.index(uid) for uid, state in found.items() if state == "mismatch")
    assert first_bad >= 25
    # checks after 20, 40, 60 studies: the first one after the loss stops the run
    assert len(done) == 20 * (first_bad // 20 + 1) < 50, (len(done), first_bad)


def _study_date(legacy: Path, study_uid: str) -> str:
    store = DicomStore(legacy)
    try:
        rows = store.query("SELECT study_date FROM studies WHERE study_uid = ?", (study_uid,))
    finally:
        store.close()
    return str(rows[0][0]) if rows else ""
