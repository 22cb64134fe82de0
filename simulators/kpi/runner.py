"""One probe cycle, and the loop that repeats it every N seconds.

A cycle walks the canary through the department in the order a real study does:
the target answers (echo), the worklist answers, an order reaches the worklist, an
image becomes queryable, the image loads by C-MOVE, C-GET and WADO-RS, a report
comes back; then the canary's leftovers are cleaned up. Every probe yields exactly
one :class:`~simulators.kpi.result.ProbeResult` per cycle (ok, fail, timeout or
skipped = not measured), which goes to the store and the metrics.

Probes run one after another, never in parallel: a probe must not compete with
itself for the target, and the overhead on a production target stays one
transaction at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.kpi import cleanup, probes_dicom, probes_hl7, probes_retrieve
from simulators.kpi.canary import CanaryCycle, new_cycle
from simulators.kpi.metrics import ProbeMetrics
from simulators.kpi.probes_hl7 import ReportListener
from simulators.kpi.probes_retrieve import ImageReceiver
from simulators.kpi.result import ProbeResult, measure
from simulators.kpi.store import ResultStore
from simulators.kpi.target import ProbeTarget

log = logging.getLogger(__name__)

#: Every probe, in cycle order; the only values of the ``probe`` metric label.
PROBES = ("echo", "worklist_query", "order_to_worklist", "store_to_queryable", "load_cmove",
          "load_cget", "load_wado", "order_to_report")


def parse_probes(text: str | None) -> tuple[str, ...]:
    """``"echo,load_cget"`` -> a validated tuple in cycle order (None/"all": every probe)."""
    if not text or text == "all":
        return PROBES
    wanted = {name.strip() for name in text.split(",") if name.strip()}
    unknown = wanted - set(PROBES)
    if unknown:
        raise ConfigError("unknown probe", probes=",".join(sorted(unknown)),
                          known=",".join(PROBES))
    return tuple(name for name in PROBES if name in wanted)


class ProbeRunner:
    """Runs probe cycles against one target and records every result."""

    def __init__(self, target: ProbeTarget, *, probes: Iterable[str] = PROBES,
                 store: ResultStore | None = None, metrics: ProbeMetrics | None = None,
                 receiver: ImageReceiver | None = None, reports: ReportListener | None = None,
                 events: EventBus | None = None, images: int = 2, image_size: int = 256,
                 order_message: str = "orm") -> None:
        self.target = target
        self.probes = tuple(parse_probes(",".join(probes)))
        self.store, self.metrics = store, metrics
        self.receiver, self.reports = receiver, reports
        self.events = events
        self.images, self.image_size = images, image_size
        self.order_message = order_message
        self.cycles = 0

    # -- one cycle ----------------------------------------------------------------------
    def run_cycle(self) -> list[ProbeResult]:
        cycle = new_cycle()
        images = cycle.images(self.images, self.image_size)
        sop_classes = sorted({str(ds.SOPClassUID) for ds in images})
        ordered: list[float] = []
        target, label, events = self.target, self.target.label, self.events
        actions: dict[str, Callable[[], object]] = {
            "echo": lambda: probes_dicom.echo(target, events),
            "worklist_query": lambda: probes_dicom.worklist_query(target, events),
            "order_to_worklist": lambda: probes_hl7.order_to_worklist(
                target, cycle, kind=self.order_message, events=events,
                on_accepted=ordered.append),
            "store_to_queryable": lambda: probes_dicom.store_to_queryable(
                target, cycle, images, events),
            "load_cmove": lambda: probes_retrieve.load_by_move(target, self.receiver,
                                                               cycle.study_uid, events),
            "load_cget": lambda: probes_retrieve.load_by_get(target, cycle.study_uid, sop_classes,
                                                             events),
            "load_wado": lambda: probes_retrieve.load_by_wado(target, cycle.study_uid),
            "order_to_report": lambda: probes_hl7.order_to_report(
                self.reports, cycle.accession, ordered[0] if ordered else None, target.timeout),
        }
        results = []
        for name in self.probes:
            result = measure(name, label, actions[name])  # type: ignore[arg-type]
            log.info("probe %s on %s: %s %.3fs %s", name, label, result.outcome, result.seconds,
                     result.error)
            results.append(result)
        self._clean(cycle, order_placed=bool(ordered))
        self.cycles += 1
        self._record(results)
        return results

    def _clean(self, cycle: CanaryCycle, *, order_placed: bool) -> None:
        if order_placed:
            cleanup.cancel_order(self.target, cycle, kind=self.order_message, events=self.events)
        if self.target.rest:
            cleanup.delete_orthanc_study(self.target.rest, cycle.study_uid, self.target.timeout)

    def _record(self, results: list[ProbeResult]) -> None:
        if self.store is not None:
            self.store.add(results)
        if self.metrics is not None:
            for result in results:
                self.metrics.observe(result)

    # -- the loop -----------------------------------------------------------------------
    def run(self, every: float, *, count: int | None = None,
            stop: threading.Event | None = None,
            on_cycle: Callable[[list[ProbeResult]], None] | None = None) -> int:
        """Run a cycle every ``every`` seconds until ``count`` cycles or ``stop`` is set.

        Cycles start on a fixed grid (a slow cycle delays the next one, it never
        piles them up). Returns the number of cycles run.
        """
        if every <= 0:
            raise ConfigError("--every must be positive", every=every)
        stop = stop or threading.Event()
        next_start = time.monotonic()
        done = 0
        while not stop.is_set() and (count is None or done < count):
            results = self.run_cycle()
            done += 1
            if on_cycle is not None:
                on_cycle(results)
            if count is not None and done >= count:
                break
            next_start += every
            stop.wait(max(0.0, next_start - time.monotonic()))
            next_start = max(next_start, time.monotonic())
        return done


__all__ = ["ProbeRunner", "PROBES", "parse_probes"]
