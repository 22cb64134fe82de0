"""The go-live review as text and JSON, and the cell texts the HTML form shares.

Why apart from :mod:`simulators.kpi.golive`: that module decides the figures, this one
only words them, so the text, the JSON and the HTML (:mod:`simulators.kpi.golive_html`)
cannot disagree on what "not measured" or a week-over-week change looks like.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from simulators.common.fields import format_duration
from simulators.kpi.golive import AVAILABILITY, Availability, BenchmarkWeek, GoLiveReport, Outage
from simulators.kpi.report import NOT_MEASURED


def utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def percent(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.2f}%"


def benchmark_value(week: BenchmarkWeek) -> str:
    """The week's figure as one cell: "p50 / p95" or availability, else "not measured"."""
    if not week.measured:
        return NOT_MEASURED
    if week.benchmark.kind == AVAILABILITY:
        return f"{percent(week.availability)} ({week.stats.runs} runs)"
    if week.stats.p50 is None:
        return f"no successful run ({week.stats.runs} runs)"
    return f"{ms(week.stats.p50)} / {ms(week.stats.p95)} ({week.stats.runs} runs)"


def change_text(week: BenchmarkWeek) -> str:
    """Week-over-week change as one cell; a regression (by the report's rule) is named."""
    if week.change is None:
        text = week.change_note
    elif week.benchmark.kind == AVAILABILITY:
        text = f"{week.change['availability_points']:+.2f} points"
    else:
        parts = []
        for name in ("p50", "p95"):
            if f"{name}_seconds" in week.change:
                delta = week.change[f"{name}_seconds"] * 1000
                ratio = week.change.get(f"{name}_ratio")
                parts.append(f"{name} {delta:+.1f} ms"
                             + (f" ({ratio:+.0%})" if ratio is not None else ""))
        text = ", ".join(parts)
    return text + ("; REGRESSION: " + "; ".join(week.flags) if week.flags else "")


def many_targets(report: GoLiveReport) -> bool:
    """More than one target in the report: outages then name probe@target."""
    return len({a.target for a in report.availability}) > 1


def outage_probes(outage: Outage, with_target: bool) -> str:
    """"echo x2, load_cget x1": each failing probe with its failed runs in the outage."""
    return ", ".join(f"{p}@{t} x{n}" if with_target else f"{p} x{n}"
                     for (p, t), n in sorted(outage.failing.items()))


def format_text(report: GoLiveReport) -> str:
    lines = [f"go-live report {utc(report.start)} .. {utc(report.end)} (UTC)", "",
             "availability (passed / measured runs; 'not measured' runs left out)"]
    for a in report.availability:
        lines.append(f"  {a.probe:<20} {a.target[:24]:<24} {a.passed:>6}/{a.runs:<6} "
                     f"{percent(a.percent)}")
    o = report.overall
    lines.append(f"  {'overall':<20} {'':<24} {o.passed:>6}/{o.runs:<6} {percent(o.percent)}")
    many = many_targets(report)
    lines += ["", f"outages ({len(report.outages)})"]
    for outage in report.outages:
        lines.append(f"  {utc(outage.start)} -> {utc(outage.end)}"
                     f"{' (ongoing)' if outage.ongoing else ''}, "
                     f"{format_duration(outage.end - outage.start)}: "
                     f"{outage_probes(outage, many)}")
    if not report.outages:
        lines.append("  none")
    lines += ["", "weekly benchmarks (p50 / p95 of successful runs; uptime = C-ECHO "
              "availability); change vs the week before"]
    for week in report.weeks:
        lines.append(f"  {week.label}{' (partial)' if week.partial else ''}")
        for key, bw in week.benchmarks.items():
            lines.append(f"    {bw.benchmark.title:<22} {benchmark_value(bw):<40} "
                         f"{change_text(bw)}")
    return "\n".join(lines)


def as_dict(report: GoLiveReport) -> dict[str, Any]:
    """JSON form; None (null) wherever nothing was measured."""
    def avail(a: Availability) -> dict[str, Any]:
        return {"probe": a.probe, "target": a.target, "runs": a.runs, "passed": a.passed,
                "timeouts": a.timeouts, "availability_percent": a.percent,
                "measured": a.runs > 0}

    def bench(bw: BenchmarkWeek) -> dict[str, Any]:
        return {"benchmark": bw.benchmark.key, "title": bw.benchmark.title,
                "statistic": bw.benchmark.statistic, "probes": list(bw.benchmark.probes),
                "measured": bw.measured, "runs": bw.stats.runs,
                "failures": bw.stats.failures, "p50": bw.stats.p50, "p95": bw.stats.p95,
                "availability_percent": bw.availability, "change": bw.change,
                "change_note": bw.change_note, "flags": bw.flags,
                "days": [{"start": d.start, "in_window": d.in_window, "runs": d.runs,
                          "p50": d.p50, "p95": d.p95, "availability_percent": d.availability}
                         for d in bw.days]}

    return {
        "start": report.start, "end": report.end,
        "availability": [avail(a) for a in report.availability],
        "overall": avail(report.overall),
        "outages": [{"from": o.start, "to": o.end, "ongoing": o.ongoing,
                     "from_utc": utc(o.start), "to_utc": utc(o.end),
                     "probes": o.probes, "targets": o.targets,
                     "failing": [{"probe": p, "target": t, "failed_runs": n}
                                 for (p, t), n in sorted(o.failing.items())]}
                    for o in report.outages],
        "weeks": [{"week": w.label, "start": w.start, "end": w.end, "partial": w.partial,
                   "benchmarks": [bench(bw) for bw in w.benchmarks.values()]}
                  for w in report.weeks],
    }


__all__ = ["format_text", "as_dict", "benchmark_value", "change_text", "outage_probes",
           "many_targets", "utc", "ms", "percent"]
