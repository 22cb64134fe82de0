"""``pacsim migrate``: migrate a legacy archive into a target and validate every study.

Exit codes (the CLI contract): 0 when the validation report is signed off, 1 when
transfer mismatches remain or the sample pass / rollback trigger stopped the run,
2 for bad input or an unreachable peer (a PacsimError, which cli.py turns into 2,
naming the option at fault). The progress line goes to stderr, the summary to
stdout, the reports to ``--report-dir DIR`` (validation.json/.csv/.html, checkpoint;
``--report DIR`` is its deprecated spelling).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from simulators.cli.interrupt import report_interrupted
from simulators.common.fields import parse_fraction
from simulators.cli.options import add_report_dir, add_target
from simulators.errors import ConfigError
from simulators.migration.runner import MigrationOptions, run_migration
from simulators.migration.validation import PixelCheck

EXIT_OK, EXIT_FAILED = 0, 1


def parse_rate(text: str, field: str = "rollback-threshold") -> float:
    """``0.5%`` -> 0.005; ``0.005`` -> 0.005; ConfigError naming the option otherwise."""
    try:
        return parse_fraction(str(text).strip())
    except ValueError as exc:
        raise ConfigError(f"--{field}: {exc}, got {text!r}", field=field) from None


def _migrate(args: argparse.Namespace) -> int:

    if not getattr(args, "verbose", 0):
        # a dirty legacy makes pydicom log every invalid value it reads; those are
        # findings in the report, and a line each would bury the progress display
        logging.getLogger("pydicom").setLevel(logging.ERROR)
        logging.getLogger("simulators.dicom.fast").setLevel(logging.ERROR)
    options = MigrationOptions(
        source=args.source, target=args.target, strategy=args.strategy, since=args.since,
        batch=args.batch, check_every=args.check_every,
        pixel_check=PixelCheck.parse(args.pixel_check), workers=args.workers, sample=args.sample,
        rollback_threshold=parse_rate(args.rollback_threshold),
        report_dir=Path(args.report_dir), via=args.via, rules=args.rules, seed=args.seed,
        progress=sys.stderr)
    resume = "pacsim " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "the same command"
    try:
        result = run_migration(options)
    except KeyboardInterrupt:  # while planning or sampling: the checkpoint keeps it
        return report_interrupted(
            "stopped before the bulk run; the checkpoint keeps the plan so far",
            resume=resume)
    report = result.report
    totals = report["totals"]
    print(f"migration {'SIGNED OFF' if result.signed_off else 'NOT SIGNED OFF'}: "
          f"{totals['validated']} validated, {totals['mismatch']} with transfer mismatches, "
          f"{totals['failed']} failed, {totals['pending']} pending; "
          f"{totals['quality_findings']} data-quality findings")
    if report.get("stop_reason"):
        print(f"stopped: {report['stop_reason']}")
    print(f"report: {result.report_dir / 'validation.html'}")
    if result.stopped == "interrupted":
        return report_interrupted(
            f"{totals['validated'] + totals['mismatch']} studies checked, "
            f"{totals['pending']} pending", partial=result.report_dir / "validation.html",
            resume=resume)
    return result.exit_code


def register(subparsers: Any) -> None:
    """Add ``pacsim migrate`` to the CLI."""
    parser = subparsers.add_parser(
        "migrate", help="migrate a legacy archive into a target and validate every study",
        description="Move studies from a legacy PACS (a seeded directory pacsim serves, or "
                    "AE@HOST:PORT) into a target, validate each one, and write "
                    "validation.json/.csv/.html. Resumable: re-run with the same --report-dir.")
    parser.add_argument("--source", required=True, metavar="DIR|AE@HOST:PORT",
                        help="the legacy: a directory made by 'legacy seed' (pacsim serves "
                             "it) or a running archive")
    add_target(parser, required=True,
               help="where studies go: builtin/orthanc start a local target, AE@HOST:PORT "
                    "is the new PACS (register pacsim's AE on it for C-MOVE)")
    parser.add_argument("--strategy", choices=("full", "staged", "parallel"), default="full",
                        help="full: everything, oldest first; staged: the --since window "
                             "first, then the rest; parallel: only the window (default full)")
    parser.add_argument("--since", default=None, metavar="PERIOD",
                        help="staged/parallel window, e.g. 2y (default 2y)")
    parser.add_argument("--batch", type=int, default=50, metavar="N",
                        help="studies moved per chunk of the bulk run (default 50)")
    parser.add_argument("--check-every", type=int, default=20, metavar="N",
                        help="check the rollback trigger every N studies of the bulk run "
                             "(default 20)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="parallel associations to the legacy")
    parser.add_argument("--sample", type=int, default=0, metavar="N",
                        help="migrate and validate N random studies before the bulk run")
    parser.add_argument("--rollback-threshold", default="0.5%", metavar="RATE",
                        help="stop when the transfer mismatch rate passes this (default 0.5%%)")
    add_report_dir(parser, writes="validation.json/.csv/.html and the checkpoint; re-run "
                                  "with the same folder to resume",
                   default="reports/migration", old=("--report",))
    parser.add_argument("--via", choices=("move", "get"), default="move",
                        help="C-MOVE (legacy sends) or C-GET + C-STORE relay (needed for morphing)")
    parser.add_argument("--rules", type=Path, default=None, metavar="FILE",
                        help="ingestion rules YAML (default: the built-in rules)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and pixel checks")
    parser.add_argument("--pixel-check", nargs="+", default=["sample", "1"],
                        metavar="all|none|sample N",
                        help="which instances' pixel values to compare with the legacy's: "
                             "'sample N' per study (default: sample 1), all, or none")
    parser.set_defaults(func=_migrate)


__all__ = ["register", "parse_rate"]
