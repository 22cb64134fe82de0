"""``pacsim probe report``: this week against the week before, with regressions flagged.

Per probe and target, over each window: runs, p50/p95 of the successful runs'
latency (exact order statistics, :func:`simulators.load.stats.percentile`) and the
failure rate ((fail + timeout) / measured runs; "not measured" runs are left out).

The regression rule (the go-live playbook's "early warning"), per probe:

* **latency**: p95 now > p95 before x (1 + ``ratio``) *and* worse by more than
  ``floor`` seconds; both windows need at least ``min_samples`` successful runs.
  The floor keeps a 4 ms -> 6 ms C-ECHO (+50%, nobody notices) from paging anyone.
* **failures**: failure rate now > rate before + ``rate_step`` *and* at least
  ``min_failures`` failed runs now (one flaky run is not a trend).

Defaults: ratio 0.20, floor 0.05 s, rate_step 0.01 (1 percentage point),
min_failures 2, min_samples 5.

No regression is ever claimed against a baseline window with zero measured runs: an
empty window is an absence of evidence, not a 0 % failure rate (the row reads "no
baseline"). A probe with zero measured runs now reads "not measured", never "ok".
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from simulators.errors import ConfigError
from simulators.kpi.result import FAIL, OK, SKIPPED, TIMEOUT, ProbeResult
from simulators.kpi.store import ResultStore
from simulators.load.stats import percentile
from simulators.common.fields import parse_duration

_DAY = 86_400.0
NOT_MEASURED = "not measured"
NO_BASELINE = "no baseline"


def parse_window(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``2w`` -> seconds (days and weeks added to scenario units)."""
    value = text.strip().lower()
    try:
        if value.endswith("w"):
            seconds = float(value[:-1]) * 7 * _DAY
        elif value.endswith("d"):
            seconds = float(value[:-1]) * _DAY
        else:
            seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError("a window is written like 7d, 12h, 30m or 2w", value=text) from exc
    if seconds <= 0:
        raise ConfigError("a window must be longer than zero", value=text)
    return seconds


@dataclass(frozen=True)
class RegressionRule:
    ratio: float = 0.20
    floor: float = 0.05
    rate_step: float = 0.01
    min_failures: int = 2
    min_samples: int = 5

    def describe(self) -> str:
        return (f"p95 worse by >{self.ratio:.0%} and by >{self.floor * 1000:.0f} ms "
                f"(>= {self.min_samples} ok runs in both windows), or failure rate up by "
                f">{self.rate_step * 100:g} points with >= {self.min_failures} failures")


@dataclass(frozen=True)
class WindowStats:
    runs: int
    failures: int
    p50: float | None
    p95: float | None

    @property
    def failure_rate(self) -> float:
        return self.failures / self.runs if self.runs else 0.0

    @classmethod
    def of(cls, results: Iterable[ProbeResult]) -> "WindowStats":
        measured = [r for r in results if r.outcome != SKIPPED]
        ok = sorted(r.seconds for r in measured if r.outcome == OK)
        failures = sum(1 for r in measured if r.outcome in (FAIL, TIMEOUT))
        return cls(len(measured), failures, percentile(ok, 50) if ok else None,
                   percentile(ok, 95) if ok else None)


@dataclass
class ProbeComparison:
    probe: str
    target: str
    current: WindowStats
    baseline: WindowStats
    flags: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool(self.flags)

    @property
    def verdict(self) -> str:
        """What the row says: only measured runs earn "ok" or a regression."""
        if self.current.runs == 0:
            return NOT_MEASURED
        if self.flags:
            return "REGRESSION: " + "; ".join(self.flags)
        return NO_BASELINE if self.baseline.runs == 0 else "ok"


def judge(current: WindowStats, baseline: WindowStats, rule: RegressionRule) -> list[str]:
    """Why this probe regressed (empty: it did not), by the module's rule.

    Either window without a measured run gives no flag: there is nothing to compare.
    """
    if current.runs == 0 or baseline.runs == 0:
        return []
    flags = []
    ok_now = current.runs - current.failures
    ok_before = baseline.runs - baseline.failures
    if (current.p95 is not None and baseline.p95 is not None
            and ok_now >= rule.min_samples and ok_before >= rule.min_samples
            and current.p95 > baseline.p95 * (1 + rule.ratio)
            and current.p95 - baseline.p95 > rule.floor):
        flags.append(f"p95 {baseline.p95 * 1000:.0f} -> {current.p95 * 1000:.0f} ms")
    if (current.failures >= rule.min_failures
            and current.failure_rate > baseline.failure_rate + rule.rate_step):
        flags.append(f"failures {baseline.failure_rate:.1%} -> {current.failure_rate:.1%}")
    return flags


def compare(store: ResultStore, *, since: float, baseline: float, now: float | None = None,
            rule: RegressionRule | None = None, target: str | None = None,
            probes: Iterable[str] = ()) -> list[ProbeComparison]:
    """Compare [now - since, now) with the ``baseline`` seconds before it.

    ``probes``: every probe the report must show; one absent from both windows gets a
    "not measured" row (per target seen, or ``target``) instead of silently vanishing.
    """
    rule = rule or RegressionRule()
    end = time.time() if now is None else now
    start = end - since
    current = _grouped(store.between(start, end, target))
    before = _grouped(store.between(start - baseline, start, target))
    keys = set(current) | set(before)
    targets = {target} if target is not None else {t for _, t in keys} or {"-"}
    keys |= {(probe, t) for probe in probes for t in targets}
    rows = []
    for key in sorted(keys):
        now_stats = WindowStats.of(current.get(key, []))
        before_stats = WindowStats.of(before.get(key, []))
        rows.append(ProbeComparison(key[0], key[1], now_stats, before_stats,
                                    judge(now_stats, before_stats, rule)))
    return rows


def _grouped(results: Iterable[ProbeResult]) -> dict[tuple[str, str], list[ProbeResult]]:
    groups: dict[tuple[str, str], list[ProbeResult]] = {}
    for result in results:
        groups.setdefault((result.probe, result.target), []).append(result)
    return groups


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _rate(stats: WindowStats) -> str:
    """A failure rate, or "-" for a window without measured runs (not 0.0 %)."""
    return f"{stats.failure_rate * 100:.1f}%" if stats.runs else "-"


def format_table(rows: list[ProbeComparison], rule: RegressionRule) -> str:
    header = (f"{'probe':<20} {'target':<24} {'runs':>6} {'p50 ms':>9} {'p95 ms':>9} "
              f"{'fail %':>7} | {'base p95':>9} {'base fail':>9}  verdict")
    lines = [header, "-" * len(header)]
    for row in rows:
        c, b = row.current, row.baseline
        lines.append(f"{row.probe:<20} {row.target[:24]:<24} {c.runs:>6} {_ms(c.p50):>9} "
                     f"{_ms(c.p95):>9} {_rate(c):>7} | {_ms(b.p95):>9} "
                     f"{_rate(b):>9}  {row.verdict}")
    if not rows:
        lines.append("(no probe results in either window)")
    lines.append(f"rule: {rule.describe()}")
    return "\n".join(lines)


def as_json(rows: list[ProbeComparison], rule: RegressionRule, *,
            golive: dict[str, Any] | None = None, header: dict[str, Any] | None = None,
            **window: Any) -> str:
    """The comparison as JSON; ``golive`` (the review figures) and ``header`` (the
    report header every pacsim report carries) are added under their own keys."""
    def stats(s: WindowStats) -> dict[str, Any]:
        return {**asdict(s), "failure_rate": round(s.failure_rate, 6)}
    extra = {} if golive is None else {"golive": golive}
    if header is not None:
        extra["header"] = header
    return json.dumps({
        "window": window, "rule": {**asdict(rule), "text": rule.describe()},
        "regressions": sum(1 for r in rows if r.regressed),
        "probes": [{"probe": r.probe, "target": r.target, "current": stats(r.current),
                    "baseline": stats(r.baseline), "regressed": r.regressed, "flags": r.flags,
                    "verdict": r.verdict}
                   for r in rows], **extra}, indent=2)


__all__ = ["NOT_MEASURED", "NO_BASELINE", "compare", "judge", "RegressionRule", "WindowStats",
           "ProbeComparison",
           "format_table", "as_json", "parse_window"]
