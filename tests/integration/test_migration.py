"""`pacsim migrate` end to end on loopback: real C-MOVE, C-GET, C-STORE and C-FIND.

A small legacy archive is built with the world (clean studies spread over years),
served by the existing Archive actor, and migrated into the built-in target. The
tests check what arrives over the wire (target index, C-MOVE requests the legacy
saw), never the runner's own bookkeeping alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.store import DicomStore
from simulators.events import EventBus, Exchange
from simulators.migration.runner import ROLLBACK_MINIMUM, MigrationOptions, run_migration
from simulators.world import StudyContext, World, build_study

ROOT = Path(__file__).resolve().parents[2]
PACSIM = [sys.executable, str(ROOT / "cli.py")]
MODALITIES = ("CT", "MR", "CR")


def build_legacy(root: Path, studies: int, *, seed: int = 3, spacing_days: int = 60,
                 series: int = 2, per_series: int = 2) -> dict[str, int]:
    """A clean legacy archive: ``studies`` studies, one every ``spacing_days`` back
    from today, two studies per patient; returns {study_uid: instance count}."""
    world = World(seed)
    store = DicomStore(root)
    today = dt.datetime.now().replace(microsecond=0, second=0)
    counts: dict[str, int] = {}
    try:
        for index in range(studies):
            patient = world.patient(index % max(1, studies // 2))
            ctx = StudyContext.unscheduled(
                patient, world, MODALITIES[index % len(MODALITIES)], station_name="LEGACY1",
                index=index, performed_start=today - dt.timedelta(days=spacing_days * index + 1))
            images = build_study(ctx, series=series, per_series=per_series, rows=16, cols=16)
            for ds in images:
                assert store.put(ds, transfer_syntax=ExplicitVRLittleEndian).ok
            counts[ctx.study_uid] = len(images)
    finally:
        store.close()
    return counts


def write_morph_rules(path: Path) -> Path:
    path.write_text('morph:\n  PatientID: {prefix: "LEG-"}\n  PatientName: {swap: true}\n')
    return path


def target_instances(report_dir: Path) -> dict[str, int]:
    """Instances per study in the built-in target's index, read after the run."""
    store = DicomStore(report_dir / "target-archive")
    try:
        return {s.study_uid: s.instance_count for s in store.studies()}
    finally:
        store.close()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("legacy")
    return root, build_legacy(root, 24)


def test_full_migration_into_builtin_target_is_signed_off(legacy, tmp_path: Path) -> None:
    root, counts = legacy
    result = run_migration(MigrationOptions(source=str(root), target="builtin",
                                            report_dir=tmp_path, workers=3, batch=5))
    assert result.signed_off and result.exit_code == 0
    assert target_instances(tmp_path) == counts  # every instance of every study arrived
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["mismatches"] == [] and report["signed_off"] is True
    assert report["totals"]["validated"] == len(counts)
    assert report["totals"]["move_requests"] == len(counts)
    assert report["strategy"] == "full" and report["stages"][0]["name"] == "all"
    csv_lines = (tmp_path / "validation.csv").read_text().splitlines()
    assert csv_lines == ["study_uid,class,kind,detail"]
    assert "SIGNED OFF" in (tmp_path / "validation.html").read_text()


def test_staged_moves_recent_years_first_then_the_rest(legacy, tmp_path: Path) -> None:
    root, counts = legacy
    events = EventBus()
    moved: list[str] = []
    events.subscribe(lambda e: moved.append(e.detail["study_uid"])
                     if e.kind == "dicom.c-move" and e.actor == "migrate-source" else None)
    result = run_migration(MigrationOptions(source=str(root), target="builtin", strategy="staged",
                                            since="2y", report_dir=tmp_path, batch=4),
                           events=events)
    assert result.signed_off
    dates = dict(sqlite3.connect(tmp_path / "checkpoint.sqlite").execute(
        "SELECT study_uid, study_date FROM studies").fetchall())
    boundary = (dt.date.today() - dt.timedelta(days=730)).strftime("%Y%m%d")
    recent = [uid for uid in moved if dates[uid] >= boundary]
    assert 0 < len(recent) < len(counts)
    assert moved[:len(recent)] == recent  # the whole recent stage went before any older study
    assert sorted(moved) == sorted(counts)
    stages = {s["name"]: s["studies"] for s in result.report["stages"]}
    assert stages == {"since 2y": {"validated": len(recent)},
                      "older": {"validated": len(counts) - len(recent)}}


def test_parallel_moves_only_the_window(legacy, tmp_path: Path) -> None:
    root, counts = legacy
    result = run_migration(MigrationOptions(source=str(root), target="builtin",
                                            strategy="parallel", since="1y", report_dir=tmp_path,
                                            via="get"))
    in_target = target_instances(tmp_path)
    boundary = (dt.date.today() - dt.timedelta(days=365)).strftime("%Y%m%d")
    assert result.signed_off
    assert 0 < len(in_target) < len(counts)
    store = DicomStore(root)
    try:
        recent = {s.study_uid for s in store.studies() if s.study_date >= boundary}
    finally:
        store.close()
    assert set(in_target) == recent


def test_sample_first_pass_catches_a_systematic_mismatch(legacy, tmp_path: Path) -> None:
    root, counts = legacy
    rules = write_morph_rules(tmp_path / "rules.yaml")
    result = run_migration(MigrationOptions(source=str(root), target="builtin", via="get",
                                            rules=rules, sample=5, seed=11,
                                            report_dir=tmp_path / "report"))
    assert result.stopped == "sample" and result.exit_code == 1
    assert len(target_instances(tmp_path / "report")) == 5  # the bulk run never started
    report = result.report
    assert {m["class"] for m in report["mismatches"]} == {"demographics"}
    assert len(report["tripped"]) == 5
    detail = report["tripped"][0]["detail"]
    assert "PatientID" in detail and "'LEG-" in detail and "PatientName" in detail
    assert "sample-first pass: 5 of 5" in report["stop_reason"]


def test_rollback_trigger_stops_the_bulk_run(legacy, tmp_path: Path) -> None:
    root, counts = legacy
    rules = write_morph_rules(tmp_path / "rules.yaml")
    result = run_migration(MigrationOptions(source=str(root), target="builtin", via="get",
                                            rules=rules, batch=5, rollback_threshold=0.10,
                                            report_dir=tmp_path / "report"))
    assert result.stopped == "rollback" and not result.signed_off
    done = result.report["totals"]["mismatch"]
    # it waited for the minimum, then stopped at the first batch boundary beyond it
    assert ROLLBACK_MINIMUM <= done < ROLLBACK_MINIMUM + 5 and done < len(counts)
    assert result.report["totals"]["pending"] == len(counts) - done
    assert result.report["tripped"] and "rollback trigger" in result.report["stop_reason"]


def test_kill_and_resume_migrates_nothing_twice(tmp_path: Path) -> None:
    counts = build_legacy(tmp_path / "legacy", 30, seed=5)
    events = EventBus()
    stored: list[Exchange] = []
    events.subscribe(lambda e: stored.append(e) if e.kind == "dicom.c-store"
                     and e.actor == "target" else None)
    with Archive(ArchiveConfig(name="target", ae_title="NEW_PACS"), events) as target, \
            Archive(ArchiveConfig(name="legacy", ae_title="OLD_PACS",
                                  storage_dir=tmp_path / "legacy",
                                  destinations={"NEW_PACS": ("127.0.0.1", target.port)}),
                    events) as legacy:
        moves = _move_requests(events)
        command = [*PACSIM, "migrate", "--source", f"OLD_PACS@127.0.0.1:{legacy.port}",
                   "--target", f"NEW_PACS@127.0.0.1:{target.port}", "--batch", "2",
                   "--report-dir", str(tmp_path / "report")]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        checkpoint = tmp_path / "report" / "checkpoint.sqlite"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and _validated(checkpoint) < 6:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        before = _validated(checkpoint)
        assert 6 <= before < len(counts), "the kill must land mid-run"
        rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert "SIGNED OFF" in rerun.stdout
        # one C-MOVE per study over both runs, plus at most one image-level C-MOVE that
        # completes the study whose move the kill interrupted
        assert len(counts) <= len(moves) <= len(counts) + 1, [m.detail for m in moves]
        assert {s.study_uid: s.instance_count for s in target.studies()} == counts
        assert not [e for e in stored if e.detail.get("duplicate")]  # nothing sent twice
    report = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert report["totals"]["validated"] == len(counts) and report["signed_off"]


def _move_requests(events: EventBus) -> list[Exchange]:
    """C-MOVE requests the legacy itself received (its acceptor's events)."""
    moves: list[Exchange] = []
    events.subscribe(lambda e: moves.append(e) if e.kind == "dicom.c-move"
                     and e.actor == "legacy" else None)
    return moves


def _validated(checkpoint: Path) -> int:
    if not checkpoint.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{checkpoint}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM studies WHERE state = 'validated'"
                                ).fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize(("args", "field"), [
    (["--source", "/nonexistent/legacy", "--target", "builtin"], "--source"),
    (["--source", "OLD@127.0.0.1:notaport", "--target", "builtin"], "--source"),
    (["--source", "{legacy}", "--target", "NEW@127.0.0.1:70000"], "--target"),
    (["--source", "{legacy}", "--target", "builtin", "--rollback-threshold", "lots"],
     "--rollback-threshold"),
    (["--source", "{legacy}", "--target", "builtin", "--strategy", "staged", "--since", "2x"],
     "--since"),
    (["--source", "{legacy}", "--target", "builtin", "--workers", "0"], "--workers"),
    (["--source", "{legacy}", "--target", "NEW@127.0.0.1:{closed}"], "--target"),
])
def test_cli_bad_input_exits_2_naming_the_field(legacy, tmp_path: Path, args: list[str],
                                                field: str) -> None:
    from tests.helpers import free_port

    root, _ = legacy
    argv = [a.format(legacy=root, closed=free_port()) for a in args]
    done = subprocess.run([*PACSIM, "migrate", *argv, "--report-dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert field in done.stderr


def test_every_dirt_class_found_and_no_false_mismatch(tmp_path: Path) -> None:
    """A heavily dirty seeded archive: every injected defect detected (manifest), none
    reported on a clean study, and the run still signed off (data quality is not a
    transfer mismatch). The staged order is the hard case: copies of duplicated SOP
    UIDs reach the target before their originals, and patients' studies arrive out of
    order, so the target's patient rows differ from the legacy's."""
    from simulators.quality.classes import DEFECT_CLASSES
    from simulators.legacy.seed import seed_archive

    root = tmp_path / "legacy"
    seed_archive(root, studies=50, years=5, dirt="heavy", seed=7, workers=1)
    result = run_migration(MigrationOptions(source=str(root), target="builtin", strategy="staged",
                                            since="2y", workers=2, batch=10,
                                            report_dir=tmp_path / "report"))
    manifest = result.report["manifest"]
    assert set(manifest["classes"]) == set(DEFECT_CLASSES)  # the seed covers every class
    for cls, figures in manifest["classes"].items():
        assert figures["detected"] == figures["injected"] > 0, (cls, figures)
    assert manifest["missed"] == [] and manifest["false_mismatches"] == []
    assert result.signed_off, result.report["stop_reason"]
    assert result.report["totals"]["validated"] == 50


def test_many_batches_with_many_workers_leave_no_association_behind(tmp_path: Path) -> None:
    """Each batch runs on a fresh thread pool; the threads' associations to the legacy
    used to stay open until the end of the run, so after a few batches the legacy
    (limit 50) refused more with A-ASSOCIATE-RJ 'local limit exceeded' and whole batches
    failed. 15 batches x 4 workers x 2 associations would be 120."""
    root = tmp_path / "legacy"
    counts = build_legacy(root, 60, series=1, per_series=1, spacing_days=20)
    result = run_migration(MigrationOptions(source=str(root), target="builtin",
                                            report_dir=tmp_path / "report", workers=4, batch=4))
    assert result.signed_off, result.report["stop_reason"]
    assert result.report["totals"]["validated"] == 60
    assert target_instances(tmp_path / "report") == counts
