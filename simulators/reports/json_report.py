"""The JSON report: stable keys, one document per invocation, readable back into RunResult.

Tools (dashboards, the fault matrix, a diff between two runs) depend on these keys, so
they only ever grow: ``format``/``version`` at the top, then ``runs`` in the shape of
:meth:`RunResult.to_dict`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from simulators.reports.common import as_list, jsonable
from simulators.scenario.results import RunResult

FORMAT = "pacsim-report"
VERSION = 1


def report_dict(results: RunResult | Sequence[RunResult]) -> dict[str, Any]:
    runs = as_list(results)
    return {"format": FORMAT, "version": VERSION, "passed": all(run.passed for run in runs),
            "runs": [run.to_dict() for run in runs]}


def render_json(results: RunResult | Sequence[RunResult]) -> str:
    return json.dumps(report_dict(results), indent=2, sort_keys=True, default=jsonable,
                      ensure_ascii=False) + "\n"


def write_json(results: RunResult | Sequence[RunResult], path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_json(results), encoding="utf-8")
    return target


def read_json(source: str | Path | dict[str, Any]) -> list[RunResult]:
    """The runs of a JSON report (a path, or the already-parsed document)."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text("utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"not a pacsim report (format={data.get('format')!r})")
    return [RunResult.from_dict(run) for run in data["runs"]]


__all__ = ["FORMAT", "VERSION", "report_dict", "render_json", "write_json", "read_json"]
