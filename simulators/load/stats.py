"""Load statistics, computed only from exchange events.

Why only events: the numbers must describe what crossed the wire, whoever produced
it (the in-process engine, a worker process, a built-in actor), and the statistics
must not know any protocol. A load run's bus carries two families of events:

* wire exchanges (``dicom.associate``, ``dicom.c-find``, ``dicom.c-store``,
  ``hl7.send``...), one per request/response, emitted by the clients;
* operations (``load.mwl.query``, ``load.modality.perform``...), one per thing a
  virtual modality did, spanning its associations: what a technologist waits for.

Both are kept per name (``load.`` dropped), overall, per second since the start and
per stage. Latencies are kept exactly (no histogram buckets), so p50/p95/p99 are the
true order statistics (linear interpolation between ranks); memory is bounded by the
profile's ``max_operations``. Concurrency over time is derived from the operation
events themselves: the time each operation spent inside a one-second bucket, summed,
is the mean number of operations in flight during that second.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from simulators.events import Exchange
from simulators.load.console import format_live
from simulators.load.shape import StageWindow

OPERATION_PREFIX = "load."
ERROR_OUTCOMES = frozenset({"failed", "error"})
#: Longest reason text kept; peers' error texts can be long and vary per request.
_REASON_LIMIT = 80


def percentile(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile of already sorted values (linear interpolation, as numpy)."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def error_reason(event: Exchange) -> str:
    """Why an exchange failed, in words that group: a status code, a reject reason...

    A rejection is read from ``detail["rejection"]``, which whoever saw the
    AssociationRejected records (the association's own event, a load operation's),
    never parsed out of the error text.
    """
    status = event.status or ""
    text = str(event.detail.get("error", "") or "")
    rejection = event.detail.get("rejection")
    if rejection:
        return "rejected: " + str(rejection)[:_REASON_LIMIT]
    if status and status not in ("accepted", "rejected"):
        return status[:_REASON_LIMIT]
    if text:
        return text.split(" (", 1)[0][:_REASON_LIMIT]
    return event.outcome


@dataclass
class Series:
    """Completed exchanges of one name in one scope (whole run, one second, one stage)."""

    latencies: list[float] | deque[float] = field(default_factory=list)
    errors: int = 0
    #: Exchanges added (equals ``len(latencies)`` unless only a recent window is kept).
    total: int = 0
    bytes: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, event: Exchange, detailed: bool) -> None:
        self.latencies.append(event.duration)
        self.total += 1
        self.bytes += event.bytes
        failed = event.outcome in ERROR_OUTCOMES
        if failed:
            self.errors += 1
        if detailed:
            if event.status:
                self.statuses[event.status] += 1
            if failed:
                self.reasons[error_reason(event)] += 1

    @property
    def count(self) -> int:
        return self.total

    def summary(self, seconds: float | None = None) -> dict[str, Any]:
        """The JSON figures: ``count``, ``errors``, ``p50_ms``... (keys are a contract)."""
        ordered = sorted(self.latencies)

        def ms(value: float) -> float | None:
            return None if math.isnan(value) else round(value * 1000, 3)

        figures: dict[str, Any] = {
            "count": self.count, "errors": self.errors,
            "error_rate": round(self.errors / self.count, 6) if self.count else 0.0,
            "p50_ms": ms(percentile(ordered, 50)), "p95_ms": ms(percentile(ordered, 95)),
            "p99_ms": ms(percentile(ordered, 99)),
            "max_ms": ms(ordered[-1]) if ordered else None,
            "mean_ms": ms(sum(ordered) / len(ordered)) if ordered else None,
            "bytes": self.bytes,
        }
        if seconds:
            figures["throughput_per_s"] = round(self.count / seconds, 3)
        if self.statuses:
            figures["statuses"] = dict(self.statuses.most_common())
        if self.reasons:
            figures["errors_by_reason"] = dict(self.reasons.most_common())
        return figures


class LoadStatistics:
    """Subscribe :meth:`record` to a bus; read :meth:`summary` and the series afterwards."""

    def __init__(self, *, started: float | None = None,
                 stages: Iterable[StageWindow] = (), keep_latest: int | None = None,
                 timeline: bool = True) -> None:
        """``keep_latest`` bounds the latencies kept per name (percentiles then describe
        the most recent ones) and ``timeline=False`` drops the per-second series: the
        sandbox runs for a whole day and its memory must not grow with it."""
        self.keep_latest = keep_latest
        self.timeline_kept = timeline
        self.started = time.time() if started is None else started
        self.stages = list(stages)
        self.overall: dict[str, Series] = {}
        self.per_second: dict[int, dict[str, Series]] = {}
        self.per_stage: dict[str, dict[str, Series]] = {w.name: {} for w in self.stages}
        self.in_flight: dict[int, float] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- recording
    def record(self, event: Exchange) -> None:
        """Add one event (the bus subscriber; also fed replayed worker events).

        Operations cancelled because the run ended are not the target's doing: skipped.
        """
        if event.outcome == "cancelled":
            return
        name = event.kind[len(OPERATION_PREFIX):] if event.kind.startswith(OPERATION_PREFIX) \
            else event.kind
        offset = event.start - self.started
        second = max(0, int(offset))
        window = next((w for w in self.stages if w.start <= offset < w.end), None)
        with self._lock:
            self.overall.setdefault(name, self._series()).add(event, detailed=True)
            if not self.timeline_kept:
                return
            self.per_second.setdefault(second, {}).setdefault(name, Series()).add(event, False)
            if window is not None:
                self.per_stage[window.name].setdefault(name, Series()).add(event, False)
            if event.kind.startswith(OPERATION_PREFIX):
                self._spread(offset, event.duration)

    def _series(self) -> Series:
        if self.keep_latest is None:
            return Series()
        return Series(latencies=deque(maxlen=self.keep_latest))

    def _spread(self, offset: float, duration: float) -> None:
        """Add the operation's time inside each one-second bucket it overlaps."""
        begin, end = max(0.0, offset), max(0.0, offset + duration)
        second = int(begin)
        for _ in range(100_000):  # bounded: an operation cannot span more than a day
            if second >= end:
                break
            inside = min(end, second + 1) - max(begin, second)
            if inside > 0:
                self.in_flight[second] = self.in_flight.get(second, 0.0) + inside
            second += 1

    # ---------------------------------------------------------------- reading
    def names(self) -> list[str]:
        """Operation names first (what users think in), then wire exchange kinds."""
        with self._lock:
            names = list(self.overall)
        return sorted(names, key=lambda n: (n.startswith(("dicom.", "hl7.")), n))

    def series(self, name: str) -> Series:
        with self._lock:
            return self.overall.get(name, Series())

    def operations(self, seconds: float | None = None) -> dict[str, dict[str, Any]]:
        return {name: self.series(name).summary(seconds) for name in self.names()}

    def stage_summaries(self) -> list[dict[str, Any]]:
        out = []
        for window in self.stages:
            with self._lock:
                scoped = dict(self.per_stage.get(window.name, {}))
            length = window.end - window.start
            out.append({"name": window.name, "start_s": window.start, "end_s": window.end,
                        "target": window.target,
                        "operations": {name: scoped[name].summary(length)
                                       for name in sorted(scoped)}})
        return out

    def timeline(self, seconds: int) -> dict[str, Any]:
        """Per-second series: counts, errors, p50/p95 per name, and concurrency."""
        with self._lock:
            last = max([seconds - 1, *self.per_second.keys(), *self.in_flight.keys(), 0])
            span = list(range(last + 1))
            names = list(self.overall)
            per_name: dict[str, dict[str, list[Any]]] = {}
            for name in names:
                rows: dict[str, list[Any]] = {"count": [], "errors": [], "p50_ms": [],
                                              "p95_ms": []}
                for second in span:
                    bucket = self.per_second.get(second, {}).get(name)
                    ordered = sorted(bucket.latencies) if bucket else []
                    rows["count"].append(len(ordered))
                    rows["errors"].append(bucket.errors if bucket else 0)
                    rows["p50_ms"].append(round(percentile(ordered, 50) * 1000, 3)
                                          if ordered else None)
                    rows["p95_ms"].append(round(percentile(ordered, 95) * 1000, 3)
                                          if ordered else None)
                per_name[name] = rows
            concurrency = [round(self.in_flight.get(second, 0.0), 3) for second in span]
        return {"seconds": span, "concurrency": concurrency, "operations": per_name}

    def totals(self, operations_only: bool = True) -> dict[str, tuple[int, int]]:
        """(count, errors) per name so far (operations only, by default)."""
        with self._lock:
            return {n: (s.count, s.errors) for n, s in self.overall.items()
                    if not (operations_only and n.startswith(("dicom.", "hl7.")))}

    def live_line(self, elapsed: float, active: int) -> str:
        """One console line: active modalities, counts, errors, p95 of the last second."""
        with self._lock:
            bucket = dict(self.per_second.get(int(elapsed) - 1, {}))
        recent = {n: percentile(sorted(s.latencies), 95) * 1000 for n, s in bucket.items()
                  if s.latencies}
        return format_live(elapsed, active, self.totals(), recent)


__all__ = ["LoadStatistics", "Series", "percentile", "error_reason", "OPERATION_PREFIX"]
