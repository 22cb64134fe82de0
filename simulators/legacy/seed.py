"""Seed a legacy archive: N studies of history with known dirt, served by the Archive actor.

Why streaming end to end: the point is 100,000 studies on a 2-core machine with flat
memory. Patient histories are generated one at a time (history.py) and handed out in
chunks of about ``CHUNK_STUDIES`` studies to worker processes (build.py), at most
two chunks per worker in flight; each chunk's index rows go into the archive's
SQLite index in large transactions (``DicomStore.bulk_loader``) and its defects are
appended to a JSON-lines file, which becomes ``manifest.json``'s ``defects`` array at
the end (written item by item, never as one list in memory).

The output directory is a :class:`~simulators.dicom.store.DicomStore` root, so
``Archive(ArchiveConfig(storage_dir=DIR))`` serves it for C-FIND / C-MOVE / C-GET.
Refused: a directory holding anything but an empty store (seeding twice into one
archive would mix two ground truths).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from simulators.dicom.bulk import BulkIndexer
from simulators.dicom.store import DicomStore
from simulators.errors import ConfigError
from simulators.legacy.build import ChunkJob, ChunkResult, seed_chunk, worker_count
from simulators.legacy.dirt import profile
from simulators.legacy.history import PatientHistory, check_size, patient_histories

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
CHUNK_STUDIES = 200
_DEFECTS_LOG = "manifest.defects.jsonl"
_STORE_ENTRIES = {"objects", "incoming", "index.sqlite", "index.sqlite-wal", "index.sqlite-shm"}

#: progress(studies done, studies total, instances written, seconds elapsed)
Progress = Callable[[int, int, int, float], None]


@dataclass(frozen=True)
class SeedSummary:
    """What was seeded, and how fast."""

    path: Path
    studies: int
    series: int
    instances: int
    patients: int
    defects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    workers: int = 1
    built_slow: int = 0

    @property
    def studies_per_second(self) -> float:
        return self.studies / self.seconds if self.seconds > 0 else 0.0

    @property
    def instances_per_second(self) -> float:
        return self.instances / self.seconds if self.seconds > 0 else 0.0


def check_target(out: Path) -> None:
    """ConfigError unless ``out`` is absent, empty, or an empty archive store."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError("the output path exists and is not a directory", out=str(out))
    extra = sorted(entry.name for entry in out.iterdir() if entry.name not in _STORE_ENTRIES)
    objects = out / "objects"
    has_objects = objects.is_dir() and any(objects.iterdir())
    if extra or has_objects:
        what = "a seeded legacy archive" if (out / MANIFEST).exists() else "not empty"
        raise ConfigError(f"the output directory is {what}; remove it or choose another "
                          "--out (seeding twice would mix two ground truths)", out=str(out))


def _chunks(histories: Iterator[PatientHistory], job: Callable[[tuple[PatientHistory, ...]],
                                                                ChunkJob]) -> Iterator[ChunkJob]:
    batch: list[PatientHistory] = []
    size = 0
    for history in histories:
        batch.append(history)
        size += len(history.studies)
        if size >= CHUNK_STUDIES:
            yield job(tuple(batch))
            batch, size = [], 0
    if batch:
        yield job(tuple(batch))


def _results(jobs: Iterator[ChunkJob], workers: int) -> Iterator[ChunkResult]:
    """Chunk results in order; at most two chunks per worker in flight (bounded memory)."""
    if workers <= 1:
        for job in jobs:
            yield seed_chunk(job)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        pending: deque[Future[ChunkResult]] = deque()
        for job in jobs:
            pending.append(pool.submit(seed_chunk, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def seed_archive(out: Path, *, studies: int, years: int, dirt: str, seed: int,
                 progress: Progress | None = None, workers: int | None = None,
                 until: dt.date | None = None, rows: int = 16,
                 store: DicomStore | None = None) -> SeedSummary:
    """Fill ``out`` with ``studies`` studies over ``years`` years ending at ``until``
    (default: today), dirtied by profile ``dirt``; write ``out/manifest.json``.

    Same ``seed``, sizes, ``dirt`` and ``until`` give the same archive. ``store`` lets
    a running Archive actor's own store be filled (its directory must be ``out``).
    """
    check_size(studies, years)
    profile(dirt)  # unknown profile: ConfigError before anything is written
    if not 8 <= rows <= 512:
        raise ConfigError("rows must be between 8 and 512", rows=rows)
    out = Path(out)
    check_target(out)
    until = until or dt.date.today()
    count = worker_count(workers)
    if threading.active_count() > 1:
        # fork is only safe without other threads (an Archive actor's, in a scenario);
        # spawn would re-run the caller's __main__ - so a threaded caller seeds in-process
        count = 1
    owned = store is None
    store = store or DicomStore(out)
    objects = str(store.objects)
    defects_log = out / _DEFECTS_LOG
    tally: Counter[str] = Counter()
    started = time.perf_counter()
    done = written = slow = 0
    try:
        jobs = _chunks(patient_histories(seed, studies, years, until),
                       lambda batch: ChunkJob(seed, dirt, objects, rows, batch))
        with BulkIndexer(store) as loader, open(defects_log, "w", encoding="utf-8") as log:
            for result in _results(jobs, count):
                for keys, path, size in result.instances:
                    loader.add(keys, Path(path), transfer_syntax="1.2.840.10008.1.2.1",
                               size=size)
                for study_uid, cls in result.defects:
                    log.write(json.dumps({"study_uid": study_uid, "class": cls}) + "\n")
                    tally[cls] += 1
                done += result.studies
                written += len(result.instances)
                slow += result.built_slow
                if progress is not None:
                    progress(done, studies, written, time.perf_counter() - started)
        stats = store.stats()
        header = {"format": MANIFEST_FORMAT, "seed": seed, "studies": studies, "years": years,
                  "dirt": dirt, "until": until.isoformat(),
                  "counts": {key: stats[key] for key in ("studies", "series", "instances",
                                                         "patients")},
                  "defect_counts": dict(sorted(tally.items()))}
        _write_manifest(out / MANIFEST, header, defects_log)
    finally:
        defects_log.unlink(missing_ok=True)
        if owned:
            store.close()
    return SeedSummary(out, stats["studies"], stats["series"], stats["instances"],
                       stats["patients"], dict(sorted(tally.items())),
                       time.perf_counter() - started, count, slow)


def _write_manifest(path: Path, header: dict[str, object], defects_log: Path) -> None:
    """The manifest with ``defects`` streamed from the JSON-lines log, then renamed in."""
    partial = path.with_suffix(".json.part")
    with open(partial, "w", encoding="utf-8") as handle, \
            open(defects_log, encoding="utf-8") as lines:
        handle.write(json.dumps(header, indent=1)[:-2] + ',\n "defects": [')
        for number, line in enumerate(lines):
            handle.write(("\n  " if number == 0 else ",\n  ") + line.strip())
        handle.write("\n ]\n}\n")
    partial.replace(path)


def read_manifest(directory: Path) -> dict[str, object]:
    """The manifest of a seeded archive; ConfigError if there is none."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("not a seeded legacy archive (no manifest.json)",
                          path=str(directory)) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable manifest: {exc}", path=str(path)) from exc


__all__ = ["seed_archive", "SeedSummary", "read_manifest", "check_target", "MANIFEST",
           "CHUNK_STUDIES"]
