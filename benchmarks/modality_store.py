"""C-STORE throughput: the modality's fast path vs DCMTK storescu vs plain pynetdicom.

    python -m benchmarks.modality_store [--count 200] [--rows 512] [--cols 512] [--rounds 3]

The same Part 10 files (a generated CT study, 16-bit) go to one DCMTK ``storescp
--ignore`` from each sender, rounds alternating so machine noise hits all of them,
and the medians are printed with the ratio modality/DCMTK (issue target >= 0.3).
DCMTK runs with ``TCP_NODELAY=1`` in its environment (BASELINES.md: Nagle with
delayed ACKs makes it ~45x slower); our sockets always set TCP_NODELAY. Times are
wall clock per association: storescu's includes its process start and its scan of
the files, ours includes reading each file's meta for the proposed contexts.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

#: Enough for loopback tests and benchmarks; a server not up by then is broken.
READY_TIMEOUT = 10.0


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None,
                  timeout: float = READY_TIMEOUT) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:``port`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def dcmtk_server(argv: Sequence[str], port: int, *, cwd: str | Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a DCMTK server (storescp, wlmscpfs...) with TCP_NODELAY=1 until the block ends.

    Waiting for the port makes the caller's first association deterministic; the
    process is terminated (then killed) on exit so no listener outlives a test.
    """
    env = {**os.environ, "TCP_NODELAY": "1"}
    process = subprocess.Popen([*argv, str(port)], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_files(directory: Path, count: int, rows: int, cols: int) -> list[Path]:
    """One generated CT study of ``count`` images, written as Part 10 files."""
    from simulators.dicom.worklist import build_worklist_item
    from simulators.world.context import StudyContext
    from simulators.world.images import build_study, write_study
    from simulators.world.world import World

    world = World(seed=2024)
    order = world.order(world.patient(1), "CT", station_ae="BENCHCT", station_name="BENCHCT", index=1)
    context = StudyContext.from_worklist(build_worklist_item(order), world, station_name="BENCHCT")
    return write_study(build_study(context, series=1, per_series=count, rows=rows, cols=cols), directory)


def send_dcmtk(files: list[Path], port: int) -> None:
    result = subprocess.run(["storescu", "-aet", "BENCHSCU", "-aec", "STORESCP", "127.0.0.1",
                             str(port), *map(str, files)],
                            env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"storescu failed: {result.stderr.decode(errors='replace')[-300:]}")


def send_modality(files: list[Path], port: int) -> None:
    from simulators.actors.modality import Modality, ModalityConfig
    from simulators.events import EventBus

    modality = Modality(ModalityConfig(ae_title="BENCHCT", store=("127.0.0.1", port, "STORESCP")),
                        events=EventBus())
    statuses = modality.store_files(files)  # no listener needed: only the store peer is used
    if any(statuses):
        raise RuntimeError(f"modality store failed: {sorted(set(statuses))}")


def send_pynetdicom(files: list[Path], port: int) -> None:
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom.sop_class import CTImageStorage

    from simulators.dicom.ae import AeSettings, associate, make_ae

    ae = make_ae(AeSettings("BENCHPYN"))
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = associate(ae, "127.0.0.1", port, "STORESCP")
    try:
        failed = [f for f in files if assoc.send_c_store(f).get("Status") != 0]
    finally:
        assoc.release()
    if failed:
        raise RuntimeError(f"pynetdicom store failed for {len(failed)} files")


def measure(send: Callable[[list[Path], int], None], files: list[Path], port: int) -> float:
    """Seconds for one round, or NaN (reported) when the sender failed."""
    began = time.perf_counter()
    try:
        send(files, port)
    except Exception as exc:  # noqa: BLE001 - one failed round must not hide the others
        print(f"  round failed: {exc}", flush=True)
        return float("nan")
    return time.perf_counter() - began


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="images per round (default 200)")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--cols", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-pdu", type=int, default=16384, help="storescp's receive max PDU")
    parser.add_argument("--skip-pynetdicom", action="store_true", help="skip the slow reference")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 10_000 or not 1 <= args.rounds <= 20:
        parser.error("count must be 1..10000 and rounds 1..20")
    senders: dict[str, Callable[[list[Path], int], None]] = {
        "dcmtk storescu": send_dcmtk, "modality (fast path)": send_modality}
    if not args.skip_pynetdicom:
        senders["pynetdicom send_c_store"] = send_pynetdicom
    with tempfile.TemporaryDirectory(prefix="pacsim-bench-") as tmp:
        files = make_files(Path(tmp), args.count, args.rows, args.cols)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} CT images {args.rows}x{args.cols}x16, {megabytes:.1f} MB; "
              f"storescp --ignore, max PDU {args.max_pdu}, {args.rounds} rounds", flush=True)
        port = free_port()
        times: dict[str, list[float]] = {name: [] for name in senders}
        with dcmtk_server(["storescp", "--ignore", "-aet", "STORESCP", "-pdu", str(args.max_pdu)], port):
            for _ in range(args.rounds):
                for name, send in senders.items():
                    times[name].append(measure(send, files, port))
    medians = {name: statistics.median([t for t in values if t == t] or [float("nan")])
               for name, values in times.items()}
    print(f"{'sender':<26}{'images/s':>10}{'MB/s':>9}   rounds (s)")
    for name, seconds in medians.items():
        rounds = " ".join(f"{t:.3f}" for t in times[name])
        print(f"{name:<26}{len(files) / seconds:>10.0f}{megabytes / seconds:>9.0f}   {rounds}")
    ratio = medians["dcmtk storescu"] / medians["modality (fast path)"]
    print(f"ratio modality/DCMTK = {ratio:.2f} (target >= 0.30)")
    if "pynetdicom send_c_store" in medians:
        print(f"ratio pynetdicom/DCMTK = {medians['dcmtk storescu'] / medians['pynetdicom send_c_store']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
