"""Small helpers every report shares: labels, value formatting, result lists."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterable, Sequence

from simulators.scenario.fields import format_duration
from simulators.scenario.results import RunResult

#: How each status reads in a report; "unsupported" says why instead of failing.
STATUS_LABELS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
                 "unsupported": "N/A"}


def as_list(results: RunResult | Sequence[RunResult]) -> list[RunResult]:
    """Reports accept one run or several (``pacsim run a.yaml b.yaml``)."""
    return [results] if isinstance(results, RunResult) else list(results)


def show(value: Any, limit: int = 200) -> str:
    """A value as a report shows it: strings bare, everything else compact and bounded."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback: dates as ISO text, dataclasses as dicts, others as text."""
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def summary_line(results: Iterable[RunResult]) -> str:
    runs = list(results)
    passed = sum(1 for run in runs if run.passed)
    return f"{passed} of {len(runs)} scenario(s) passed"


__all__ = ["STATUS_LABELS", "as_list", "show", "jsonable", "summary_line", "format_duration"]
