"""``pacsim legacy seed|serve|profiles``: build a dirty legacy archive and serve it.

``register(subparsers)`` is called from simulators.cli; errors are PacsimError (exit 2).
``seed`` refuses a non-empty ``--out`` (including an already seeded archive: two
seeds in one directory would mix two ground truths); remove it or choose another.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import parse_ae_address
from simulators.legacy.dirt import PROFILE_HELP, profile
from simulators.legacy.seed import check_target, read_manifest, seed_archive

EXIT_OK = 0
DEFAULT_OUT = Path("./legacy-archive")


class _ProgressLine:
    """One status line, rewritten at most twice a second (rate, ETA)."""

    def __init__(self, stream: Any = sys.stderr, every: float = 0.5) -> None:
        self.stream, self.every, self._last = stream, every, 0.0

    def __call__(self, done: int, total: int, instances: int, elapsed: float) -> None:
        now = time.monotonic()
        if now - self._last < self.every and done < total:
            return
        self._last = now
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        self.stream.write(f"\r  {done}/{total} studies ({100 * done / total:5.1f}%)  "
                          f"{instances} instances  {rate:7.1f} studies/s  ETA {eta:6.0f}s ")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _seed(args: argparse.Namespace) -> int:

    profile(args.dirt)  # a typo fails before anything is printed or written
    check_target(args.out)
    print(f"pacsim legacy seed: {args.studies} studies over {args.years} years, dirt "
          f"{args.dirt!r}, seed {args.seed} -> {args.out}", flush=True)
    summary = seed_archive(args.out, studies=args.studies, years=args.years, dirt=args.dirt,
                           seed=args.seed, workers=args.workers, progress=_ProgressLine())
    print(f"seeded {summary.studies} studies, {summary.series} series, {summary.instances} "
          f"instances, {summary.patients} patients in {summary.seconds:.1f}s "
          f"({summary.studies_per_second:.1f} studies/s, "
          f"{summary.instances_per_second:.0f} instances/s, {summary.workers} worker(s))")
    for cls, count in summary.defects.items():
        print(f"  {cls:<22} {count}")
    print(f"manifest: {summary.path / 'manifest.json'}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:


    manifest = read_manifest(args.directory)  # ConfigError (exit 2) if not an archive
    destinations = {}
    for text in args.destination:
        endpoint = parse_ae_address(text, "--destination")
        destinations[endpoint.ae_title] = (endpoint.host, endpoint.port)
    archive = Archive(ArchiveConfig(name="legacy", host=args.host, port=args.port,
                                    ae_title=args.ae_title, storage_dir=args.directory,
                                    destinations=destinations, lenient_uids=True))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with archive:
        counts = manifest.get("counts", {})
        print(f"pacsim legacy serve: {archive.describe()} - {counts.get('studies', '?')} "
              f"studies, {counts.get('instances', '?')} instances (Ctrl-C stops)", flush=True)
        while not stop.wait(0.5):
            pass
    print("pacsim legacy serve: stopped", flush=True)
    return EXIT_OK


def _profiles(args: argparse.Namespace) -> int:

    width = max(len(name) for name in PROFILE_HELP)
    for name, text in PROFILE_HELP.items():
        print(f"{name:<{width}}  {text}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``legacy seed``, ``legacy serve`` and ``legacy profiles``."""
    legacy = subparsers.add_parser(
        "legacy", help="seed and serve a legacy PACS with known dirt",
        description="A legacy archive with years of history and a ground-truth manifest of "
                    "its data-quality defects, for migration rehearsals.")
    sub = legacy.add_subparsers(dest="legacy_command", required=True, metavar="ACTION")

    seed = sub.add_parser("seed", help="fill a directory with a seeded legacy archive")
    seed.add_argument("--studies", type=int, required=True, help="how many studies")
    seed.add_argument("--years", type=int, required=True,
                      help="history spread over this many years")
    seed.add_argument("--dirt", default="typical", help="dirt profile (see 'legacy profiles')")
    seed.add_argument("--seed", type=int, default=1, help="same seed, same archive")
    seed.add_argument("--out", type=Path, default=DEFAULT_OUT,
                      help="archive directory, absent or empty (default ./legacy-archive)")
    seed.add_argument("--workers", type=int, default=None,
                      help="worker processes (default: one per core)")
    seed.set_defaults(func=_seed)

    serve = sub.add_parser("serve", help="serve a seeded archive (C-FIND/C-MOVE/C-GET)")
    serve.add_argument("directory", type=Path, help="a directory made by 'legacy seed'")
    serve.add_argument("--port", type=int, default=11112, help="port (0 picks a free one)")
    serve.add_argument("--ae-title", default="LEGACY_PACS", help="the archive's AE title")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--destination", action="append", default=[], metavar="AE@HOST:PORT",
                       help="a C-MOVE destination (repeatable), e.g. the new PACS")
    serve.set_defaults(func=_serve)

    profiles = sub.add_parser("profiles", help="list the dirt profiles")
    profiles.set_defaults(func=_profiles)


__all__ = ["register"]
