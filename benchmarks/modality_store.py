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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from simulators.peers.dcmtk import dcmtk_server, run_dcmtk
from simulators.peers.process import free_port


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
    result = run_dcmtk("storescu", "-aet", "BENCHSCU", "-aec", "STORESCP", "127.0.0.1",
                       str(port), *map(str, files))
    if result.returncode != 0:
        raise RuntimeError(f"storescu failed: {result.stderr[-300:]}")


def send_modality(files: list[Path], port: int) -> None:
    from simulators.actors.modality import Modality, ModalityConfig
    from simulators.dicom.address import AeAddress
    from simulators.events import EventBus

    store = AeAddress(ae_title="STORESCP", host="127.0.0.1", port=port)
    modality = Modality(ModalityConfig(ae_title="BENCHCT", store=store), events=EventBus())
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
