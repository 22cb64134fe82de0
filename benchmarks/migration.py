"""Migration rate: `pacsim migrate` with 1 and 4 workers vs DCMTK `movescu`, same archive.

Run from the repository root::

    python -m benchmarks.migration [--studies 2000] [--years 10] [--dirt typical]

One legacy archive is seeded (``simulators.legacy.seed``), then, each into a fresh
built-in target (an Archive with durable, fsync'd stores):

* ``pacsim migrate --workers 1`` and ``--workers 4`` (C-MOVE per study, then the
  full validation of every study: C-FIND study/series/image on both sides, every
  source header through the ingestion checks, one C-GET pixel hash per side);
* a validation-only pass over the migrated target (what validation alone costs);
* DCMTK ``movescu`` moving the same studies, one C-MOVE per study on one association
  (transfer only, no validation): the floor a migration cannot beat.

Printed: studies/s and instances/s of each, validation studies/s, the ratio of each
pacsim run to movescu, and the peak RSS of this process (the migrator; seeding runs
in worker processes). Each run's target is checked to hold every instance, so a
fast failure cannot count.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.store import DicomStore
from simulators.legacy.seed import seed_archive
from simulators.migration.runner import MigrationOptions, run_migration
from simulators.peers.dcmtk import find_dcmtk_tool, run_dcmtk

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def held(directory: Path) -> int:
    store = DicomStore(directory)
    try:
        return store.stats()["instances"]
    finally:
        store.close()


def migrate(legacy: Path, report: Path, workers: int, *, validate_only: bool = False,
            target: str = "builtin") -> tuple[float, dict]:
    started = time.perf_counter()
    result = run_migration(MigrationOptions(source=str(legacy), target=target, workers=workers,
                                            batch=50, report_dir=report,
                                            validate_only=validate_only))
    return time.perf_counter() - started, result.report


def movescu(legacy: Path, work: Path, study_uids: list[str]) -> tuple[float, int]:
    """movescu, one association, one C-MOVE per study (query files written here)."""
    queries = work / "queries"
    queries.mkdir(parents=True)
    paths = []
    for index, uid in enumerate(study_uids):
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = uid
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = queries / f"q{index:06d}.dcm"
        ds.save_as(path, implicit_vr=False, little_endian=True)
        paths.append(str(path))
    with Archive(ArchiveConfig(name="movescu-target", ae_title="MOVE_TARGET",
                               storage_dir=work / "target")) as target, \
            Archive(ArchiveConfig(name="legacy", ae_title="LEGACY_PACS", storage_dir=legacy,
                                  destinations={"MOVE_TARGET": ("127.0.0.1", target.port)})
                    ) as source:
        started = time.perf_counter()
        done = run_dcmtk("movescu", "-q", "-S", "-aet", "MOVESCU", "-aec", "LEGACY_PACS",
                         "-aem", "MOVE_TARGET", "127.0.0.1", str(source.port), *paths,
                         timeout=3600)
        seconds = time.perf_counter() - started
        moved = target.store.stats()["instances"]
        if moved == 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("E:")]
            raise SystemExit(f"movescu moved nothing (rc {done.returncode}): {errors[-5:]}")
    return seconds, moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--dirt", default="typical")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if find_dcmtk_tool("movescu") is None:
        raise SystemExit("DCMTK movescu is not installed (apt-get install dcmtk)")
    work = Path(tempfile.mkdtemp(prefix="pacsim-bench-migration-"))
    try:
        legacy = work / "legacy"
        summary = seed_archive(legacy, studies=args.studies, years=args.years, dirt=args.dirt,
                               seed=7)
        instances = summary.instances
        print(f"seeded {summary.studies} studies, {instances} instances in "
              f"{summary.seconds:.1f}s ({summary.studies_per_second:.0f} studies/s)")
        rows = []
        for workers in (1, 4):
            seconds, report = migrate(legacy, work / f"run-w{workers}", workers)
            stored = held(work / f"run-w{workers}" / "target-archive")
            rows.append((f"pacsim migrate --workers {workers}", seconds, stored,
                         report["signed_off"]))
        validation = _validation_rate(legacy, work)
        index = DicomStore(legacy)
        try:
            study_uids = [s.study_uid for s in index.studies()]
        finally:
            index.close()
        move_seconds, moved = movescu(legacy, work / "movescu", study_uids)
        print(f"\n{'run':32} {'s':>8} {'studies/s':>10} {'instances/s':>12} {'vs movescu':>11}")
        base = args.studies / move_seconds
        for name, secs, stored, signed in rows:
            rate = args.studies / secs
            print(f"{name:32} {secs:8.1f} {rate:10.1f} {stored / secs:12.1f} {rate / base:10.2f}x"
                  f"{'' if signed else '  (NOT signed off)'}")
        print(f"{'movescu (transfer only)':32} {move_seconds:8.1f} {base:10.1f} "
              f"{moved / move_seconds:12.1f} {1:10.2f}x")
        print(f"validation only (workers 1): {validation:.1f} studies/s")
        print(f"peak RSS of the migrator process: {peak_rss_mb():.0f} MB")
        if moved != rows[0][2]:
            print(f"note: movescu left {moved} instances in its target, pacsim {rows[0][2]}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _validation_rate(legacy: Path, work: Path) -> float:
    """Validation only, against the workers-1 run's target (already migrated)."""
    with Archive(ArchiveConfig(name="validated-target", ae_title="PACSIM_NEW",
                               storage_dir=work / "run-w1" / "target-archive")) as target:
        seconds, report = migrate(legacy, work / "validate", 1, validate_only=True,
                                  target=f"PACSIM_NEW@127.0.0.1:{target.port}")
    return report["totals"]["validated_or_mismatch"] / seconds


if __name__ == "__main__":
    sys.exit(main())
