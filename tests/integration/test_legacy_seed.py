"""A seeded legacy archive: deterministic, counted, valid, and served over real DICOM.

Expected values come from the seeder's *plan* (patient histories and world UIDs),
never from the archive's own index, and what is compared is what came back over a
real association: DCMTK findscu responses and the files a real storescp received.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.legacy.history import patient_histories
from simulators.legacy.seed import seed_archive
from simulators.peers.dcmtk import dcmtk_server, run_dcmtk
from simulators.world import World
from tests.helpers import free_port, needs, require_tool

UNTIL = dt.date(2026, 1, 1)
SEED, STUDIES, YEARS = 9, 120, 6
AET = "LEGACY_PACS"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("legacy") / "archive"
    seed_archive(out, studies=STUDIES, years=YEARS, dirt="typical", seed=SEED, workers=1,
                 until=UNTIL)
    return out


@pytest.fixture(scope="module")
def plan() -> list:
    return list(patient_histories(SEED, STUDIES, YEARS, UNTIL))


@pytest.fixture(scope="module")
def manifest(archive_dir: Path) -> dict:
    return json.loads((archive_dir / "manifest.json").read_text())


@pytest.fixture
@needs("storescp")
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    require_tool("storescp")
    port, folder = free_port(), tmp_path / "received"
    folder.mkdir()
    with dcmtk_server(["storescp", "-aet", "DEST", "-od", str(folder)], port):
        yield port, folder


@pytest.fixture
def served(archive_dir: Path, storescp: tuple[int, Path]) -> Iterator[Archive]:
    config = ArchiveConfig(name="legacy", ae_title=AET, storage_dir=archive_dir,
                           destinations={"DEST": ("127.0.0.1", storescp[0])})
    with Archive(config) as archive:
        yield archive


def _digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((directory / "objects").rglob("*.dcm"))}


def _findscu(port: int, out: Path, *keys: str) -> list:
    require_tool("findscu")
    out.mkdir(exist_ok=True)
    args = ["findscu", "-S", "-X", "-od", str(out), "-aec", AET]
    for key in keys:
        args += ["-k", key]
    result = run_dcmtk(*args, "127.0.0.1", str(port), timeout=60)
    assert result.returncode == 0, result.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


# ------------------------------------------------------------------- manifest, determinism
def test_manifest_counts_what_was_seeded(archive_dir: Path, manifest: dict, plan: list) -> None:
    planned = [s for h in plan for s in h.studies]
    counts = manifest["counts"]
    assert counts["studies"] == STUDIES == len(planned)
    assert counts["instances"] == sum(s.instances for s in planned)
    assert counts["series"] == sum(s.series for s in planned)
    splits = sum(1 for d in manifest["defects"] if d["class"] == "split-study")
    assert counts["patients"] == len(plan) + splits  # each split series: a fresh patient ID
    assert len(list((archive_dir / "objects").rglob("*.dcm"))) == counts["instances"]
    tally: dict[str, int] = {}
    for defect in manifest["defects"]:
        tally[defect["class"]] = tally.get(defect["class"], 0) + 1
    assert tally == manifest["defect_counts"] and sum(tally.values()) > 0
    assert len({(d["study_uid"], d["class"]) for d in manifest["defects"]}) == len(
        manifest["defects"])
    assert (manifest["seed"], manifest["dirt"], manifest["until"]) == (SEED, "typical",
                                                                        "2026-01-01")


def test_seeding_is_deterministic_with_and_without_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import simulators.legacy.seed as seed_module

    monkeypatch.setattr(seed_module, "CHUNK_STUDIES", 40)  # several chunks: two workers busy
    one = seed_archive(tmp_path / "one", studies=200, years=3, dirt="heavy", seed=4,
                       workers=1, until=UNTIL, rows=8)
    two = seed_archive(tmp_path / "two", studies=200, years=3, dirt="heavy", seed=4,
                       workers=2, until=UNTIL, rows=8)
    assert two.workers == 2
    assert (one.instances, one.defects) == (two.instances, two.defects)
    assert (tmp_path / "one" / "manifest.json").read_text() == \
        (tmp_path / "two" / "manifest.json").read_text()
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
    other = seed_archive(tmp_path / "other", studies=30, years=3, dirt="heavy", seed=5,
                         workers=1, until=UNTIL, rows=8)
    assert set(_digests(tmp_path / "other")).isdisjoint(_digests(tmp_path / "one"))
    assert other.studies == 30


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    from simulators.errors import ConfigError

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        seed_archive(tmp_path / "busy", studies=5, years=1, dirt="none", seed=1, workers=1)
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------- validity
@pytest.mark.dciodvfy
def test_clean_objects_pass_dciodvfy(archive_dir: Path, manifest: dict) -> None:
    require_tool("dciodvfy")
    dirty = {d["study_uid"] for d in manifest["defects"]}
    picked: dict[str, Path] = {}
    for study in sorted((archive_dir / "objects").iterdir()):
        if study.name in dirty:
            continue
        path = next(study.rglob("*.dcm"))
        picked.setdefault(str(dcmread(path, stop_before_pixels=True).Modality), path)
    assert set(picked) == {"CT", "MR", "CR", "DX", "MG", "US"}
    for modality, path in picked.items():
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                                timeout=60, check=False)
        errors = [line for line in (result.stdout + result.stderr).splitlines()
                  if line.startswith("Error")]
        assert errors == [], f"{modality}: {errors}"


# ------------------------------------------------------------------ served over DICOM
@pytest.mark.dcmtk
def test_findscu_by_patient_id(served: Archive, plan: list, tmp_path: Path) -> None:
    world = World(SEED)
    history = max(plan, key=lambda h: len(h.studies))
    assert len(history.studies) >= 3
    patient_id = world.patient(history.patient_index).patient_id
    responses = _findscu(served.port, tmp_path / "pid", "QueryRetrieveLevel=STUDY",
                         f"PatientID={patient_id}", "StudyInstanceUID", "StudyDate",
                         "NumberOfStudyRelatedInstances")
    expected = {world.uid("study", s.index): s for s in history.studies}
    assert {str(r.StudyInstanceUID) for r in responses} == set(expected)
    for response in responses:
        study = expected[str(response.StudyInstanceUID)]
        assert response.StudyDate == study.start.strftime("%Y%m%d")
        assert int(response.NumberOfStudyRelatedInstances) == study.instances


@pytest.mark.dcmtk
def test_findscu_by_date_range_and_series(served: Archive, plan: list, tmp_path: Path) -> None:
    studies = [s for h in plan for s in h.studies]
    low, high = dt.date(2024, 1, 1), dt.date(2024, 12, 31)
    in_range = [s for s in studies if low <= s.start.date() <= high]
    assert in_range
    responses = _findscu(served.port, tmp_path / "dates", "QueryRetrieveLevel=STUDY",
                         "StudyDate=20240101-20241231", "StudyInstanceUID")
    world = World(SEED)
    assert {str(r.StudyInstanceUID) for r in responses} == {world.uid("study", s.index)
                                                            for s in in_range}
    study = max(studies, key=lambda s: s.series)
    series = _findscu(served.port, tmp_path / "series", "QueryRetrieveLevel=SERIES",
                      f"StudyInstanceUID={world.uid('study', study.index)}", "SeriesInstanceUID",
                      "SeriesNumber", "NumberOfSeriesRelatedInstances")
    assert sorted(int(r.SeriesNumber) for r in series) == list(range(1, study.series + 1))
    assert all(int(r.NumberOfSeriesRelatedInstances) == study.per_series for r in series)


@pytest.mark.dcmtk
def test_movescu_delivers_the_study(served: Archive, plan: list,
                                    storescp: tuple[int, Path]) -> None:
    require_tool("movescu")
    study = max((s for h in plan for s in h.studies), key=lambda s: s.instances)
    study_uid = World(SEED).uid("study", study.index)
    result = run_dcmtk("movescu", "-S", "-aec", AET, "-aem", "DEST", "-k",
                       "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                       "127.0.0.1", str(served.port), timeout=60)
    assert result.returncode == 0, result.stderr
    received = [dcmread(p, stop_before_pixels=True) for p in storescp[1].iterdir()]
    assert len(received) == study.instances
    assert {str(ds.StudyInstanceUID) for ds in received} == {study_uid}


@pytest.mark.dcmtk
def test_a_duplicated_sop_uid_is_retrieved_with_each_own_study(
        tmp_path: Path, storescp: tuple[int, Path]) -> None:
    require_tool("movescu")
    out = tmp_path / "dups"
    seed_archive(out, studies=60, years=4, dirt="duplicate-sop-uid", seed=21, workers=1,
                 until=UNTIL, rows=8)
    copy_study = json.loads((out / "manifest.json").read_text())["defects"][0]["study_uid"]
    config = ArchiveConfig(name="dups", ae_title=AET, storage_dir=out,
                           destinations={"DEST": ("127.0.0.1", storescp[0])})
    with Archive(config) as archive:
        copies = archive.store.query(
            "SELECT sop_uid FROM instances WHERE study_uid = ? AND sop_uid IN "
            "(SELECT sop_uid FROM instances GROUP BY sop_uid HAVING COUNT(*) > 1)",
            (copy_study,))
        assert len(copies) == 1
        shared = copies[0]["sop_uid"]
        original = archive.store.query("SELECT study_uid FROM instances WHERE sop_uid = ? "
                                       "AND study_uid != ?", (shared, copy_study))[0][0]
        for study_uid in (copy_study, original):
            for old in storescp[1].iterdir():
                old.unlink()
            result = run_dcmtk("movescu", "-S", "-aec", AET, "-aem", "DEST", "-k",
                               "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                               "127.0.0.1", str(archive.port), timeout=60)
            assert result.returncode == 0, result.stderr
            got = [dcmread(p, stop_before_pixels=True) for p in storescp[1].iterdir()]
            mine = [ds for ds in got if ds.SOPInstanceUID == shared]
            assert len(mine) == 1 and mine[0].StudyInstanceUID == study_uid


# ---------------------------------------------------------------------------- memory
_RSS_SCRIPT = textwrap.dedent("""
    import datetime as dt, json, resource, sys
    from pathlib import Path
    from simulators.legacy.seed import seed_archive
    seed_archive(Path(sys.argv[1]), studies=int(sys.argv[2]), years=5, dirt="typical", seed=3,
                 workers=1, until=dt.date(2026, 1, 1), rows=8)
    print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
""")


def _peak_rss_kb(tmp_path: Path, studies: int) -> int:
    result = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(tmp_path / str(studies)),
                             str(studies)], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def test_memory_stays_flat(tmp_path: Path) -> None:
    small, large = _peak_rss_kb(tmp_path, 100), _peak_rss_kb(tmp_path, 1000)
    # 10x the archive; a whole-archive list would add tens of MB. Allow 15 MB of noise.
    assert large - small < 15_000, (small, large)


# ------------------------------------------------------------------ CLI and scenario
@pytest.mark.dcmtk
def test_cli_seed_then_serve(tmp_path: Path) -> None:
    require_tool("findscu")
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "simulators.cli", "legacy", "seed", "--studies", "25", "--years", "2",
               "--dirt", "none", "--seed", "2", "--out", str(out)]
    seeded = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                            check=False)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 25 studies" in seeded.stdout and "studies/s" in seeded.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT,
                           check=False)
    assert again.returncode == 2 and "seeded legacy archive" in again.stderr
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "simulators.cli", "legacy", "serve", str(out),
                               "--port", str(port), "--ae-title", AET], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        from simulators.peers.process import wait_for_port

        wait_for_port(port, server)
        responses = _findscu(port, tmp_path / "all", "QueryRetrieveLevel=STUDY",
                             "StudyInstanceUID")
        assert len(responses) == 25
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stderr is not None:
            server.stderr.close()


def test_scenario_step_seeds_an_archive_actor(tmp_path: Path) -> None:
    from simulators.scenario import load_scenario
    from simulators.scenario.environment import run_in_environment

    path = tmp_path / "seed.yaml"
    path.write_text(textwrap.dedent("""
        pacsim: 1
        name: seed a legacy PACS
        description: the legacy.seed step fills an archive actor
        environment:
          seed: 1
          target: builtin
          actors:
            legacy: {kind: archive, ae_title: LEGACY}
        steps:
          - do: legacy.seed
            actor: legacy
            studies: 30
            years: 3
            dirt: heavy
            seed: 5
            expect: {studies: 30, defects: {min: 1}}
    """))
    result = run_in_environment(load_scenario(path), step_timeout=120)
    steps = list(result.all_steps())
    assert result.exit_code == 0, [(s.status, s.message) for s in steps]
    assert "30 studies" in steps[0].message


def test_a_bulk_loaded_store_is_sealed_until_the_first_put(tmp_path: Path) -> None:
    """Opening a sealed store skips the reconcile walk; the first put unseals it, so the
    next open reconciles again (a file whose row was lost is indexed)."""
    from simulators.dicom.store import DicomStore
    from tests.unit.test_store import make_image

    out = tmp_path / "sealed"
    seed_archive(out, studies=5, years=1, dirt="none", seed=1, workers=1, until=UNTIL, rows=8)
    store = DicomStore(out)
    try:
        assert store.query("SELECT value FROM store_meta WHERE key = 'sealed'")[0][0] == "1"
        assert store.put(make_image(), transfer_syntax="1.2.840.10008.1.2.1").ok
        assert store.query("SELECT * FROM store_meta WHERE key = 'sealed'") == []
    finally:
        store.close()
    # a file the index does not know (as after a crash): found by the next open's walk
    stray = out / "objects" / "9.9" / "9.9" / "9.9.9.dcm"
    stray.parent.mkdir(parents=True)
    lost = make_image(patient_id="P-STRAY", accession="STRAY1")
    lost.save_as(stray, enforce_file_format=True)
    reopened = DicomStore(out)
    try:
        [found] = reopened.instances(sop_uids=[str(lost.SOPInstanceUID)])
        assert found.path == stray
    finally:
        reopened.close()
