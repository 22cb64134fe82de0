"""Many simultaneous associations: N requestors, each storing one small image to the archive.

Run from the repository root::

    python -m benchmarks.archive_associations [--associations 200] [--repeats 3]

Why: load tests drive the built-in archive (and RIS) with hundreds of simulated
modalities at once, and the archive runs on a 2-core machine. All N associations
are opened first and held open together (the archive must have N established
at the same moment, not N in sequence); then each sends one C-STORE and
releases. The requestors are ``FastAssociation``s on one event loop in this
process, the archive runs its own loop in its own thread. Printed: wall time to
associate all N, wall time for the N durable C-STOREs, and the peak number of
associations the archive held. A failed association or a non-success status
fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from pydicom.uid import ExplicitVRLittleEndian

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.fast import FastAssociation, encode_dataset
from simulators.events import EventBus
from simulators.world.context import StudyContext
from simulators.world.images import build_study
from simulators.world.world import World

AET = "PACSIM_ARC"


def images(count: int) -> list[tuple[str, str, bytes]]:
    """``count`` small CT images of one study, encoded once: (class, instance, bytes)."""
    world = World(seed=77)
    order = world.order(world.patient(1), "CT", station_ae="CT_LOAD", station_name="CT_LOAD",
                        index=1)
    context = StudyContext.from_order(order, world)
    return [(str(ds.SOPClassUID), str(ds.SOPInstanceUID), encode_dataset(ds, ExplicitVRLittleEndian))
            for ds in build_study(context, series=1, per_series=count, rows=64, cols=64)]


async def run_once(port: int, payloads: list[tuple[str, str, bytes]],
                   held_now: Callable[[], int]) -> tuple[float, int, float, list[int]]:
    """Open every association, then store one image on each.

    Returns the time to associate all, how many the archive held at that moment,
    the time for all stores and releases, and every C-STORE status.
    """
    sop_class = payloads[0][0]
    associations = [FastAssociation(actor=f"load{n}", events=EventBus()) for n in range(len(payloads))]
    began = time.perf_counter()
    await asyncio.gather(*(a.connect("127.0.0.1", port, f"LOAD{n:03d}", AET,
                                     [(sop_class, [ExplicitVRLittleEndian])], timeout=60)
                           for n, a in enumerate(associations)))
    associated = time.perf_counter() - began
    held = held_now()

    async def store_and_release(association: FastAssociation, item: tuple[str, str, bytes]) -> int:
        status = await association.store(item[2], item[0], item[1], ExplicitVRLittleEndian)
        await association.release()
        return status

    began = time.perf_counter()
    statuses = await asyncio.gather(*(store_and_release(a, item)
                                      for a, item in zip(associations, payloads)))
    return associated, held, time.perf_counter() - began, list(statuses)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    payloads = images(args.associations)
    connect_times, store_times = [], []
    print(f"{args.associations} simultaneous associations, one 64x64 CT C-STORE each")
    with tempfile.TemporaryDirectory(prefix="pacsim-assoc-") as tmp:
        for repeat in range(args.repeats):
            config = ArchiveConfig(storage_dir=Path(tmp) / f"arc{repeat}",
                                   max_associations=args.associations + 10)
            with Archive(config, events=EventBus()) as archive:
                associated, peak, stored, statuses = asyncio.run(
                    run_once(archive.port, payloads, lambda: archive.active_associations))
                held = archive.store.stats()["instances"]
            failed = [s for s in statuses if s != 0]
            print(f"  run {repeat + 1}: associate all {associated:.2f} s, store+release all "
                  f"{stored:.2f} s, {peak} held at once, {held} stored, {len(failed)} failed")
            if failed or held != args.associations or peak != args.associations:
                print("FAILED: not every association stored its image", file=sys.stderr)
                return 1
            connect_times.append(associated)
            store_times.append(stored)
    print(f"median: associate {statistics.median(connect_times):.2f} s, "
          f"store+release {statistics.median(store_times):.2f} s "
          f"({args.associations / statistics.median(store_times):.0f} durable stores/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
