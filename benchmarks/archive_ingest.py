"""Durable ingest rate: DCMTK storescu -> pacsim archive vs -> Orthanc, same files, same run.

Run from the repository root::

    python -m benchmarks.archive_ingest [--count 300] [--rows 128] [--cols 128] [--repeats 3]
                                        [--large-count 100] [--senders 8]

Two rows are measured and printed: ``--count`` CT images of ``--rows`` x ``--cols``
(default 300 of 128x128), then ``--large-count`` CT images of 512x512 (default 100,
0 skips the row). Both receivers start empty for every repeat (so neither takes a
"duplicate" short cut), both make objects durable before answering (the archive:
the file and its directory entry fsync'd, then the SQLite index committed, WAL
with ``synchronous=NORMAL`` and rows rebuilt from the files after a crash - see
``simulators/dicom/store.py``; Orthanc: its default ``SyncStorageArea: true``),
and both receive the same files from the same ``storescu`` over one association.
The rate is files / wall time of the ``storescu`` process; after each run a C-FIND
checks that the receiver really holds every instance, so a fast failure cannot
count. Runs alternate archive/Orthanc to spread machine noise; medians are
printed with the ratio archive/Orthanc (target >= 1.0). Needs DCMTK and Orthanc.

Both DCMTK processes (storescu and Orthanc, whose DICOM stack is DCMTK) run with
``TCP_NODELAY=1``; with Nagle left on Orthanc falls to ~22 images/s on delayed
ACKs, which would make the comparison meaningless.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from pydicom import dcmread

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.peers.dcmtk import find_dcmtk_tool, run_dcmtk, run_dcmtk_burst
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.world.context import StudyContext
from simulators.world.images import build_study
from simulators.world.world import World

ARCHIVE_AET, ORTHANC_AET = "PACSIM_ARC", "ORTHANC"


def generate(folder: Path, count: int, rows: int, cols: int) -> tuple[list[Path], str]:
    """``count`` CT images of one study from the world builders; returns paths and study UID."""
    world = World(seed=2024)
    order = world.order(world.patient(0), "CT", station_ae="CT_BENCH", station_name="CT_BENCH",
                        index=0)
    context = StudyContext.from_order(order, world)
    datasets = build_study(context, series=1, per_series=count, rows=rows, cols=cols)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(datasets):
        path = folder / f"img{index:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths, str(context.study_uid)


def send(port: int, aet: str, files: list[Path], senders: int = 1) -> float:
    """Wall seconds for ``senders`` DCMTK storescu processes (one association each,
    started at once, files dealt round-robin) sending ``files``; process start included."""
    if senders <= 1:
        began = time.perf_counter()
        result = run_dcmtk("storescu", "-aec", aet, "127.0.0.1", str(port), *map(str, files))
        elapsed = time.perf_counter() - began
        if result.returncode != 0:
            raise RuntimeError(f"storescu to {aet} failed: {result.stderr[-500:]}")
        return elapsed
    burst = run_dcmtk_burst([["storescu", "-aet", f"SENDER{i}", "-aec", aet, "127.0.0.1",
                              str(port), *map(str, files[i::senders])] for i in range(senders)])
    if burst.failed:
        raise RuntimeError(f"{burst.failed} storescu to {aet} failed: {burst.first_error}")
    return burst.wall


def held_instances(port: int, aet: str, study_uid: str) -> int:
    """Number of Study Related Instances the receiver reports over C-FIND."""
    with tempfile.TemporaryDirectory() as out:
        run_dcmtk("findscu", "-S", "-X", "-od", out, "-aec", aet, "-k", "QueryRetrieveLevel=STUDY",
               "-k", f"StudyInstanceUID={study_uid}", "-k", "NumberOfStudyRelatedInstances",
               "127.0.0.1", str(port))
        responses = [dcmread(p) for p in Path(out).glob("rsp*.dcm")]
        return int(responses[0].NumberOfStudyRelatedInstances) if responses else 0


def run_archive(files: list[Path], study_uid: str, workdir: Path, senders: int = 1) -> float:
    with Archive(ArchiveConfig(storage_dir=workdir / "arc")) as archive:
        seconds = send(archive.port, ARCHIVE_AET, files, senders)
        held = held_instances(archive.port, ARCHIVE_AET, study_uid)
    if held != len(files):
        raise RuntimeError(f"archive holds {held} of {len(files)} instances")
    return len(files) / seconds


def run_orthanc(files: list[Path], study_uid: str, workdir: Path, senders: int = 1) -> float:
    # SyncStorageArea (fsync per file) is on: both sides are durable before answering.
    # Orthanc refuses C-FIND from unknown AEs (the port is unused: nothing is sent back).
    settings = OrthancSettings(ae_title=ORTHANC_AET, workdir=workdir / "orthanc",
                               modalities={"FINDSCU": ("127.0.0.1", 104)})
    with OrthancProcess(settings) as target:
        seconds = send(target.dicom_port, ORTHANC_AET, files, senders)
        held = held_instances(target.dicom_port, ORTHANC_AET, study_uid)
    if held != len(files):
        raise RuntimeError(f"Orthanc holds {held} of {len(files)} instances")
    return len(files) / seconds


def measure(root: Path, count: int, rows: int, cols: int, repeats: int,
            senders: int = 1) -> tuple[float, float]:
    """Alternating runs on one set of files; returns the median rates (archive, Orthanc)."""
    files, study_uid = generate(root / "files", count, rows, cols)
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"{len(files)} CT images {rows}x{cols}, {size_mb:.1f} MB, "
          f"{repeats} repeats, {senders} storescu process(es) at once, one association each, "
          f"process start included on both sides")
    rates: dict[str, list[float]] = {"archive": [], "orthanc": []}
    runners: dict[str, Callable[[list[Path], str, Path, int], float]] = {
        "archive": run_archive, "orthanc": run_orthanc}
    for repeat in range(repeats):
        for name, runner in runners.items():
            load = Path("/proc/loadavg").read_text().split()[0]
            rate = runner(files, study_uid, root / f"{name}-{repeat}", senders)
            rates[name].append(rate)
            print(f"  run {repeat + 1} {name:8s} {rate:8.1f} images/s (load {load})")
    archive, orthanc_rate = (statistics.median(rates[n]) for n in ("archive", "orthanc"))
    print(f"  median archive {archive:.1f} images/s, Orthanc {orthanc_rate:.1f} images/s, "
          f"ratio archive/Orthanc {archive / orthanc_rate:.2f} (target >= 1.0)")
    return archive, orthanc_rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="images to send (default 300)")
    parser.add_argument("--senders", type=int, default=1,
                        help="parallel storescu processes, files dealt round-robin (default 1)")
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--cols", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-count", type=int, default=100,
                        help="512x512 images for the second row (default 100, 0 = skip)")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("storescu", "findscu", "echoscu") if not find_dcmtk_tool(tool)]
    missing += [] if shutil.which("Orthanc") else ["Orthanc"]
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt-get install dcmtk orthanc)", file=sys.stderr)
        return 2
    rows = [(args.count, args.rows, args.cols)]
    if args.large_count > 0:
        rows.append((args.large_count, 512, 512))
    summary = []
    with tempfile.TemporaryDirectory(prefix="pacsim-bench-") as tmp:
        for index, (count, height, width) in enumerate(rows):
            archive, orthanc_rate = measure(Path(tmp) / f"row{index}", count, height, width,
                                            args.repeats, args.senders)
            summary.append((f"{count} x {height}x{width}", archive, orthanc_rate))
    print("\nsummary (median images/s)")
    for label, archive, orthanc_rate in summary:
        print(f"  {label:18s} archive {archive:7.1f}  Orthanc {orthanc_rate:7.1f}  "
              f"ratio {archive / orthanc_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
