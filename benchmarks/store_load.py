"""C-STORE load with parallel associations: pacsim's generator vs N parallel DCMTK storescu.

    python -m benchmarks.store_load [--associations 8] [--images 50] [--rows 512] [--rounds 3]

Receiver: DCMTK ``storescp --ignore`` (reads every byte, writes nothing). DCMTK side:
N ``storescu`` processes started at once, each sending one study of ``--images`` CT
slices (512x512x16 bit, 0.5 MB each) from Part 10 files. pacsim side: the load
generator with N virtual CT modalities in one asyncio process, each storing one study
of the same size on its own association, exactly as a load scenario does (images
made per study from the world: identity from the study's context, full-size pixels
from a template; per series one image is built and encoded, the others are its bytes
with their own UIDs, numbers, times and positions patched in, see
``simulators.load.images``). Rounds alternate; medians and the ratio
DCMTK time / pacsim time are printed (issue target >= 0.8). Both use TCP_NODELAY.

pacsim's time is the whole ``run_load`` call: engine set-up, recording the image
templates before the start (the counterpart of the Part 10 files DCMTK is given,
which are written outside its timing) and the load phase; the load phase alone is
printed too. Note that ``storescp`` without ``--fork`` serves one association at a
time, so both sides' associations queue at its accept: the figure is per-image cost
on the sender plus the receiver's, not parallelism.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from simulators.peers.dcmtk import dcmtk_server, run_dcmtk_burst
from simulators.peers.process import free_port

STORE_AE = "STORESCP"


def make_study_files(directory: Path, images: int, rows: int, cols: int) -> list[Path]:
    from simulators.world import StudyContext, World, build_study, write_study

    world = World(seed=99)
    order = world.order(world.patient(1), "CT", station_ae="BENCH", station_name="BENCH",
                        index=1)
    context = StudyContext.from_order(order, world)
    return write_study(build_study(context, series=1, per_series=images, rows=rows, cols=cols),
                       directory)


def run_storescu(port: int, files: list[Path], associations: int) -> tuple[float, int]:
    """DCMTK's storescu (absolute path), all started at once, output drained concurrently;
    wall time from the first process started to the last exited (process start included)."""
    burst = run_dcmtk_burst([["storescu", "-aet", f"SCU{i:02d}", "-aec", STORE_AE, "127.0.0.1",
                              str(port), *map(str, files)] for i in range(associations)])
    return burst.wall, burst.failed


def run_generator(port: int, associations: int, images: int, rows: int, cols: int
                  ) -> dict[str, float]:
    from simulators.dicom.address import AeAddress
    from simulators.load import LoadProfile, LoadTarget, run_load
    from simulators.world.world import World

    profile = LoadProfile.model_validate({
        "name": "store load", "modalities": {"count": associations, "mix": {"CT": 1}},
        "stages": [{"duration": "300s", "target": associations, "ramp": "0s"}],
        "every_modality": [{"do": "store", "think": 0,
                            "images": {"per_series": images, "rows": rows, "cols": cols}}],
        "max_operations": associations, "grace": "300s", "timeout": "60s",
        "report": {"live": False}})
    usage = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    store = AeAddress(ae_title=STORE_AE, host="127.0.0.1", port=port)
    run = run_load(profile, LoadTarget(store=store),
                   world=World(5))
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    stores = run.stats.operations(run.duration).get("dicom.c-store", {})
    return {"wall": wall, "load": run.duration,
            "templates": float(run.prepare.get("image_seconds", 0.0)),
            "stored": stores.get("count", 0), "errors": stores.get("errors", 0),
            "p50": stores.get("p50_ms") or 0.0, "p95": stores.get("p95_ms") or 0.0,
            "cpu": (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=8)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--cols", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    total = args.associations * args.images
    with tempfile.TemporaryDirectory() as tmp:
        files = make_study_files(Path(tmp), args.images, args.rows, args.cols)
        megabytes = sum(f.stat().st_size for f in files) * args.associations / 1e6
        print(f"store load: {args.associations} parallel associations x {args.images} CT "
              f"images {args.rows}x{args.cols} ({total} images, {megabytes:.0f} MB) -> "
              f"storescp --ignore; {args.rounds} rounds, medians")
        port = free_port()
        dcmtk, ours = [], []
        with dcmtk_server(["storescp", "--ignore", "-aet", STORE_AE], port):
            for _ in range(args.rounds):
                dcmtk.append(run_storescu(port, files, args.associations))
                ours.append(run_generator(port, args.associations, args.images, args.rows,
                                          args.cols))
    d_time = statistics.median(t for t, _ in dcmtk)
    d_failed = sum(f for _, f in dcmtk)
    p_time = statistics.median(o["wall"] for o in ours)
    p_load = statistics.median(o["load"] for o in ours)
    p_templates = statistics.median(o["templates"] for o in ours)
    p_errors = sum(o["errors"] + total - o["stored"] for o in ours)
    last = ours[-1]
    ratio = d_time / p_time
    print(f"  DCMTK storescu x{args.associations} processes: {d_time:6.2f}s "
          f"({total / d_time:,.0f} images/s), {d_failed} failed")
    print(f"  pacsim generator (1 process):        {p_time:6.2f}s "
          f"({total / p_time:,.0f} images/s), {p_errors} errors or unfinished; "
          f"C-STORE p50 {last['p50']:.1f} ms, p95 {last['p95']:.1f} ms")
    print(f"    of which image templates {p_templates:.2f}s before the start, "
          f"load phase {p_load:.2f}s")
    print(f"  ratio pacsim/DCMTK throughput: {ratio:.2f} (target >= 0.8); "
          f"load phase only: {d_time / p_load:.2f}")
    print(f"  generator CPU: {last['cpu']:.2f} s for {total} images "
          f"({last['cpu'] / total * 1000:.2f} ms/image: templates, building, encoding, "
          f"sending)")
    ok = ratio >= 0.8 and d_failed == 0 and p_errors == 0
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
