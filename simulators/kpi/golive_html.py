"""The go-live report as one self-contained HTML file, for the review meeting.

Self-contained for the same reason as the scenario report (:mod:`simulators.reports.html`):
it is attached to minutes and e-mailed to people with no path to the command centre,
so inline CSS and inline SVG only, no scripts, no network. Every value that came from
the store (probe and target names are free text a site chose) is HTML-escaped.

Charts: one per benchmark per ISO week, one slot per day. Times show the day's median
as a bar and its p95 as a line across it; uptime shows the day's C-ECHO availability.
A day inside the window without a measured run reads "n/m" (not measured), never a
zero bar; a day outside the window is greyed out.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path
from typing import Sequence

from simulators.common.fields import format_duration
from simulators.common.formatting import show
from simulators.common.header import RunHeader, failures_index_html, iso_time, page_top
from simulators.kpi.golive import AVAILABILITY, BenchmarkWeek, GoLiveReport
from simulators.kpi.golive_text import (benchmark_value, change_text, many_targets,
                                        outage_probes, percent, utc)
from simulators.kpi.report import NOT_MEASURED

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:90em}
h1{font-size:1.4em} h2{font-size:1.2em;margin-top:2em} h3{font-size:1em;margin:1.5em 0 .3em}
table{border-collapse:collapse;margin:.5em 0 1.5em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
td.nm{color:#888;font-style:italic} td.bad{color:#c62828;font-weight:600}
.muted{color:#666;font-size:.9em} .charts{display:flex;flex-wrap:wrap;gap:.8em}
figure{margin:0} figcaption{font-size:.85em;color:#444;margin-top:.2em;max-width:300px}
svg{background:#fff;border:1px solid #e4e4e4}
"""
_WIDTH, _HEIGHT = 300, 170
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 8, 24, 40
_BAR, _P95, _OUTSIDE = "#1565c0", "#e65100", "#f0f0f0"


def _day_label(ts: float) -> str:
    day = dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)
    return day.strftime("%a %d %b")


def _axis_label(value: float, kind: str) -> str:
    return f"{value:.0f}%" if kind == AVAILABILITY else format_duration(value)


def chart(week_label: str, bw: BenchmarkWeek) -> str:
    """SVG: the week's seven days for one benchmark (see the module doc)."""
    kind = bw.benchmark.kind
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    slot = plot_w / 7
    if kind == AVAILABILITY:
        top = 100.0
    else:
        # 10 % headroom so the highest p95 line does not sit on the frame.
        top = 1.1 * max([d.p95 or 0.0 for d in bw.days] + [d.p50 or 0.0 for d in bw.days]) \
            or 1.0
    title = f"{bw.benchmark.title}, {week_label}"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="{_LEFT}" y="15" font-size="12" font-weight="600">{escape(title)}</text>']
    for fraction in (0.0, 0.5, 1.0):
        y = _TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - _RIGHT}" y2="{y:.1f}" '
                     f'stroke="#e8e8e8"/><text x="{_LEFT - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{escape(_axis_label(top * fraction, kind))}</text>')
    for index, day in enumerate(bw.days):
        x = _LEFT + index * slot
        centre = x + slot / 2
        weekday, date = _day_label(day.start).split(" ", 1)
        parts.append(f'<text x="{centre:.1f}" y="{_HEIGHT - _BOTTOM + 14}" font-size="10" '
                     f'text-anchor="middle">{escape(weekday)}</text><text x="{centre:.1f}" '
                     f'y="{_HEIGHT - _BOTTOM + 26}" font-size="9" fill="#666" '
                     f'text-anchor="middle">{escape(date)}</text>')
        if not day.in_window:
            parts.append(f'<rect x="{x + 1:.1f}" y="{_TOP}" width="{slot - 2:.1f}" '
                         f'height="{plot_h}" fill="{_OUTSIDE}"><title>outside the report '
                         f'window</title></rect>')
            continue
        value = day.availability if kind == AVAILABILITY else day.p50
        if day.runs == 0 or value is None:
            why = NOT_MEASURED if day.runs == 0 else f"no successful run of {day.runs}"
            parts.append(f'<text x="{centre:.1f}" y="{_TOP + plot_h - 4}" font-size="10" '
                         f'fill="#888" text-anchor="middle">n/m<title>{escape(why)}</title>'
                         f'</text>')
            continue
        height = plot_h * min(value / top, 1.0)
        if kind == AVAILABILITY:
            tip = f"{_day_label(day.start)}: {percent(day.availability)} of {day.runs} runs"
        else:
            tip = (f"{_day_label(day.start)}: median {format_duration(day.p50 or 0.0)}, "
                   f"p95 {format_duration(day.p95 or 0.0)}, {day.runs} runs")
        parts.append(f'<rect x="{x + slot * 0.2:.1f}" y="{_TOP + plot_h - height:.1f}" '
                     f'width="{slot * 0.6:.1f}" height="{max(height, 1.0):.1f}" fill="{_BAR}">'
                     f'<title>{escape(tip)}</title></rect>')
        if kind == AVAILABILITY and value < 100.0:
            # 99.7 % and 100 % look alike on a 0-100 scale: say the figure.
            bar_top = _TOP + plot_h - height
            inside = height > 14  # else above the short bar, where there is room
            parts.append(f'<text x="{centre:.1f}" y="{bar_top + 10 if inside else bar_top - 3:.1f}"'
                         f' font-size="8" fill="{"#fff" if inside else "#c62828"}" '
                         f'text-anchor="middle">{value:.1f}%</text>')
        if kind != AVAILABILITY and day.p95 is not None:
            y = _TOP + plot_h * (1 - min(day.p95 / top, 1.0))
            parts.append(f'<line x1="{x + slot * 0.1:.1f}" y1="{y:.1f}" '
                         f'x2="{x + slot * 0.9:.1f}" y2="{y:.1f}" stroke="{_P95}" '
                         f'stroke-width="2"><title>{escape(tip)}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def _cell(text: str, classes: str = "") -> str:
    if text == NOT_MEASURED:
        classes = (classes + " nm").strip()
    return f'<td class="{classes}">{escape(show(text))}</td>' if classes else \
        f"<td>{escape(show(text))}</td>"


def _availability_table(report: GoLiveReport) -> str:
    rows = []
    for a in report.availability + [report.overall]:
        name = "overall" if a is report.overall else a.probe
        rows.append("<tr>" + _cell(name) + _cell(a.target) + _cell(str(a.runs), "num")
                    + _cell(str(a.passed), "num") + _cell(str(a.runs - a.passed), "num")
                    + _cell(str(a.timeouts), "num")
                    + _cell(percent(a.percent), "num") + "</tr>")
    return ("<table><tr><th>probe</th><th>target</th><th>measured runs</th><th>passed</th>"
            "<th>failed</th><th>of which timeouts</th><th>availability</th></tr>"
            + "".join(rows) + "</table>")


def _outage_table(report: GoLiveReport) -> str:
    if not report.outages:
        return "<p>No outage: no probe failed in the window.</p>"
    many = many_targets(report)
    rows = "".join(
        f'<tr id="outage-{i}">' + _cell(utc(o.start)) + _cell(utc(o.end) + (" (ongoing)" if o.ongoing else ""))
        + _cell(format_duration(o.end - o.start), "num")
        + _cell(outage_probes(o, many)) + "</tr>" for i, o in enumerate(report.outages))
    return ("<table><tr><th>from</th><th>to</th><th>duration</th>"
            "<th>probes failing (failed runs)</th></tr>" + rows + "</table>")


def _weekly_table(report: GoLiveReport) -> str:
    if not report.weeks:
        return "<p>No week in the window.</p>"
    titles = [bw.benchmark.title for bw in report.weeks[0].benchmarks.values()]
    head = "<tr><th rowspan='2'>ISO week</th>" + "".join(
        f"<th colspan='2'>{escape(t)}</th>" for t in titles) + "</tr><tr>" + "".join(
        "<th>this week</th><th>vs week before</th>" for _ in titles) + "</tr>"
    rows = []
    for week in report.weeks:
        label = week.label + (" (partial)" if week.partial else "")
        cells = [_cell(label)]
        for bw in week.benchmarks.values():
            cells.append(_cell(benchmark_value(bw)))
            cells.append(_cell(change_text(bw), "bad" if bw.flags else ""))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def _charts(report: GoLiveReport) -> str:
    parts = []
    for week in report.weeks:
        parts.append(f"<h3>{escape(week.label)}{' (partial)' if week.partial else ''}: "
                     f"{escape(utc(week.start))} .. {escape(utc(week.end))}</h3>"
                     '<div class="charts">')
        for bw in week.benchmarks.values():
            caption = (f"{bw.benchmark.statistic}; week: {benchmark_value(bw)}")
            parts.append(f"<figure>{chart(week.label, bw)}<figcaption>{escape(caption)}"
                         "</figcaption></figure>")
        parts.append("</div>")
    return "".join(parts)


def verdict(report: GoLiveReport, regressions: Sequence[str] = ()) -> tuple[str, str]:
    """The banner, from the stored probe results only: NO DATA when nothing was measured,
    FAIL on a regression (``probe report``'s exit 1) or an outage, else PASS."""
    overall = report.overall
    if not overall.runs:
        return "NO DATA", "no probe run was measured in the window"
    figures = (f"availability {percent(overall.percent)} ({overall.passed} of "
               f"{overall.runs} measured runs passed), {len(report.outages)} outage(s)")
    if regressions:
        return "FAIL", f"regressed: {', '.join(regressions)}; {figures}"
    if report.outages:
        return "FAIL", figures
    return "PASS", figures


def default_header(report: GoLiveReport) -> RunHeader:
    """What the stored results themselves say: the probed target(s) and the window."""
    targets = sorted({a.target for a in report.availability if a.target})
    return RunHeader(target_kind="probed PACS", target_address=", ".join(targets),
                     started=iso_time(report.start), ended=iso_time(report.end))


def _failures(report: GoLiveReport) -> str:
    items = [(f"outage-{i}", f"outage from {utc(o.start)}"
              + (" (ongoing)" if o.ongoing else f" to {utc(o.end)}"),
              outage_probes(o, many_targets(report))) for i, o in enumerate(report.outages)]
    return failures_index_html(items, title="Outages first")


def render_html(report: GoLiveReport, title: str = "pacsim go-live report", *,
                header: RunHeader | None = None, regressions: Sequence[str] = ()) -> str:
    overall = report.overall
    summary = (f"{utc(report.start)} .. {utc(report.end)} (UTC). Overall availability "
               f"{percent(overall.percent)} ({overall.passed} of {overall.runs} measured "
               f"runs passed); {len(report.outages)} outage(s).")
    word, why = verdict(report, regressions)
    return (page_top(title, word, why, header or default_header(report), css=_CSS)
            + _failures(report) + f"<p>{escape(summary)}</p>"
            "<h2>Availability per probe</h2><p class='muted'>A run passes when the probe "
            "succeeded; a failure or a timeout fails it; a run that could not be measured "
            "(no peer for it) is left out.</p>" + _availability_table(report)
            + "<h2>Outages</h2><p class='muted'>From the first failed run until the probe "
            "next passed; overlapping spans of different probes are one outage.</p>"
            + _outage_table(report)
            + "<h2>Weekly benchmarks</h2><p class='muted'>The playbook's four benchmarks per "
            "ISO week (UTC): median / p95 of successful runs; uptime is C-ECHO availability. "
            "No change is computed against a week without measured runs.</p>"
            + _weekly_table(report)
            + "<h2>Weekly charts</h2><p class='muted'>Bars: daily median (uptime: daily "
            f"availability); <span style='color:{_P95}'>line</span>: daily p95; n/m: not "
            "measured; grey: outside the report window.</p>" + _charts(report)
            + "</body></html>\n")


def write_html(report: GoLiveReport, path: str | Path, *, header: RunHeader | None = None,
               regressions: Sequence[str] = ()) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report, header=header, regressions=regressions),
                      encoding="utf-8")
    return target


__all__ = ["render_html", "write_html", "chart", "verdict", "default_header"]
