"""The load report: one JSON document and one self-contained HTML page per load run.

JSON keys are a contract (dashboards and CI read them): per operation ``count``,
``errors``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms`` (plus ``error_rate``,
``mean_ms``, ``throughput_per_s``, ``errors_by_reason``...), the same per stage, a
per-second ``timeline`` and the ``thresholds`` verdicts. The HTML page draws latency,
throughput and concurrency over time as inline SVG (no scripts, no external assets:
it is attached to tickets), every text from a peer HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from html import escape
from pathlib import Path
from typing import Any, Sequence

from simulators.common.header import HEADER_CSS, RunHeader, banner_html, header_html, iso_time
from simulators.load.engine import LoadRun
from simulators.load.thresholds import ThresholdResult, check_thresholds

FORMAT = "pacsim-load"
VERSION = 1
_PALETTE = ("#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037")
_WIDTH, _HEIGHT, _PAD = 760, 220, 48


def load_dict(run: LoadRun, *, target: str = "", thresholds: Sequence[ThresholdResult] | None
              = None, header: RunHeader | None = None) -> dict[str, Any]:
    """The JSON report of one run (see the module docstring for the keys). ``header``
    (target kind, address, capabilities, seed...) goes under ``header`` with the run's
    start and end filled in; without one, the header knows only the ``target`` text."""
    seconds = max(run.duration, 1e-9)
    operations = run.stats.operations(seconds)
    verdicts = list(thresholds) if thresholds is not None else check_thresholds(
        run.profile.thresholds, operations)
    return {
        "format": FORMAT, "version": VERSION,
        "name": run.profile.name or "load",
        "target": target,
        "started": dt.datetime.fromtimestamp(run.started).isoformat(timespec="seconds"),
        "duration_s": round(run.duration, 3),
        "passed": all(v.passed for v in verdicts),
        "modalities": run.profile.modalities.count, "peak_active": run.profile.peak,
        "workers": run.workers,
        "operations_started": run.operations_started, "interrupted": run.interrupted,
        "dropped_arrivals": run.dropped, "stopped_early": run.stopped_early or None,
        "prepare": run.prepare,
        "operations": operations,
        "stages": run.stats.stage_summaries(),
        "thresholds": [vars_of(v) for v in verdicts],
        "timeline": {**run.stats.timeline(math.ceil(run.duration)), "planned": run.planned},
        "profile": run.profile.model_dump(mode="json"),
        "header": _header(run, target, header).as_dict(),
    }


def _header(run: LoadRun, target: str, header: RunHeader | None) -> RunHeader:
    head = header or RunHeader(target_address=target)
    head.started = iso_time(run.started)  # the load's own span, whatever the caller stamped
    head.ended = iso_time(run.started + run.duration)
    return head


def vars_of(result: ThresholdResult) -> dict[str, Any]:
    return {"name": result.name, "expected": result.expected, "seen": result.seen,
            "passed": result.passed, "message": result.message}


def write_load_reports(report: dict[str, Any], directory: str | Path) -> tuple[Path, Path]:
    """Write ``load.json`` and ``load.html`` into ``directory``; returns both paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "load.json", folder / "load.html"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", "utf-8")
    html_path.write_text(render_html(report), "utf-8")
    return json_path, html_path


def run_directory(base: str | Path, name: str) -> Path:
    """``base/<slug>-<timestamp>``: one folder per run, never overwriting an earlier one."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48] or "load"
    return Path(base) / f"{slug}-{dt.datetime.now():%Y%m%d-%H%M%S-%f}"


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.8em}
table{border-collapse:collapse;margin:.5em 0 1em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;font-size:.85em}
th{background:#f4f4f4} td.l,th.l{text-align:left} .ok{color:#2e7d32} .bad{color:#c62828;font-weight:600}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:600}
svg{background:#fff;border:1px solid #eee;margin:.3em 0} .muted{color:#666;font-size:.85em}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _operations_table(operations: dict[str, dict[str, Any]]) -> str:
    columns = ("count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "throughput_per_s")
    rows = ["<table><tr><th class=l>operation</th>" +
            "".join(f"<th>{c}</th>" for c in columns) + "<th class=l>errors by reason</th></tr>"]
    for name, figures in operations.items():
        reasons = "; ".join(f"{escape(str(r))}: {n}" for r, n in
                            (figures.get("errors_by_reason") or {}).items())
        css = "bad" if figures.get("errors") else ""
        rows.append(f"<tr><td class=l>{escape(name)}</td>" +
                    "".join(f"<td class='{css if c == 'errors' else ''}'>{_fmt(figures.get(c))}"
                            f"</td>" for c in columns) + f"<td class=l>{reasons}</td></tr>")
    return "\n".join(rows) + "</table>"


def _stages_table(report: dict[str, Any]) -> str:
    """Each stage side by side, and each stage's p95 relative to the first stage."""
    stages = report["stages"]
    names = sorted({n for s in stages for n in s["operations"] if not n.startswith("dicom.")
                    and not n.startswith("hl7.")})
    if len(stages) < 2 or not names:
        return ""
    head = "".join(f"<th colspan=4>{escape(s['name'])} ({s['target']} active)</th>"
                   for s in stages)
    sub = "<th>count</th><th>errors</th><th>p50 ms</th><th>p95 ms (x first)</th>" * len(stages)
    rows = [f"<table><tr><th class=l rowspan=2>operation</th>{head}</tr><tr>{sub}</tr>"]
    for name in names:
        base = stages[0]["operations"].get(name, {}).get("p95_ms")
        cells = []
        for stage in stages:
            f = stage["operations"].get(name, {})
            p95 = f.get("p95_ms")
            ratio = f" (x{p95 / base:.1f})" if p95 and base else ""
            cells.append(f"<td>{_fmt(f.get('count'))}</td><td>{_fmt(f.get('errors'))}</td>"
                         f"<td>{_fmt(f.get('p50_ms'))}</td><td>{_fmt(p95)}{ratio}</td>")
        rows.append(f"<tr><td class=l>{escape(name)}</td>{''.join(cells)}</tr>")
    return "<h2>Stages compared</h2>" + "\n".join(rows) + "</table>"


def line_chart(title: str, xs: Sequence[float], series: Sequence[tuple[str, Sequence[Any]]],
               unit: str) -> str:
    """An inline SVG line chart; ``None`` values break a line (no sample that second)."""
    values = [v for _, ys in series for v in ys if v is not None]
    top = max(values, default=0) or 1.0
    top *= 1.1
    span = max(xs[-1] if xs else 1, 1)
    inner_w, inner_h = _WIDTH - 2 * _PAD, _HEIGHT - 2 * _PAD + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="{_PAD}" y="16" font-size="13" font-weight="600">{escape(title)}</text>']
    for tick in range(5):
        y = _PAD + inner_h - inner_h * tick / 4
        parts.append(f'<line x1="{_PAD}" y1="{y:.1f}" x2="{_WIDTH - _PAD}" y2="{y:.1f}" '
                     f'stroke="#eee"/><text x="{_PAD - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{top * tick / 4:,.0f}</text>')
        x = _PAD + inner_w * tick / 4
        parts.append(f'<text x="{x:.1f}" y="{_HEIGHT - 6}" font-size="10" '
                     f'text-anchor="middle">{span * tick / 4:.0f}s</text>')
    parts.append(f'<text x="4" y="{_PAD - 8}" font-size="10">{escape(unit)}</text>')
    for number, (label, ys) in enumerate(series):
        colour = _PALETTE[number % len(_PALETTE)]
        segments, current = [], []
        for x, y in zip(xs, ys):
            if y is None:
                if current:
                    segments.append(current)
                current = []
                continue
            current.append(f"{_PAD + inner_w * x / span:.1f},{_PAD + inner_h - inner_h * y / top:.1f}")
        if current:
            segments.append(current)
        for points in segments:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            else:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                             f'points="{" ".join(points)}"/>')
        lx = _PAD + 10 + number * 170
        parts.append(f'<rect x="{lx}" y="26" width="10" height="3" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="31" font-size="10">{escape(label[:26])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _charts(report: dict[str, Any]) -> str:
    timeline = report["timeline"]
    xs = timeline["seconds"]
    operations = {n: rows for n, rows in timeline["operations"].items()
                  if not n.startswith(("dicom.", "hl7."))}
    charts = []
    for name, rows in operations.items():
        charts.append(line_chart(f"{name}: latency per second", xs,
                                 [("p50", rows["p50_ms"]), ("p95", rows["p95_ms"])], "ms"))
    planned = timeline.get("planned") or []
    charts.append(line_chart("concurrency: operations in flight and active modalities", xs,
                             [("operations in flight (measured)", timeline["concurrency"]),
                              ("active modalities (planned)", planned[:len(xs)])], "count"))
    charts.append(line_chart("throughput and errors per second", xs,
                             [(f"{n} /s", rows["count"]) for n, rows in operations.items()] +
                             [(f"{n} errors /s", rows["errors"]) for n, rows in operations.items()
                              if any(rows["errors"])], "per second"))
    return "\n".join(charts)


def _verdict(report: dict[str, Any]) -> tuple[str, str]:
    """The banner: FAIL on any broken threshold; INTERRUPTED when stopped early."""
    failing = [t["name"] for t in report["thresholds"] if not t["passed"]]
    if failing:
        return "FAIL", f"{len(failing)} threshold(s) broken: {', '.join(failing)}"
    if report.get("stopped_early"):
        return "INTERRUPTED", f"stopped early: {report['stopped_early']}"
    limits = len(report["thresholds"])
    return "PASS", (f"all {limits} threshold(s) held" if limits
                    else "no thresholds: the run reports, never fails")


def render_html(report: dict[str, Any]) -> str:
    header = RunHeader.from_dict(report.get("header") or {"target_address": report.get("target")
                                                          or ""})
    verdicts = "".join(
        f"<tr><td class=l>{escape(t['name'])}</td><td>{escape(t['expected'])}</td>"
        f"<td>{escape(t['seen'])}</td><td class='{'ok' if t['passed'] else 'bad'}'>"
        f"{'pass' if t['passed'] else 'FAIL'}</td><td class=l>{escape(t['message'])}</td></tr>"
        for t in report["thresholds"])
    thresholds = (f"<h2>Thresholds</h2><table><tr><th class=l>limit</th><th>expected</th>"
                  f"<th>seen</th><th>verdict</th><th class=l>detail</th></tr>{verdicts}</table>"
                  if verdicts else "<p class=muted>No thresholds: the run reports, never fails."
                                   "</p>")
    prepare = report.get("prepare") or {}
    notes = (f"{report['modalities']} virtual modalities, peak {report['peak_active']} active, "
             f"{report['workers']} process(es); {report['operations_started']} operations "
             f"started, {report['interrupted']} interrupted at the end, "
             f"{report['dropped_arrivals']} arrivals dropped (modality busy)")
    if prepare.get("orders") is not None:
        notes += (f"; prepared {prepare.get('orders')} orders in {prepare.get('seconds')}s "
                  f"({prepare.get('failed')} failed)")
    if prepare.get("image_shapes"):
        notes += (f"; image templates for {prepare['image_shapes']} study shape(s) recorded "
                  f"in {prepare.get('image_seconds')}s before the start")
    if report.get("stopped_early"):
        notes += f"; stopped early: {report['stopped_early']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pacsim load: {escape(report['name'])}</title>
<style>{_CSS}{HEADER_CSS}</style></head><body>
{banner_html(*_verdict(report))}
<h1>Load: {escape(report['name'])}</h1>
{header_html(header)}
<p>Target {escape(report.get('target') or '-')}; started {escape(report['started'])};
{report['duration_s']:.1f}s.</p><p class=muted>{escape(notes)}</p>
{thresholds}
<h2>Operations</h2>
<p class=muted>Operations (mwl.query, modality.perform...) span a modality's whole
transaction, associations included; dicom.* and hl7.* rows are single wire exchanges.
Latencies include failed exchanges; a refused association is fast, so read errors first.</p>
{_operations_table(report['operations'])}
{_stages_table(report)}
<h2>Over time</h2>
{_charts(report)}
</body></html>
"""


__all__ = ["load_dict", "write_load_reports", "render_html", "run_directory", "line_chart",
           "FORMAT", "VERSION"]
