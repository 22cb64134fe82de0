"""Small helpers every report shares: labels, value formatting, result lists."""

from __future__ import annotations

from typing import Iterable, Sequence

from simulators.common.fields import format_duration
from simulators.common.formatting import jsonable, plain, show
from simulators.common.header import RunHeader, iso_time
from simulators.scenario.results import RunResult

#: How each status reads in a report; "unsupported" says why instead of failing.
STATUS_LABELS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
                 "unsupported": "N/A"}


def as_list(results: RunResult | Sequence[RunResult]) -> list[RunResult]:
    """Reports accept one run or several (``pacsim run a.yaml b.yaml``)."""
    return [results] if isinstance(results, RunResult) else list(results)


def summary_line(results: Iterable[RunResult], elapsed: float | None = None) -> str:
    """The one line a run ends with, like pytest's: ``19 scenarios: 18 passed, 1 failed,
    0 errors in 41s`` (errors: the environment could not start). ``elapsed`` is the wall
    time of the invocation; without it the runs' durations are added up."""
    runs = list(results)
    errors = sum(1 for run in runs if run.environment_error is not None)
    passed = sum(1 for run in runs if run.passed)
    failed = len(runs) - passed - errors
    took = elapsed if elapsed is not None else sum(run.duration for run in runs)
    noun = "scenario" if len(runs) == 1 else "scenarios"
    return (f"{len(runs)} {noun}: {passed} passed, {failed} failed, {errors} "
            f"{'error' if errors == 1 else 'errors'} in {_took(took)}")


def _took(seconds: float) -> str:
    """``7.4s``, ``41s``, ``2m05s``: as precise as a person reading a run's length needs."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def verdict_of(runs: Sequence[RunResult]) -> str:
    """The banner word of a set of runs: ERROR when an environment did not start."""
    if any(run.environment_error is not None for run in runs):
        return "ERROR"
    return "PASS" if all(run.passed for run in runs) else "FAIL"


def header_of(runs: Sequence[RunResult], command_line: str | None = None) -> RunHeader:
    """The report header of one invocation: its runs' target(s), seed(s) and times.

    Several scenarios of one ``pacsim run`` usually share a target; when they do not,
    each distinct target is listed (the per-run values stay in the JSON ``runs``)."""
    kinds = _distinct(run.target_kind for run in runs)
    addresses = _distinct(run.target_address for run in runs)
    seeds = _distinct(str(run.seed) for run in runs if run.seed is not None)
    capabilities = next((run.capabilities for run in runs if run.capabilities), None)
    started = min((run.started for run in runs if run.started), default=0.0)
    ended = max((run.started + run.duration for run in runs if run.started), default=0.0)
    values: dict[str, object] = {
        "target_kind": ", ".join(kinds), "target_address": ", ".join(addresses),
        "capabilities": capabilities,
        "seed": int(seeds[0]) if len(seeds) == 1 else (", ".join(seeds) or None),
        "started": iso_time(started), "ended": iso_time(ended)}
    if command_line is not None:
        values["command_line"] = command_line
    return RunHeader(**values)  # type: ignore[arg-type]


def _distinct(values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen


__all__ = ["STATUS_LABELS", "as_list", "show", "plain", "jsonable", "summary_line",
           "format_duration", "verdict_of", "header_of"]
