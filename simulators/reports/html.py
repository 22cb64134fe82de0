"""One self-contained HTML file per invocation: the run's timeline and what each step saw.

Self-contained because the file is attached to tickets and e-mailed to people with no
network path to anything: inline CSS and SVG only, no scripts, no external assets.
Everything that came from a scenario or a peer is HTML-escaped (a patient name or a
peer's error text must never become markup).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Sequence

from simulators.reports.common import STATUS_LABELS, as_list, format_duration, show, summary_line
from simulators.scenario.results import RunResult, StepResult

_COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "error": "#6a1b9a", "skipped": "#9e9e9e",
            "unsupported": "#f9a825"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.2em;margin-top:2em}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:600}
table{border-collapse:collapse;margin:.5em 0 1.5em 0;width:100%}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f4f4f4} td.ok{color:#2e7d32} td.bad{color:#c62828;font-weight:600}
.step{margin:1em 0;padding:.5em 1em;border-left:.4em solid #ccc;background:#fafafa}
.muted{color:#666} svg{background:#fff;border:1px solid #eee} code{font-size:.9em}
"""
_ROW = 22
_LABEL_WIDTH = 260
_CHART_WIDTH = 640


def _badge(status: str) -> str:
    return (f'<span class="badge" style="background:{_COLOURS[status]}">'
            f'{STATUS_LABELS[status]}</span>')


def _timeline(run: RunResult) -> str:
    """SVG: one bar per step (nested steps indented) on a shared time axis; ticks = events."""
    steps = [(step, depth) for top in run.steps for step, depth in _with_depth(top, 0)]
    span = max([run.duration] + [s.started - run.started + s.duration for s, _ in steps] + [1e-3])
    scale = _CHART_WIDTH / span
    height = _ROW * (len(steps) + 1) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LABEL_WIDTH + _CHART_WIDTH + 20}"'
             f' height="{height}" role="img" aria-label="timeline of the run">']
    for tick in range(5):
        x = _LABEL_WIDTH + tick * _CHART_WIDTH / 4
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 14}" '
                     f'stroke="#eee"/><text x="{x:.1f}" y="{height - 2}" font-size="10" '
                     f'text-anchor="middle">{escape(format_duration(span * tick / 4))}</text>')
    for row, (step, depth) in enumerate(steps):
        y = row * _ROW + 4
        x = _LABEL_WIDTH + max(0.0, step.started - run.started) * scale
        width = max(2.0, step.duration * scale)
        label = escape(show(("  " * depth) + step.name, 40))
        parts.append(f'<text x="{4 + depth * 12}" y="{y + 13}" font-size="11">{label}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" '
                     f'fill="{_COLOURS[step.status]}" rx="2"><title>'
                     f'{escape(step.name)}: {STATUS_LABELS[step.status]}, '
                     f'{escape(format_duration(step.duration))}</title></rect>')
        for event in step.events:
            ex = _LABEL_WIDTH + max(0.0, event.start - run.started) * scale
            parts.append(f'<line x1="{ex:.1f}" y1="{y - 2}" x2="{ex:.1f}" y2="{y + _ROW - 6}" '
                         f'stroke="#000" stroke-width="1"><title>{escape(event.kind)} '
                         f'{escape(event.actor)} → {escape(event.peer)}: '
                         f'{escape(event.outcome)} {escape(event.status)}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def _with_depth(step: StepResult, depth: int) -> list[tuple[StepResult, int]]:
    rows = [(step, depth)]
    for child in step.children:
        rows.extend(_with_depth(child, depth + 1))
    return rows


def _expectations_table(step: StepResult) -> str:
    if not step.expectations:
        return ""
    rows = "".join(
        f'<tr><td>{escape(e.name)}</td><td><code>{escape(show(e.expected))}</code></td>'
        f'<td><code>{escape(show(e.seen))}</code></td>'
        f'<td class="{"ok" if e.passed else "bad"}">{"met" if e.passed else "NOT met"}'
        f'{"" if e.passed else ": " + escape(e.message)}</td></tr>' for e in step.expectations)
    return ("<table><tr><th>expectation</th><th>expected</th><th>seen</th><th>verdict</th></tr>"
            f"{rows}</table>")


def _events_table(step: StepResult) -> str:
    if not step.events:
        return ""
    rows = "".join(
        f"<tr><td>{escape(e.kind)}</td><td>{escape(e.actor)}</td><td>{escape(e.peer)}</td>"
        f"<td>{escape(e.outcome)}</td><td>{escape(str(e.status))}</td>"
        f"<td>{escape(format_duration(e.duration))}</td><td>{e.bytes}</td></tr>"
        for e in step.events)
    return ("<table><tr><th>exchange</th><th>actor</th><th>peer</th><th>outcome</th>"
            f"<th>status</th><th>duration</th><th>bytes</th></tr>{rows}</table>")


def _step_section(step: StepResult, number: str) -> str:
    parts = [f'<div class="step" style="border-color:{_COLOURS[step.status]}">',
             f"<h3>{_badge(step.status)} {escape(number)} {escape(step.name)} "
             f'<span class="muted">({escape(step.do)}, {escape(format_duration(step.duration))}'
             f"{', ' + str(step.attempts) + ' attempts' if step.attempts > 1 else ''})</span></h3>"]
    if step.message:
        parts.append(f"<p>{escape(step.message)}</p>")
    parts.extend(f'<p class="muted">note: {escape(note)}</p>' for note in step.notes
                 if note != step.message)
    parts.append(_expectations_table(step))
    parts.append(_events_table(step))
    parts.extend(_step_section(child, f"{number}{i}.") for i, child in
                 enumerate(step.children, start=1))
    parts.append("</div>")
    return "".join(parts)


def _run_section(run: RunResult) -> str:
    verdict = "passed" if run.passed else ("error" if run.environment_error else "failed")
    parts = [f"<h2>{_badge(verdict)} {escape(run.scenario)}</h2>",
             f'<p class="muted">{escape(run.file or "")} · {escape(format_duration(run.duration))}'
             f" · {len(run.steps)} steps</p>"]
    if run.environment_error:
        parts.append(f"<p><strong>{escape(run.environment_error)}</strong></p>")
    parts.append(_timeline(run))
    for index, step in enumerate(run.steps, start=1):
        parts.append(_step_section(step, f"{index}."))
    parts.extend(f'<p class="muted">warning: {escape(w)}</p>' for w in run.warnings)
    return "".join(parts)


def render_html(results: RunResult | Sequence[RunResult], title: str = "pacsim report") -> str:
    runs = as_list(results)
    body = "".join(_run_section(run) for run in runs)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><p>{escape(summary_line(runs))}</p>{body}"
            f"</body></html>\n")


def write_html(results: RunResult | Sequence[RunResult], path: str | Path,
               title: str = "pacsim report") -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(results, title), encoding="utf-8")
    return target


__all__ = ["render_html", "write_html"]
