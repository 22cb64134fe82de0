"""Durable ingest rate: DCMTK storescu -> pacsim archive vs -> Orthanc, same files, same run.

Run from the repository root::

    python -m benchmarks.archive_ingest [--count 300] [--rows 128] [--cols 128] [--repeats 3]

Both receivers start empty for every repeat (so neither takes a "duplicate" short
cut), both make objects durable before answering (the archive: fsync + SQLite
``synchronous=FULL``; Orthanc: its default ``SyncStorageArea: true``), and both
receive the same files from the same ``storescu`` over one association. The rate
is files / wall time of the ``storescu`` process; after each run a C-FIND checks
that the receiver really holds every instance, so a fast failure cannot count.
Runs alternate archive/Orthanc to spread machine noise; medians are printed with
the ratio archive/Orthanc (target >= 1.0). Needs DCMTK and Orthanc installed.

Both DCMTK processes (storescu and Orthanc, whose DICOM stack is DCMTK) run with
``TCP_NODELAY=1``; with Nagle left on Orthanc falls to ~22 images/s on delayed
ACKs, which would make the comparison meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from pydicom import dcmread

from simulators.actors.archive import Archive, ArchiveConfig
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dcmtk(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TCP_NODELAY": "1"}  # Nagle off on DCMTK's side too
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def send(port: int, aet: str, files: list[Path]) -> float:
    """Wall seconds for one storescu association sending ``files``."""
    began = time.perf_counter()
    result = _dcmtk("storescu", "-aec", aet, "127.0.0.1", str(port), *map(str, files))
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {aet} failed: {result.stderr[-500:]}")
    return elapsed


def held_instances(port: int, aet: str, study_uid: str) -> int:
    """Number of Study Related Instances the receiver reports over C-FIND."""
    with tempfile.TemporaryDirectory() as out:
        _dcmtk("findscu", "-S", "-X", "-od", out, "-aec", aet, "-k", "QueryRetrieveLevel=STUDY",
               "-k", f"StudyInstanceUID={study_uid}", "-k", "NumberOfStudyRelatedInstances",
               "127.0.0.1", str(port))
        responses = [dcmread(p) for p in Path(out).glob("rsp*.dcm")]
        return int(responses[0].NumberOfStudyRelatedInstances) if responses else 0


def _wait_for_echo(port: int, aet: str, process: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {process.returncode}")
        if _dcmtk("echoscu", "-aec", aet, "127.0.0.1", str(port), timeout=5).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("Orthanc did not answer C-ECHO in time")


@contextmanager
def orthanc(workdir: Path) -> Iterator[int]:
    """A fresh Orthanc with a generated config; yields its DICOM port.

    Orthanc 1.10 has no HTTP bind-address option, so HTTP is on a free port with
    ``RemoteAccessAllowed: false`` (loopback clients only) and is not used here.
    """
    dicom_port, http_port = _free_port(), _free_port()
    config = {
        "Name": "pacsim-bench", "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"), "DicomAet": ORTHANC_AET,
        "DicomPort": dicom_port, "HttpPort": http_port, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "Plugins": [],
        "StorageCompression": False, "SyncStorageArea": True, "OverwriteInstances": False,
        # Orthanc refuses C-FIND from unknown AEs (port unused: nothing is sent back)
        "DicomModalities": {"findscu": ["FINDSCU", "127.0.0.1", 104]},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = workdir / "orthanc.log"
    with log_path.open("wb") as log:
        # Orthanc's DICOM stack is DCMTK: without TCP_NODELAY=1 its responses sit in
        # Nagle's buffer behind delayed ACKs (~22 images/s), which would flatter us
        process = subprocess.Popen(["Orthanc", str(config_path)], stdout=log, stderr=log,
                                   env={**os.environ, "TCP_NODELAY": "1"})
    try:
        try:
            _wait_for_echo(dicom_port, ORTHANC_AET, process)
        except RuntimeError as exc:
            tail = log_path.read_text(errors="replace")[-800:]
            raise RuntimeError(f"{exc}; Orthanc log:\n{tail}") from exc
        yield dicom_port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def run_archive(files: list[Path], study_uid: str, workdir: Path) -> float:
    with Archive(ArchiveConfig(storage_dir=workdir / "arc")) as archive:
        seconds = send(archive.port, ARCHIVE_AET, files)
        held = held_instances(archive.port, ARCHIVE_AET, study_uid)
    if held != len(files):
        raise RuntimeError(f"archive holds {held} of {len(files)} instances")
    return len(files) / seconds


def run_orthanc(files: list[Path], study_uid: str, workdir: Path) -> float:
    with orthanc(workdir / "orthanc") as port:
        seconds = send(port, ORTHANC_AET, files)
        held = held_instances(port, ORTHANC_AET, study_uid)
    if held != len(files):
        raise RuntimeError(f"Orthanc holds {held} of {len(files)} instances")
    return len(files) / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="images to send (default 300)")
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--cols", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    missing = [tool for tool in ("storescu", "findscu", "echoscu", "Orthanc") if not shutil.which(tool)]
    if missing:
        print(f"missing tools: {', '.join(missing)} (apt-get install dcmtk orthanc)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pacsim-bench-") as tmp:
        root = Path(tmp)
        files, study_uid = generate(root / "files", args.count, args.rows, args.cols)
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"{len(files)} CT images {args.rows}x{args.cols}, {size_mb:.1f} MB, "
              f"{args.repeats} repeats, storescu over one association")
        rates: dict[str, list[float]] = {"archive": [], "orthanc": []}
        runners: dict[str, Callable[[list[Path], str, Path], float]] = {
            "archive": run_archive, "orthanc": run_orthanc}
        for repeat in range(args.repeats):
            for name, runner in runners.items():
                rate = runner(files, study_uid, root / f"{name}-{repeat}")
                rates[name].append(rate)
                print(f"  run {repeat + 1} {name:8s} {rate:8.1f} images/s")
        archive, orthanc_rate = (statistics.median(rates[n]) for n in ("archive", "orthanc"))
        print(f"median archive {archive:.1f} images/s, Orthanc {orthanc_rate:.1f} images/s, "
              f"ratio archive/Orthanc {archive / orthanc_rate:.2f} (target >= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
