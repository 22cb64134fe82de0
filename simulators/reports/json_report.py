"""The JSON report: stable keys, one document per invocation, readable back into RunResult.

Tools (dashboards, the fault matrix, a diff between two runs) depend on these keys, so
they only ever grow: ``format``/``version`` at the top, then ``runs`` in the shape of
:meth:`RunResult.to_dict`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from simulators.common.header import RunHeader
from simulators.reports.common import as_list, header_of, jsonable, verdict_of
from simulators.scenario.results import RunResult

FORMAT = "pacsim-report"
VERSION = 1


def report_dict(results: RunResult | Sequence[RunResult], *, header: RunHeader | None = None,
                interrupted: bool = False) -> dict[str, Any]:
    """The document: ``header`` (the same fields as the HTML header block) and
    ``verdict`` (the banner word) beside the original keys."""
    runs = as_list(results)
    return {"format": FORMAT, "version": VERSION, "passed": all(run.passed for run in runs),
            "verdict": "INTERRUPTED" if interrupted else verdict_of(runs),
            "header": (header or header_of(runs)).as_dict(),
            "runs": [run.to_dict() for run in runs]}


def render_json(results: RunResult | Sequence[RunResult], *, header: RunHeader | None = None,
                interrupted: bool = False) -> str:
    return json.dumps(report_dict(results, header=header, interrupted=interrupted), indent=2,
                      sort_keys=True, default=jsonable, ensure_ascii=False) + "\n"


def write_json(results: RunResult | Sequence[RunResult], path: str | Path, *,
               header: RunHeader | None = None, interrupted: bool = False) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_json(results, header=header, interrupted=interrupted),
                      encoding="utf-8")
    return target


def read_json(source: str | Path | dict[str, Any]) -> list[RunResult]:
    """The runs of a JSON report (a path, or the already-parsed document)."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text("utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"not a pacsim report (format={data.get('format')!r})")
    return [RunResult.from_dict(run) for run in data["runs"]]


__all__ = ["FORMAT", "VERSION", "report_dict", "render_json", "write_json", "read_json"]
