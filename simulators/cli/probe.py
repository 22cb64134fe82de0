"""``pacsim probe`` (run the go-live probes) and ``pacsim probe report`` (weekly check).

Both spellings share one subparser: ``probe`` takes the run options itself and has
one optional nested action, ``report``. argparse only treats the first positional
word as an action, so ``pacsim probe --target builtin`` runs probes and ``pacsim
probe report --since 7d`` reports; ``--store`` is accepted in either place.

Exit codes: a bounded run (``--once``/``--count``) exits 1 when any probe failed or
timed out ("not measured" is not a failure); an endless run exits 0 on SIGTERM or
Ctrl-C after finishing its cycle. ``report`` exits 1 when it flags a regression.
``report --html FILE`` also writes the go-live review as one self-contained page;
the exit code is the comparison's alone (the weekly table informs, it does not page).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from simulators.cli.interrupt import received, report_interrupted, signals_as_interrupt
from simulators.cli.options import (
    add_json, add_report_dir, add_target, duration, emit_json, json_to_stdout,
)
from simulators.errors import ConfigError
from simulators.kpi import golive, golive_text
from simulators.kpi.embedded import ProbeSession, SessionOptions
from simulators.kpi.golive_html import default_header, write_html
from simulators.kpi.metrics import ProbeMetrics
from simulators.kpi.report import RegressionRule, as_json, compare, format_table, parse_window
from simulators.kpi.result import FAIL, TIMEOUT, ProbeResult
from simulators.kpi.runner import PROBES, ProbeRunner, parse_probes
from simulators.kpi.store import DB_NAME, ResultStore
from simulators.dicom.address import parse_ae_address
from simulators.kpi.target import PROBE_AE, parse_hostport

DEFAULT_STORE = Path("probe-data")
#: What ``probe report --report-dir DIR`` writes there.
REPORT_FILES = ("golive.json", "golive.html")


def _duration(text: str) -> float:
    try:
        return parse_window(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _options(args: argparse.Namespace) -> SessionOptions:
    if args.target not in ("builtin", "orthanc"):
        parse_ae_address(args.target, "--target")  # refuse a typo before anything starts
    return SessionOptions(
        target=args.target,
        worklist=parse_ae_address(args.worklist, "--worklist") if args.worklist else None,
        hl7=parse_hostport(args.hl7, "--hl7") if args.hl7 else None,
        dicomweb=args.dicomweb, rest=args.orthanc_rest, timeout=args.timeout,
        listen_host=args.listen_host, move_port=args.move_port,
        report_port=args.report_listen, calling_ae=args.ae_title)


def _print_cycle(number: int, results: list[ProbeResult]) -> None:
    parts = []
    for r in results:
        text = f"{r.probe} {r.outcome}"
        if r.outcome != "skipped":
            text += f" {r.seconds * 1000:.1f}ms"
        if "mb_per_s" in r.figures:
            text += f" {r.figures['mb_per_s']:.1f}MB/s"
        parts.append(text)
    print(f"cycle {number}: " + ", ".join(parts), flush=True)
    for r in results:
        if r.outcome in (FAIL, TIMEOUT):
            print(f"  {r.probe}: {r.outcome}: {r.error}", flush=True)


def _run(args: argparse.Namespace) -> int:
    if args.target is None:
        raise ConfigError("pacsim probe needs --target builtin|orthanc|AE@HOST:PORT "
                          "(or the action: pacsim probe report)")
    count = 1 if args.once else args.count
    if count is not None and count < 1:
        raise ConfigError("--count must be at least 1", count=count)
    if getattr(args, "verbose", 0) < 2:
        # A refused or rejected association is a probe *result* (printed per cycle);
        # pynetdicom would also log it as an ERROR line on every cycle.
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    stop = threading.Event()
    failures = 0
    cycles: list[list[ProbeResult]] = []
    options = _options(args)  # bad input is refused before anything is created
    # The first SIGINT/SIGTERM lets the running cycle finish (the canary is cleaned
    # up); a second one interrupts it. Either way the summary is written and printed.
    try:
        with signals_as_interrupt(on_first=lambda _name: stop.set()):
            failures = _probe(args, options, count, stop, cycles)
    except KeyboardInterrupt:
        stop.set()
    if stop.is_set() and received() is not None \
            and (count is None or len(cycles) < count):
        path = _write_run_summary(args.store, cycles, count, interrupted=count is not None)
        if count is None:  # an endless run ends by a signal: that is its normal end
            print(f"stopped by {received()} after {len(cycles)} cycle(s); summary {path}",
                  flush=True)
            return 0
        failed = sum(1 for c in cycles for r in c if r.outcome in (FAIL, TIMEOUT))
        return report_interrupted(
            f"{len(cycles)} of {count} cycle(s) finished, {failed} probe failure(s); "
            f"results so far in {args.store} (pacsim probe report --store {args.store})",
            partial=path)
    return 1 if count is not None and failures else 0


def _write_run_summary(store: Path, cycles: list[list[ProbeResult]], count: int | None, *,
                       interrupted: bool) -> Path:
    """``probe-run.json`` beside the result store: this run's cycles, marked
    INTERRUPTED when a bounded run was stopped before its last cycle."""
    path = Path(store) / "probe-run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {"status": "INTERRUPTED" if interrupted else "stopped",
               "signal": received(), "cycles_planned": count, "cycles_finished": len(cycles),
               "cycles": [[{"probe": r.probe, "target": r.target, "outcome": r.outcome,
                            "seconds": r.seconds, "started": r.started, "error": r.error}
                           for r in cycle] for cycle in cycles]}
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def _probe(args: argparse.Namespace, options: SessionOptions, count: int | None,
           stop: threading.Event, cycles: list[list[ProbeResult]]) -> int:
    """The probe loop; appends each finished cycle to ``cycles``; returns failures."""
    failures = 0
    with ResultStore(args.store) as store, ProbeSession(options) as session:
        target = session.open()
        metrics = ProbeMetrics()
        if args.metrics:
            host, port = parse_hostport(args.metrics, "--metrics")
            bound = metrics.serve(host, port)
            session.callback(metrics.close)
            print(f"metrics on http://{host}:{bound}/metrics", flush=True)
        if session.report_address:
            print("listening for reports (ORU^R01) on MLLP %s:%d" % session.report_address,
                  flush=True)
        print(f"probing {target.label}: store {target.store}"
              + (f", worklist {target.worklist}" if target.worklist else "")
              + (f", hl7 {target.hl7[0]}:{target.hl7[1]}" if target.hl7 else "")
              + (f", dicomweb {target.dicomweb}" if target.dicomweb else "")
              + f"; results in {store.path}", flush=True)
        runner = ProbeRunner(target, probes=parse_probes(args.probes), store=store,
                             metrics=metrics, receiver=session.receiver, reports=session.reports,
                             images=args.images, image_size=args.image_size,
                             order_message=args.order_message)

        def on_cycle(results: list[ProbeResult]) -> None:
            nonlocal failures
            failures += sum(1 for r in results if r.outcome in (FAIL, TIMEOUT))
            cycles.append(results)
            _print_cycle(runner.cycles, results)

        runner.run(args.every, count=count, stop=stop, on_cycle=on_cycle)
        if count is None and args.linger:
            stop.wait(args.linger)
    return failures


def _report(args: argparse.Namespace) -> int:
    """The comparison (exit code), then the go-live figures over the ``--since`` window."""
    rule = RegressionRule(ratio=args.ratio, floor=args.floor)
    since, baseline = args.since, args.baseline or args.since
    now = time.time()
    if not (Path(args.store) / DB_NAME).is_file():  # opening would create an empty one
        raise ConfigError(f"--store {args.store}: no probe results there (no {DB_NAME}); "
                          "run `pacsim probe --target ...` first or point --store at its "
                          "folder", field="store")
    with ResultStore(args.store) as store:
        if store.count() == 0:  # an empty table would print a green report: refuse
            raise ConfigError(f"--store {args.store}: the probe store holds no results",
                              field="store")
        rows = compare(store, since=since, baseline=baseline, rule=rule, target=args.for_target,
                       probes=PROBES, now=now)
        review = golive.build(store, start=now - since, end=now, probes=PROBES,
                              target=args.for_target, rule=rule)
    document = as_json(rows, rule, golive=golive_text.as_dict(review), since_seconds=since,
                       baseline_seconds=baseline, header=default_header(review).as_dict())
    regressions = [f"{row.probe} ({row.target})" for row in rows if row.regressed]
    if args.json:
        emit_json(args.json, document)
    if not json_to_stdout(args):
        print(format_table(rows, rule) + "\n\n" + golive_text.format_text(review))
    if args.report_dir:
        folder = Path(args.report_dir)
        emit_json(folder / REPORT_FILES[0], document)
        write_html(review, folder / REPORT_FILES[1], regressions=regressions)
        if not json_to_stdout(args):
            print(f"\nreports written to {folder}/ ({', '.join(REPORT_FILES)})")
    if args.html is not None:
        path = write_html(review, args.html, regressions=regressions)
        if not json_to_stdout(args):
            print(f"\nHTML report: {path}")
    return 1 if any(row.regressed for row in rows) else 0


def register(subparsers: Any) -> None:
    """Add ``probe`` (and its ``report`` action) to the CLI."""
    probe = subparsers.add_parser(
        "probe", help="go-live KPI probes against a live target (and their weekly report)",
        description="Synthetic transactions with a canary patient (PACSIM-CANARY, "
                    "ZZCANARY^PROBE): " + ", ".join(PROBES) + ". Results go to SQLite "
                    "(--store) and, with --metrics, to a Prometheus endpoint.")
    add_target(probe, help="builtin/orthanc start a local target; AE@HOST:PORT is the PACS "
                           "to probe")
    probe.add_argument("--every", type=_duration, default=300.0, metavar="DURATION",
                       help="time between cycles (default 5m)")
    probe.add_argument("--once", action="store_true", help="one cycle, then exit")
    probe.add_argument("--count", type=int, metavar="N", help="N cycles, then exit")
    probe.add_argument("--timeout", type=_duration, default=10.0, metavar="DURATION",
                       help="per probe; a slower answer counts as a timeout failure (10s)")
    probe.add_argument("--metrics", metavar="HOST:PORT",
                       help="serve Prometheus metrics, e.g. 127.0.0.1:9464 (port 0: any)")
    probe.add_argument("--store", type=Path, default=DEFAULT_STORE, metavar="DIR",
                       help="SQLite result store directory (default ./probe-data)")
    probe.add_argument("--worklist", metavar="AE@HOST:PORT", help="the MWL SCP (often the RIS)")
    probe.add_argument("--hl7", metavar="HOST:PORT", help="the order filler's MLLP listener")
    probe.add_argument("--order-message", choices=("orm", "omg"), default="orm",
                       help="ORM^O01 (v2.3.1) or OMG^O19 (v2.5.1) for the canary order")
    probe.add_argument("--dicomweb", metavar="URL", help="DICOMweb base URL for WADO-RS")
    probe.add_argument("--orthanc-rest", metavar="URL",
                       help="Orthanc REST URL: delete the canary study after each cycle")
    probe.add_argument("--report-listen", type=int, metavar="PORT",
                       help="MLLP port for ORU^R01 from a reporting peer (0: any)")
    probe.add_argument("--listen-host", default="127.0.0.1",
                       help="interface of the probe's own listeners (default 127.0.0.1)")
    probe.add_argument("--move-port", type=int, default=0, metavar="PORT",
                       help="port of the probe's C-MOVE storage SCP (configure it on the "
                            "target as AE --ae-title)")
    probe.add_argument("--ae-title", default=PROBE_AE, help=f"our AE title ({PROBE_AE})")
    probe.add_argument("--probes", metavar="LIST", help="comma-separated subset of: "
                       + ",".join(PROBES))
    probe.add_argument("--images", type=int, default=2, metavar="N",
                       help="canary images per cycle (2)")
    probe.add_argument("--image-size", type=int, default=256, metavar="N",
                       help="canary image rows = columns (256)")
    # hidden: only tests keep an endless run alive after its cycles
    probe.add_argument("--linger", type=_duration, default=0.0, help=argparse.SUPPRESS)
    probe.set_defaults(func=_run)

    actions = probe.add_subparsers(dest="probe_action", metavar="[report]")
    report = actions.add_parser(
        "report", help="this window vs the one before; exit 1 on a regression",
        description="Per probe: runs, p50/p95 of successful runs, failure rate; flags a "
                    "regression by: " + RegressionRule().describe() + ". Then, over the "
                    "--since window: availability per probe and overall, outages, and the "
                    "playbook's weekly benchmarks (image load, worklist query, uptime, "
                    "report turnaround) per ISO week with the change from the week before.")
    report.add_argument("--since", type=_duration, default=parse_window("7d"),
                        metavar="WINDOW", help="current window, e.g. 7d (default)")
    report.add_argument("--baseline", type=_duration, metavar="WINDOW",
                        help="the window before it (default: same length as --since)")
    report.add_argument("--store", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                        help="SQLite result store directory (default ./probe-data)")
    report.add_argument("--for-target", metavar="LABEL", help="only this target label")
    add_report_dir(report, writes=", ".join(REPORT_FILES) + " (the comparison and the "
                                                          "go-live review)")
    add_json(report, what="the comparison and the go-live figures", was_switch=True)
    report.add_argument("--html", type=Path, metavar="FILE",
                        help="also write the go-live report (availability, outages, weekly "
                             "benchmarks and charts) as one self-contained HTML file")
    report.add_argument("--ratio", type=float, default=0.20, metavar="FRACTION",
                        help="a regression: p95 worse by more than this fraction (0.20)")
    report.add_argument("--floor", type=duration, default=0.05, metavar="DURATION",
                        help="... and by more than this much, e.g. 50ms (default 50ms; "
                             "a bare number is seconds)")
    report.set_defaults(func=_report)


__all__ = ["register"]
