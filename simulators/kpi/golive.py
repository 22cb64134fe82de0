"""The go-live review figures: availability, outages and the playbook's weekly benchmarks.

Read from the probe store over one window ``[start, end)`` (epoch seconds, UTC);
nothing here reads the wall clock, so a test can place every run where it wants.

**A run** is one stored probe result. ``ok`` passes; ``fail`` and ``timeout`` fail
(a slow answer is a failure, as the probes count it); ``skipped`` means "not
measured" (no peer for that probe) and is left out entirely: it neither passes nor
fails, so a site without a reporting peer does not lose availability for it.

**Availability** of a probe = passed runs / (passed + failed runs) in the window. The
overall figure pools every probe's runs (a share of runs, not an average of shares).
A probe with no measured run has no availability: it reads "not measured".

**Outage** = a maximal contiguous time span in which at least one probe was failing.
A probe is failing from the start of a failed run until the start of its next passed
run (the moment it was seen healthy again); when no passed run follows inside the
window it is failing until the end of its last failed run and the outage is
``ongoing``. Overlapping or touching spans of different probes merge into one outage
that lists every probe failing in it, with its failed-run count. One failed run makes
an outage: the list is the record of what happened, not an alarm; the regression rule
in :mod:`simulators.kpi.report` is what decides whether a trend is worth a page.

**Weekly benchmarks**, per ISO week (Monday 00:00 UTC), the four the go-live playbook
asks to track weekly ("image load time, worklist query speed, system uptime, and
report turnaround time"). The playbook names them but defines no statistic and no
target, so pacsim reports, for the three times, the **median (p50) and p95 of the
successful runs' latency** (exact order statistics, as the weekly comparison), and for
uptime the **availability of C-ECHO** (does the PACS answer at all). Image load pools
C-MOVE, C-GET and WADO-RS until the last byte (per-method figures are in the
per-probe table); worklist query speed is the MWL C-FIND round trip; report
turnaround is order sent to ORU^R01 received. Week-over-week change compares a week
with the one before; a week without a measured run reads "not measured", and the
week after it says "no baseline" instead of a change (no regression is claimed against
nothing). A week cut by the window's edge is marked partial.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable

from simulators.kpi.report import NO_BASELINE, NOT_MEASURED, RegressionRule, WindowStats, judge
from simulators.kpi.result import OK, SKIPPED, TIMEOUT, ProbeResult
from simulators.kpi.store import ResultStore
from simulators.load.stats import percentile

_DAY = 86_400.0
_WEEK = 7 * _DAY
LATENCY, AVAILABILITY = "latency", "availability"


@dataclass(frozen=True)
class Benchmark:
    """One playbook benchmark: which probes feed it and what is computed from them."""

    key: str
    title: str
    probes: tuple[str, ...]
    kind: str
    statistic: str


#: The playbook's four weekly benchmarks, in its order.
BENCHMARKS = (
    Benchmark("image_load", "image load time", ("load_cmove", "load_cget", "load_wado"),
              LATENCY, "median and p95 of successful loads, to the last byte"),
    Benchmark("worklist_query", "worklist query speed", ("worklist_query",),
              LATENCY, "median and p95 of successful MWL C-FIND round trips"),
    Benchmark("uptime", "system uptime", ("echo",),
              AVAILABILITY, "share of C-ECHO runs that passed"),
    Benchmark("report_turnaround", "report turnaround", ("order_to_report",),
              LATENCY, "median and p95, order sent to ORU^R01 received"),
)


def _measured(results: Iterable[ProbeResult]) -> list[ProbeResult]:
    return [r for r in results if r.outcome != SKIPPED]


@dataclass(frozen=True)
class Availability:
    probe: str
    target: str
    runs: int
    passed: int
    timeouts: int = 0

    @property
    def percent(self) -> float | None:
        """None, not 0 or 100, when nothing was measured."""
        return 100.0 * self.passed / self.runs if self.runs else None

    @classmethod
    def of(cls, probe: str, target: str, results: Iterable[ProbeResult]) -> "Availability":
        measured = _measured(results)
        return cls(probe, target, len(measured), sum(1 for r in measured if r.outcome == OK),
                   sum(1 for r in measured if r.outcome == TIMEOUT))


@dataclass(frozen=True)
class Outage:
    start: float
    end: float
    ongoing: bool
    #: (probe, target) -> failed runs inside this outage.
    failing: dict[tuple[str, str], int]

    @property
    def probes(self) -> list[str]:
        return sorted({probe for probe, _ in self.failing})

    @property
    def targets(self) -> list[str]:
        return sorted({target for _, target in self.failing})


def outages(results: Iterable[ProbeResult]) -> list[Outage]:
    """Failing spans per probe and target, merged across probes (see the module doc)."""
    spans: list[Outage] = []
    for key, runs in sorted(_grouped(_measured(results)).items()):
        first: ProbeResult | None = None
        last: ProbeResult | None = None
        count = 0
        for run in runs:
            if run.outcome == OK:
                if first is not None:
                    spans.append(Outage(first.started, run.started, False, {key: count}))
                first, count = None, 0
            else:
                first = first or run
                last, count = run, count + 1
        if first is not None and last is not None:
            spans.append(Outage(first.started, last.started + max(last.seconds, 0.0), True,
                                {key: count}))
    merged: list[Outage] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and span.start <= merged[-1].end:
            prev = merged[-1]
            failing = dict(prev.failing)
            for key, count in span.failing.items():
                failing[key] = failing.get(key, 0) + count
            end = max(prev.end, span.end)
            # A probe that never recovered keeps the whole outage open.
            ongoing = prev.ongoing or span.ongoing
            merged[-1] = Outage(prev.start, end, ongoing, failing)
        else:
            merged.append(span)
    return merged


@dataclass(frozen=True)
class Day:
    """One day of one benchmark, for the weekly chart."""

    start: float
    in_window: bool
    runs: int
    p50: float | None
    p95: float | None
    availability: float | None


@dataclass
class BenchmarkWeek:
    benchmark: Benchmark
    stats: WindowStats
    passed: int
    days: list[Day]
    #: this week minus the week before: p50/p95 seconds or availability points.
    change: dict[str, float] | None = None
    change_note: str = ""
    flags: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.stats.runs > 0

    @property
    def availability(self) -> float | None:
        return 100.0 * self.passed / self.stats.runs if self.stats.runs else None


@dataclass
class Week:
    label: str
    start: float
    end: float
    partial: bool
    benchmarks: dict[str, BenchmarkWeek]


@dataclass
class GoLiveReport:
    start: float
    end: float
    availability: list[Availability]
    overall: Availability
    outages: list[Outage]
    weeks: list[Week]


def _grouped(results: Iterable[ProbeResult]) -> dict[tuple[str, str], list[ProbeResult]]:
    groups: dict[tuple[str, str], list[ProbeResult]] = {}
    for result in results:
        groups.setdefault((result.probe, result.target), []).append(result)
    for runs in groups.values():
        runs.sort(key=lambda r: r.started)
    return groups


def _stats(results: list[ProbeResult], bench: Benchmark) -> tuple[WindowStats, int]:
    stats = WindowStats.of(results)
    passed = sum(1 for r in results if r.outcome == OK)
    if bench.kind == AVAILABILITY:
        # Uptime is judged on failures only: C-ECHO latency is not the benchmark.
        stats = WindowStats(stats.runs, stats.failures, None, None)
    return stats, passed


def iso_week_start(ts: float) -> float:
    """Epoch seconds of the Monday 00:00 UTC that starts ``ts``'s ISO week."""
    day = dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).date()
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.timezone.utc).timestamp()


def iso_week_label(ts: float) -> str:
    year, week, _ = dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


def _change(now: BenchmarkWeek, before: BenchmarkWeek | None, rule: RegressionRule) -> None:
    if not now.measured:
        now.change_note = NOT_MEASURED
        return
    if before is None or not before.measured:
        now.change_note = NO_BASELINE
        return
    now.flags = judge(now.stats, before.stats, rule)
    if now.benchmark.kind == AVAILABILITY:
        now.change = {"availability_points": (now.availability or 0.0)
                      - (before.availability or 0.0)}
        return
    change = {}
    for name in ("p50", "p95"):
        a, b = getattr(now.stats, name), getattr(before.stats, name)
        if a is not None and b is not None:
            change[f"{name}_seconds"] = a - b
            if b > 0:
                change[f"{name}_ratio"] = a / b - 1.0
    if change:
        now.change = change
    else:
        now.change_note = "no successful runs to compare"


def _week(label: str, start: float, end: float, lo: float, hi: float,
          results: list[ProbeResult]) -> Week:
    benchmarks = {}
    for bench in BENCHMARKS:
        mine = [r for r in results if r.probe in bench.probes]
        stats, passed = _stats(mine, bench)
        days = []
        for index in range(7):
            d0, d1 = start + index * _DAY, start + (index + 1) * _DAY
            inside = d1 > lo and d0 < hi
            day_runs = _measured(r for r in mine if d0 <= r.started < d1)
            ok = sorted(r.seconds for r in day_runs if r.outcome == OK)
            days.append(Day(d0, inside, len(day_runs),
                            percentile(ok, 50) if ok and bench.kind == LATENCY else None,
                            percentile(ok, 95) if ok and bench.kind == LATENCY else None,
                            100.0 * len(ok) / len(day_runs) if day_runs else None))
        benchmarks[bench.key] = BenchmarkWeek(bench, stats, passed, days)
    return Week(label, max(start, lo), min(end, hi), start < lo or end > hi, benchmarks)


def build(store: ResultStore, *, start: float, end: float, probes: Iterable[str] = (),
          target: str | None = None, rule: RegressionRule | None = None) -> GoLiveReport:
    """Everything the review meeting sees, over ``[start, end)``.

    ``probes``: every probe the report must list; one with no run reads "not measured".
    """
    rule = rule or RegressionRule()
    results = list(store.between(start, end, target))
    groups = _grouped(results)
    targets = {target} if target is not None else {t for _, t in groups} or {"-"}
    keys = set(groups) | {(p, t) for p in probes for t in targets}
    availability = [Availability.of(p, t, groups.get((p, t), [])) for p, t in sorted(keys)]
    overall = Availability("all", ",".join(sorted(targets)),
                           sum(a.runs for a in availability),
                           sum(a.passed for a in availability),
                           sum(a.timeouts for a in availability))
    weeks: list[Week] = []
    week_start = iso_week_start(start)
    while week_start < end:
        week_end = week_start + _WEEK
        in_week = [r for r in results if week_start <= r.started < week_end]
        weeks.append(_week(iso_week_label(week_start), week_start, week_end, start, end,
                           in_week))
        week_start = week_end
    for index, week in enumerate(weeks):
        for key, bench_week in week.benchmarks.items():
            before = weeks[index - 1].benchmarks[key] if index else None
            _change(bench_week, before, rule)
    return GoLiveReport(start, end, availability, overall, outages(results), weeks)


__all__ = ["BENCHMARKS", "Benchmark", "Availability", "Outage", "Day", "Week", "BenchmarkWeek",
           "GoLiveReport", "build", "outages", "iso_week_start", "iso_week_label", "LATENCY",
           "AVAILABILITY"]
