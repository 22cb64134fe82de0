"""The conformance matrix in four forms: a console table, JSON, JUnit XML and HTML.

The scenario reports in :mod:`simulators.reports` render scenario runs; the matrix
is a flat table of (fault, sent, expected, answered, verdict), so it gets this small
renderer of its own and reuses only their XML/escaping helpers' ideas. One row per
fault; JUnit makes each fault a testcase (non-conformant = failure, error = error,
not supported = skipped) so CI dashboards list them.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from html import escape
from pathlib import Path
from typing import Sequence

from simulators.common.header import RunHeader, failures_index_html, page_top
from simulators.dicom.ae import describe_rejection
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


def verdict(outcomes: Sequence[Outcome]) -> tuple[str, str]:
    """The banner: NOT CONFORMANT on any non-conformant row, ERROR on a probe that could
    not judge, NO DATA when every row is N/A (nothing was exercised), else CONFORMANT."""
    counts = Counter(o.verdict for o in outcomes)
    why = summary(outcomes)
    if counts[NON_CONFORMANT]:
        return "NOT CONFORMANT", why
    if counts[ERROR]:
        return "ERROR", why
    if not outcomes or counts[NOT_SUPPORTED] == len(outcomes):
        return "NO DATA", why + " (the target offers none of the probed services)"
    return "CONFORMANT", why


def _header(target: str, header: RunHeader | None) -> RunHeader:
    return header or RunHeader(target_address=target)


def render_json(outcomes: Sequence[Outcome], target: str = "", *,
                header: RunHeader | None = None) -> str:
    counts = Counter(o.verdict for o in outcomes)
    return json.dumps({"target": target, "summary": {v: counts[v] for v in VERDICTS},
                       "verdict": verdict(outcomes)[0],
                       "header": _header(target, header).as_dict(),
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


#: Row order of the HTML matrix: what needs a reader's attention first, N/A last.
_ORDER = {NON_CONFORMANT: 0, ERROR: 1, IMPLEMENTATION_DEFINED: 2, CONFORMANT: 3, NOT_SUPPORTED: 4}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0 1em 0}
td,th{border:1px solid #ddd;padding:.3em .5em;font-size:.9em;vertical-align:top;text-align:left}
th{background:#f4f4f4} tr.bad td{background:#fdecea}
"""


_REJECT = re.compile(r"A-ASSOCIATE-RJ (\d+)/(\d+)/(\d+)")


def worded(text: str) -> str:
    """``A-ASSOCIATE-RJ 2/3/2`` with its PS3.8 9.3.4 words beside the numbers:
    ``A-ASSOCIATE-RJ 2/3/2 (transient, local limit exceeded)``."""
    return _REJECT.sub(lambda m: f"{m.group(0)} ({describe_rejection(*map(int, m.groups()))})",
                       text)


def _row(o: Outcome) -> str:
    colour = _COLOURS.get(o.verdict, "#000")
    bad = o.verdict in (NON_CONFORMANT, ERROR)
    return (f'<tr id="fault-{escape(o.fault.id)}"{" class=bad" if bad else ""}>'
            + "".join(f"<td>{escape(worded(v))}</td>" for v in (
                o.fault.id, o.sent, o.fault.expected.describe(), o.answered))
            + f'<td style="color:{colour};font-weight:600">{escape(o.verdict)}</td>'
            + f"<td>{escape(o.detail)}</td><td>{escape(o.fault.section)}</td></tr>")


def render_html(outcomes: Sequence[Outcome], target: str = "", *,
                header: RunHeader | None = None) -> str:
    """Self-contained HTML (inline CSS, no scripts); peer text is always escaped.

    Verdict banner and header first, then the failing rows indexed, then the matrix with
    the rows that need attention on top; rows the target does not support (N/A) are
    collapsed under their own summary so one non-conformant row never hides among them."""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in (*(c.title() for c in _COLUMNS),
                                                      "Detail", "Standard")) + "</tr>"
    ordered = sorted(outcomes, key=lambda o: _ORDER.get(o.verdict, 5))
    judged = [o for o in ordered if o.verdict != NOT_SUPPORTED]
    skipped = [o for o in ordered if o.verdict == NOT_SUPPORTED]
    index = failures_index_html(
        (f"fault-{o.fault.id}", f"{o.fault.id} ({o.verdict})",
         worded(f"expected {o.fault.expected.describe()}; answered {o.answered}"))
        for o in ordered if o.verdict in (NON_CONFORMANT, ERROR))
    table = (f"<h2>Judged ({len(judged)})</h2><table>{head}{''.join(map(_row, judged))}</table>"
             if judged else "<p>No fault was judged.</p>")
    if skipped:
        table += (f"<details><summary>{len(skipped)} not supported by target (N/A: the target "
                  f"does not offer the service, so nothing was judged)</summary>"
                  f"<table>{head}{''.join(map(_row, skipped))}</table></details>")
    word, why = verdict(outcomes)
    return (page_top(f"Conformance matrix {target}".strip(), word, why,
                     _header(target, header), css=_CSS)
            + f"{index}{table}</body></html>\n")


def write(path: str | Path, text: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


__all__ = ["render_text", "render_json", "render_junit", "render_html", "summary", "verdict",
           "write"]
