"""The conformance matrix in four forms: a console table, JSON, JUnit XML and HTML.

The scenario reports in :mod:`simulators.reports` render scenario runs; the matrix
is a flat table of (fault, sent, expected, answered, verdict), so it gets this small
renderer of its own and reuses only their XML/escaping helpers' ideas. One row per
fault; JUnit makes each fault a testcase (non-conformant = failure, error = error,
not supported = skipped) so CI dashboards list them.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from html import escape
from pathlib import Path
from typing import Sequence

from simulators.injection.model import (
    CONFORMANT, ERROR, IMPLEMENTATION_DEFINED, NON_CONFORMANT, NOT_SUPPORTED, VERDICTS, Outcome,
)

_COLUMNS = ("fault", "sent", "expected", "answered", "verdict")
_WIDTHS = (34, 40, 30, 34, 22)
_COLOURS = {CONFORMANT: "#2e7d32", NON_CONFORMANT: "#c62828", IMPLEMENTATION_DEFINED: "#1565c0",
            NOT_SUPPORTED: "#9e9e9e", ERROR: "#6a1b9a"}


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(outcomes: Sequence[Outcome]) -> str:
    counts = Counter(o.verdict for o in outcomes)
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]) or "no faults run"


def render_text(outcomes: Sequence[Outcome], target: str = "") -> str:
    """A fixed-width table, one fault per line, details of bad rows underneath."""
    lines = [f"Conformance matrix{f' for {target}' if target else ''}"]
    header = "  ".join(name.ljust(width) for name, width in zip(_COLUMNS, _WIDTHS))
    lines += [header.rstrip(), "-" * len(header.rstrip())]
    for o in outcomes:
        cells = (o.fault.id, o.sent, o.fault.expected.describe(), o.answered, o.verdict)
        lines.append("  ".join(_cut(c, w).ljust(w) for c, w in zip(cells, _WIDTHS)).rstrip())
    notes = [f"  {o.fault.id}: {o.detail}" for o in outcomes
             if o.detail and o.verdict in (NON_CONFORMANT, ERROR, IMPLEMENTATION_DEFINED,
                                           NOT_SUPPORTED)]
    if notes:
        lines += ["", "Details:", *notes]
    lines += ["", summary(outcomes)]
    return "\n".join(lines) + "\n"


def render_json(outcomes: Sequence[Outcome], target: str = "") -> str:
    counts = Counter(o.verdict for o in outcomes)
    return json.dumps({"target": target, "summary": {v: counts[v] for v in VERDICTS},
                       "results": [o.as_dict() for o in outcomes]}, indent=2) + "\n"


def render_junit(outcomes: Sequence[Outcome], target: str = "") -> str:
    suite = ET.Element("testsuite", name=f"pacsim faults {target}".strip(),
                       tests=str(len(outcomes)))
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname=o.fault.hook, name=o.fault.id,
                             time=f"{o.duration:.3f}")
        message = f"sent {o.sent}; expected {o.fault.expected.describe()}; answered {o.answered}"
        if o.verdict == NON_CONFORMANT:
            ET.SubElement(case, "failure", message=message, type="non-conformant").text = o.detail
        elif o.verdict == ERROR:
            ET.SubElement(case, "error", message=o.detail or "probe error")
        elif o.verdict == NOT_SUPPORTED:
            ET.SubElement(case, "skipped", message=o.detail or NOT_SUPPORTED)
        ET.SubElement(case, "system-out").text = f"{o.verdict}: {message} ({o.fault.section})"
    for tag, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attribute, str(sum(1 for c in suite if c.find(tag) is not None)))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def render_html(outcomes: Sequence[Outcome], target: str = "") -> str:
    """Self-contained HTML (inline CSS, no scripts); peer text is always escaped."""
    rows = []
    for o in outcomes:
        colour = _COLOURS.get(o.verdict, "#000")
        rows.append(
            "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in (
                o.fault.id, o.sent, o.fault.expected.describe(), o.answered))
            + f'<td style="color:{colour};font-weight:600">{escape(o.verdict)}</td>'
            + f"<td>{escape(o.detail)}</td><td>{escape(o.fault.section)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in (*(c.title() for c in _COLUMNS), "Detail",
                                             "Standard"))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>pacsim conformance "
            f"matrix</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-"
            "collapse:collapse}}td,th{border:1px solid #ddd;padding:.3em .5em;font-size:.9em;"
            "vertical-align:top}th{background:#f4f4f4}</style></head><body>"
            f"<h1>Conformance matrix {escape(target)}</h1><p>{escape(summary(outcomes))}</p>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table></body></html>\n")


def write(path: str | Path, text: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


__all__ = ["render_text", "render_json", "render_junit", "render_html", "summary", "write"]
