"""Legacy archive seeding at scale: rate, flat memory, and a plain-pydicom peer.

Run from the repository root::

    python -m benchmarks.legacy_seed [--studies 100000] [--years 10] [--dirt typical]
                                     [--workers 2] [--peer-sample 1000] [--audit]

Seeds ``--studies`` studies into a temporary directory (``--out`` keeps it) and
prints studies/s and instances/s, and the resident memory of the seeder and its
workers sampled at 10%, 50% and 100% of the run (flat = streaming works), plus the
peak RSS (``ru_maxrss``) of the seeder and of its largest worker.

The peer, measured in the same run: the same kind of studies (same world, same
shapes, 16x16 pixels) built with the world's IOD builders and written with plain
``pydicom.dcmwrite``, one file per instance, on one process, for the first
``--peer-sample`` instances - the obvious way to write a synthetic archive. The
ratio printed is the seeder's instances/s per worker over the peer's, so the pool's
second core does not count as a speed-up of the code. The peer writes no index and
applies no dirt; the seeder does both. ``--audit`` also times the offline
data-quality audit (every header through the migration checks).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pydicom import dcmwrite

from simulators.legacy.build import study_context
from simulators.legacy.history import patient_histories
from simulators.legacy.seed import seed_archive
from simulators.world import World, iter_study

UNTIL = dt.date(2026, 1, 1)


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


class _Sampler:
    """RSS of this process and its workers when the run passes 10%, 50% and 100%."""

    MARKS = (0.10, 0.50, 1.00)

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int, int]] = []
        self._next = 0

    def __call__(self, done: int, total: int, instances: int, elapsed: float) -> None:
        while self._next < len(self.MARKS) and done >= self.MARKS[self._next] * total:
            workers = [_rss_kb(child) for child in _children(os.getpid())]
            self.samples.append((self.MARKS[self._next], _rss_kb(os.getpid()),
                                 max(workers, default=0), instances))
            self._next += 1
            print(f"  {self.MARKS[self._next - 1]:4.0%}: {done} studies, {instances} "
                  f"instances, {elapsed:7.1f}s", flush=True)


def _peer(seed: int, years: int, sample: int, directory: Path) -> tuple[int, float]:
    """Plain pydicom: build each instance with the world's builders and dcmwrite it."""
    world = World(seed, non_ascii=0.1)
    written, started = 0, time.perf_counter()
    for history in patient_histories(seed, max(sample, 1), years, UNTIL):
        for plan in history.studies:
            ctx = study_context(world, plan)
            for ds in iter_study(ctx, series=plan.series, per_series=plan.per_series,
                                 rows=16, cols=16):
                dcmwrite(directory / f"{ds.SOPInstanceUID}.dcm", ds, enforce_file_format=True)
                written += 1
                if written >= sample:
                    return written, time.perf_counter() - started
    return written, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--dirt", default="typical")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--peer-sample", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="keep the archive here (default: temp)")
    parser.add_argument("--audit", action="store_true", help="also time the offline audit")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="pacsim-legacy-bench-"))
    out = args.out or scratch / "archive"
    try:
        print(f"seeding {args.studies} studies over {args.years} years, dirt {args.dirt} "
              f"-> {out}", flush=True)
        sampler = _Sampler()
        summary = seed_archive(out, studies=args.studies, years=args.years, dirt=args.dirt,
                               seed=args.seed, workers=args.workers, until=UNTIL,
                               progress=sampler)
        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"seeded: {summary.studies} studies, {summary.series} series, "
              f"{summary.instances} instances, {summary.patients} patients, "
              f"{sum(summary.defects.values())} defects in {summary.seconds:.1f}s "
              f"with {summary.workers} worker(s)")
        print(f"rate: {summary.studies_per_second:.1f} studies/s, "
              f"{summary.instances_per_second:.0f} instances/s "
              f"({summary.built_slow} dirty studies built object by object)")
        print("memory (RSS, MB): mark  seeder  largest-worker  instances")
        for mark, main_kb, worker_kb, instances in sampler.samples:
            print(f"  {mark:4.0%}  {main_kb / 1024:7.1f}  {worker_kb / 1024:7.1f}  {instances}")
        print(f"peak RSS: seeder {peak_self / 1024:.1f} MB, largest worker "
              f"{peak_children / 1024:.1f} MB")
        peer_dir = scratch / "peer"
        peer_dir.mkdir()
        count, seconds = _peer(args.seed, args.years, args.peer_sample, peer_dir)
        peer_rate = count / seconds if seconds else 0.0
        per_worker = summary.instances_per_second / max(summary.workers, 1)
        print(f"peer (plain pydicom build + dcmwrite, 1 process, no index, no dirt): "
              f"{count} instances in {seconds:.1f}s = {peer_rate:.0f} instances/s")
        print(f"ratio seeder per worker / peer: {per_worker / peer_rate:.2f} "
              f"(whole pool / peer: {summary.instances_per_second / peer_rate:.2f})")
        if args.audit:
            from simulators.legacy.audit import audit_archive

            started = time.perf_counter()
            findings = sum(1 for _ in audit_archive(out))
            elapsed = time.perf_counter() - started
            print(f"audit: {summary.instances} instances checked in {elapsed:.1f}s = "
                  f"{summary.instances / elapsed:.0f} instances/s, {findings} findings")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
