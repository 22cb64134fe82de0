"""Small helpers every report shares: labels, value formatting, result lists."""

from __future__ import annotations

from typing import Iterable, Sequence

from simulators.common.fields import format_duration
from simulators.common.formatting import jsonable, show
from simulators.scenario.results import RunResult

#: How each status reads in a report; "unsupported" says why instead of failing.
STATUS_LABELS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
                 "unsupported": "N/A"}


def as_list(results: RunResult | Sequence[RunResult]) -> list[RunResult]:
    """Reports accept one run or several (``pacsim run a.yaml b.yaml``)."""
    return [results] if isinstance(results, RunResult) else list(results)


def summary_line(results: Iterable[RunResult]) -> str:
    runs = list(results)
    passed = sum(1 for run in runs if run.passed)
    return f"{passed} of {len(runs)} scenario(s) passed"


__all__ = ["STATUS_LABELS", "as_list", "show", "jsonable", "summary_line", "format_duration"]
