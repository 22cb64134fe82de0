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

from simulators.common.header import RunHeader, failures_index_html, page_top
from simulators.reports.common import STATUS_LABELS, as_list, format_duration, header_of, plain, \
    show, summary_line, verdict_of
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
    """Expected vs seen in plain words; the unmet ones first (they are why a step failed)."""
    if not step.expectations:
        return ""
    ordered = sorted(step.expectations, key=lambda e: e.passed)
    rows = "".join(
        f'<tr><td>{escape(e.name)}</td><td>{escape(plain(e.expected))}</td>'
        f'<td>{escape(plain(e.seen))}</td>'
        f'<td class="{"ok" if e.passed else "bad"}">{"met" if e.passed else "NOT met"}'
        f'{"" if e.passed else ": " + escape(e.message)}</td></tr>' for e in ordered)
    return ("<table><tr><th>expectation</th><th>expected</th><th>seen</th><th>verdict</th></tr>"
            f"{rows}</table>")


def _events_table(step: StepResult) -> str:
    """The step's wire exchanges, collapsed: they are evidence, not the verdict, and an
    80-row table must not push the next failure three screens down."""
    if not step.events:
        return ""
    refused = sum(1 for e in step.events if e.outcome != "ok")
    rows = "".join(
        f"<tr><td>{escape(e.kind)}</td><td>{escape(e.actor)}</td><td>{escape(e.peer)}</td>"
        f"<td>{escape(e.outcome)}</td><td>{escape(str(e.status))}</td>"
        f"<td>{escape(format_duration(e.duration))}</td><td>{e.bytes}</td></tr>"
        for e in step.events)
    other = f", {refused} not ok" if refused else ""
    return (f"<details><summary>{len(step.events)} exchange(s){other}</summary>"
            "<table><tr><th>exchange</th><th>actor</th><th>peer</th><th>outcome</th>"
            f"<th>status</th><th>duration</th><th>bytes</th></tr>{rows}</table></details>")


def _link(path: str, base: Path | None) -> str:
    """A link to an artefact, relative to the report's folder when it lies under it."""
    target = Path(path)
    if base is not None:
        try:
            target = target.resolve().relative_to(base.resolve())
        except ValueError:
            target = target.resolve()
    href = target.as_posix()
    return f'<a href="{escape(href)}">{escape(href)}</a>'


def _artefacts(step: StepResult, base: Path | None) -> str:
    if not step.artefacts:
        return ""
    return ('<p class="muted">artefacts: '
            + ", ".join(_link(path, base) for path in step.artefacts) + "</p>")


def _anchor(run_index: int, number: str) -> str:
    return f"run{run_index}-step{number.rstrip('.').replace('.', '-').replace(' ', '-')}"


def _step_section(step: StepResult, number: str, run_index: int, base: Path | None) -> str:
    parts = [f'<div class="step" id="{_anchor(run_index, number)}" '
             f'style="border-color:{_COLOURS[step.status]}">',
             f"<h3>{_badge(step.status)} {escape(number)} {escape(step.name)} "
             f'<span class="muted">({escape(step.do)}, {escape(format_duration(step.duration))}'
             f"{', ' + str(step.attempts) + ' attempts' if step.attempts > 1 else ''})</span></h3>"]
    if step.message:
        parts.append(f"<p>{escape(_why(step) if step.status == 'failed' else step.message)}</p>")
    parts.extend(f'<p class="muted">note: {escape(note)}</p>' for note in step.notes
                 if note != step.message)
    parts.append(_artefacts(step, base))
    parts.append(_expectations_table(step))
    parts.append(_events_table(step))
    parts.extend(_step_section(child, f"{number}{i}.", run_index, base) for i, child in
                 enumerate(step.children, start=1))
    parts.append("</div>")
    return "".join(parts)


def _numbered(run: RunResult) -> list[tuple[StepResult, str]]:
    """Every step with the number its section shows (``2.1.``), depth first."""
    rows: list[tuple[StepResult, str]] = []

    def visit(step: StepResult, number: str) -> None:
        rows.append((step, number))
        for i, child in enumerate(step.children, start=1):
            visit(child, f"{number}{i}.")

    for step, number in _top_numbers(run):
        visit(step, number)
    return rows


def _top_numbers(run: RunResult) -> list[tuple[StepResult, str]]:
    """Top-level steps numbered as the console numbers them: ``1.``, ``2.`` for the
    steps (the load phase included) and ``finally 1.`` for the clean-up steps."""
    counters = {"steps": 0, "finally": 0}
    numbered = []
    for step in run.steps:
        counters[step.phase] += 1
        prefix = "finally " if step.phase == "finally" else ""
        numbered.append((step, f"{prefix}{counters[step.phase]}."))
    return numbered


def _failures(runs: Sequence[RunResult]) -> list[tuple[str, str, str]]:
    """``(anchor, label, reason)`` of each failing step (innermost: a parent that fails
    only because a child did is not listed twice) and each run that could not start."""
    items: list[tuple[str, str, str]] = []
    for run_index, run in enumerate(runs, start=1):
        if run.environment_error:
            items.append((f"run{run_index}", f"{run.scenario}: environment",
                          run.environment_error))
        for step, number in _numbered(run):
            if step.status not in ("failed", "error"):
                continue
            if any(child.status in ("failed", "error") for child in step.children):
                continue
            items.append((_anchor(run_index, number),
                          f"{run.scenario} › {number} {step.name} ({STATUS_LABELS[step.status]})",
                          _why(step)))
    return items


def _why(step: StepResult) -> str:
    """Why a step failed, in plain words: each unmet expectation as expected vs seen
    (the expectation engine's own message quotes values as Python does)."""
    unmet = [e for e in step.expectations if not e.passed]
    if not unmet:
        return show(step.message, 300)
    return show("; ".join(f"{e.name}: expected {plain(e.expected)}, seen {plain(e.seen)}"
                          for e in unmet), 300)


def _run_section(run: RunResult, run_index: int, base: Path | None) -> str:
    verdict = "passed" if run.passed else ("error" if run.environment_error else "failed")
    where = " · ".join(x for x in (run.target_kind, run.target_address) if x)
    parts = [f'<h2 id="run{run_index}">{_badge(verdict)} {escape(run.scenario)}</h2>',
             f'<p class="muted">{escape(run.file or "")} · {escape(format_duration(run.duration))}'
             f" · {len(run.steps)} steps{' · target ' + escape(where) if where else ''}"
             f"{' · seed ' + str(run.seed) if run.seed is not None else ''}</p>"]
    if run.environment_error:
        parts.append(f"<p><strong>{escape(run.environment_error)}</strong></p>")
    parts.append(_timeline(run))
    for step, number in _top_numbers(run):
        parts.append(_step_section(step, number, run_index, base))
    parts.extend(f'<p class="muted">warning: {escape(w)}</p>' for w in run.warnings)
    return "".join(parts)


def _scenarios_table(runs: Sequence[RunResult]) -> str:
    """One row per scenario, failing ones first, each linked to its section."""
    order = sorted(enumerate(runs, start=1), key=lambda item: item[1].passed)
    rows = "".join(
        f'<tr><td>{_badge("passed" if run.passed else ("error" if run.environment_error else "failed"))}'
        f'</td><td><a href="#run{i}">{escape(run.scenario)}</a></td>'
        f"<td>{escape(', '.join(f'{n} {s}' for s, n in run.counts().items() if n) or 'no steps')}"
        f"</td><td>{escape(format_duration(run.duration))}</td></tr>" for i, run in order)
    return ("<table><tr><th>verdict</th><th>scenario</th><th>steps</th><th>duration</th></tr>"
            f"{rows}</table>")


def _all_artefacts(runs: Sequence[RunResult], base: Path | None) -> str:
    links = [_link(path, base) for run in runs for step in run.all_steps()
             for path in step.artefacts]
    if not links:
        return ""
    return ("<h2>Artefacts of this run</h2><ul>"
            + "".join(f"<li>{link}</li>" for link in links) + "</ul>")


def render_html(results: RunResult | Sequence[RunResult], title: str = "pacsim report", *,
                header: RunHeader | None = None, base: Path | None = None,
                interrupted: bool = False) -> str:
    """The whole report: verdict banner, header, failures index, scenarios, artefacts,
    then each scenario's timeline and steps. ``base`` is the folder the file is written
    to (artefact links are made relative to it)."""
    runs = as_list(results)
    if title == "pacsim report" and len(runs) == 1:
        title = f"pacsim report: {runs[0].scenario}"
    head = header or header_of(runs)
    verdict = "INTERRUPTED" if interrupted else verdict_of(runs)
    body = "".join(_run_section(run, i, base) for i, run in enumerate(runs, start=1))
    return (page_top(title, verdict, summary_line(runs), head, css=_CSS)
            + failures_index_html(_failures(runs))
            + _scenarios_table(runs) + _all_artefacts(runs, base)
            + f"{body}</body></html>\n")


def write_html(results: RunResult | Sequence[RunResult], path: str | Path,
               title: str = "pacsim report", *, header: RunHeader | None = None,
               interrupted: bool = False) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(results, title, header=header, base=target.parent,
                                  interrupted=interrupted), encoding="utf-8")
    return target


__all__ = ["render_html", "write_html"]
