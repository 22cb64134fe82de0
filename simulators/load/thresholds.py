"""Thresholds: the profile's pass/fail limits, checked against the measured figures.

Kept apart from the scenario's expectation machinery so benchmarks and the load
report use the same verdicts without a runner; the load step turns each
:class:`ThresholdResult` into a scenario ``ExpectationResult`` (so ``pacsim run`` exits
1 when a threshold fails). An operation that never completed fails its thresholds:
"p95 below 2 s" with no sample is not a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.load.profile import Threshold
from simulators.common.fields import format_duration

_LATENCIES = ("p50", "p95", "p99", "max")


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """One limit on one operation: what was asked, what was measured."""

    name: str
    expected: str
    seen: str
    passed: bool
    message: str


def check_thresholds(thresholds: dict[str, Threshold],
                     operations: dict[str, dict[str, Any]]) -> list[ThresholdResult]:
    """Every limit of every threshold, in the order written."""
    results: list[ThresholdResult] = []
    for name, threshold in thresholds.items():
        figures = operations.get(name)
        count = figures["count"] if figures else 0
        for key in _LATENCIES:
            limit = getattr(threshold, key)
            if limit is None:
                continue
            label = f"{name} {key}"
            value = figures.get(f"{key}_ms") if figures else None
            if value is None:
                results.append(ThresholdResult(label, f"<= {format_duration(limit)}",
                                               "no samples", False, f"no {name} completed"))
                continue
            ok = value / 1000 <= limit
            seen = format_duration(value / 1000)
            results.append(ThresholdResult(
                label, f"<= {format_duration(limit)}", seen, ok,
                "as expected" if ok else f"{key} {seen} over the limit of "
                                         f"{format_duration(limit)} ({count} samples)"))
        if threshold.errors is not None:
            label = f"{name} errors"
            rate = figures["errors"] / count if count else None
            expected = f"<= {threshold.errors:.2%}"
            if rate is None:
                results.append(ThresholdResult(label, expected, "no samples", False,
                                               f"no {name} completed"))
            else:
                ok = rate <= threshold.errors
                seen = f"{rate:.2%} ({figures['errors']} of {count})"
                reasons = figures.get("errors_by_reason") or {}
                why = "; ".join(f"{reason}: {n}" for reason, n in list(reasons.items())[:3])
                results.append(ThresholdResult(label, expected, seen, ok, "as expected" if ok
                                               else f"error rate {seen}" + (f" - {why}" if why
                                                                            else "")))
        if threshold.min_count is not None:
            ok = count >= threshold.min_count
            results.append(ThresholdResult(f"{name} count", f">= {threshold.min_count}",
                                           str(count), ok, "as expected" if ok else
                                           f"only {count} completed"))
    return results


__all__ = ["ThresholdResult", "check_thresholds"]
