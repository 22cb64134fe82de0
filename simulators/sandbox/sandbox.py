"""The sandbox: a simulated hospital day flowing into the target, under a trainer's hand.

One :class:`Sandbox` owns the site (actors and target, started exactly as a scenario
starts them), the simulated clock, the arrival schedule, and a bounded pool of
pathway threads. The arrival thread waits on the clock for each next arrival and
hands it to the pool; when ``max_running`` pathways are already in flight the
arrival is dropped and counted (the load engine does the same with Poisson
arrivals), so a slow target cannot grow memory without bound.

Flat memory: a finished pathway leaves only counters and its duration in the load
statistics (bounded window, no timeline); the EHR's ACK and result logs are trimmed.
A reset interrupts running pathways, starts a new :class:`Epoch` (new identifiers,
new UID root), zeroes the counters and restarts the simulated day; the site keeps
running, so the target keeps what trainees have seen.

Runtimes: ``local`` starts the actors in this process, ``docker`` in containers
(the site fills itself with proxies). The sandbox only uses operations both offer
(``set_faults``, ``forget_logs``, ``config``, the ADT/order/exam operations) and
tells actors apart by their ``kind``, so it runs unchanged on either.
"""

from __future__ import annotations

import datetime as dt
import logging
import resource
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from simulators.actors.ehr import Ehr
from simulators.actors.modality import Modality
from simulators.errors import ConfigError, PacsimError, PathwayInterrupted
from simulators.events import EventBus, Exchange
from simulators.load.stats import LoadStatistics
from simulators.sandbox.actions import ACTION_FUNCTIONS, Reporter, Services
from simulators.sandbox.arrivals import Arrival, ArrivalSchedule, build_streams
from simulators.sandbox.clock import SimClock, format_pace, parse_pace
from simulators.sandbox.identity import Epoch
from simulators.sandbox.pathways import PathwayCounters, PathwayRun, load_day, parse_pathways
from simulators.runtime.sites import open_site
from simulators.site.models import Environment

log = logging.getLogger(__name__)
#: Pathways in flight at once; arrivals beyond are dropped and counted.
MAX_RUNNING = 24
#: Entries kept in the EHR's ACK and result logs (they would grow all day otherwise).
EHR_LOG_KEEP = 50
#: Latencies kept per name in the statistics (percentiles of the most recent ones).
LATENCIES_KEPT = 500
#: Finished pathways whose summary the status still shows ("what just happened").
RECENT_KEPT = 20
MAX_RATE_FACTOR = 100.0


def rss_mb() -> float:
    """Resident set size now (Linux /proc), else the peak from getrusage, in MB."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 1e6
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class Sandbox:
    """See the module docstring. ``start()``, then the trainer's operations, ``stop()``."""

    def __init__(self, environment: Environment, *, runtime: str = "local",
                 pace: float | str = 1.0, seed: int | None = None, day: str | None = None,
                 start_time: dt.time = dt.time(8, 0), duration: float | None = None,
                 max_running: int = MAX_RUNNING, events: EventBus | None = None) -> None:
        self.runtime = runtime
        self.environment = environment
        self.seed = environment.seed if seed is None else int(seed)
        self.events = events or EventBus()
        self.clock = SimClock(parse_pace(pace), start=start_time)
        self.duration = duration
        self.max_running = max(1, int(max_running))
        document = load_day(day)
        self.pathways = parse_pathways(document)
        self._arrivals_data = document.get("arrivals") or {}
        self.site = open_site(environment, self.events, runtime)  # refuses an unknown runtime
        self.rate_factor = 1.0
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, PathwayRun] = {}
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._arrival_thread: threading.Thread | None = None
        self._reporter: Reporter | None = None
        self._unsubscribe: Any = None
        self.epoch = Epoch(self.seed)
        self.counters = PathwayCounters()
        self.stats = LoadStatistics(keep_latest=LATENCIES_KEPT, timeline=False)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_KEPT)
        self.started = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Sandbox:
        if self.started:
            return self
        self.site.start()
        # The simulated day begins once the hospital is up: containers take a minute
        # to start, which at 60x would otherwise be an hour of the day gone unseen.
        self.clock = SimClock(self.clock.speed, start=_time_of(self.clock.start_of_day))
        try:
            available = {a.config.modality for a in self._modalities()}
            self.schedule = ArrivalSchedule(
                build_streams(self._arrivals_data, set(self.pathways), available),
                start_of_day=self.clock.start_of_day, seed=self.seed)
            self._reporter = Reporter(self.site.only(Ehr, None), self.events)
        except BaseException:
            self.site.stop()
            raise
        self._unsubscribe = self.events.subscribe(self._record)
        self.started = True
        self._begin_epoch_threads()
        return self

    def stop(self) -> None:
        """Interrupt pathways, stop arrivals and the site; idempotent."""
        if not self.started:
            return
        self.started = False
        self._end_epoch_threads()
        self.clock.close()
        if self._reporter is not None:
            self._reporter.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.site.stop()
        self.finished.set()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _begin_epoch_threads(self) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(self.max_running, thread_name_prefix="pathway")
        self._arrival_thread = threading.Thread(target=self._arrive, name="arrivals",
                                                daemon=True)
        self._arrival_thread.start()

    def _end_epoch_threads(self, wait: float = 30.0) -> None:
        self._stop.set()
        if self._arrival_thread is not None:
            self._arrival_thread.join(wait)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ arrivals
    def _arrive(self) -> None:
        stop, elapsed = self._stop, self.clock.now()
        while not stop.is_set():
            if self.duration is not None and elapsed >= self.duration:
                break
            arrival = self.schedule.next_after(elapsed, self.rate_factor, horizon=3600.0)
            elapsed = arrival.at if arrival else elapsed + 3600.0
            if self.duration is not None and elapsed >= self.duration:
                elapsed = self.duration
                arrival = None
            if not self.clock.wait_until(elapsed, stop):
                return
            if arrival is not None:
                self._launch(arrival.pathway, arrival.modality, arrival=arrival)
        if self.duration is not None and not stop.is_set():
            self._drain_then_finish(stop)

    def _drain_then_finish(self, stop: threading.Event) -> None:
        """A bounded run: let running pathways end (bounded wait), then say finished."""
        deadline = time.monotonic() + 120.0
        while self._running and not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not stop.is_set():
            self.finished.set()

    def _launch(self, pathway: str, modality: str, *, patient: str | None = None,
                arrival: Arrival | None = None) -> PathwayRun | None:
        station = self._station_for(modality)
        run = PathwayRun(self.pathways[pathway], modality, station, display_name=patient,
                         started_sim=self.clock.now())
        if patient:
            run.patients["main"] = self.epoch.patient(patient)
        with self._lock:
            if len(self._running) >= self.max_running or self._pool is None:
                self.counters.dropped += 1
                return None
            self._running[run.run_id] = run
        self.counters.move(pathway, None, "running")
        services = Services(self.site, self.epoch, self.clock, self.events, self._reporter,
                            self._stop)  # type: ignore[arg-type]
        try:
            self._pool.submit(self._run, run, services)
        except RuntimeError:  # the pool is shutting down (reset or stop)
            self._forget(run, "interrupted")
        return run

    def _run(self, run: PathwayRun, services: Services) -> None:
        state = "completed"
        with self.events.exchange(f"load.pathway.{run.pathway.name}", "sandbox",
                                  run.station) as event:
            try:
                for index, action in enumerate(run.pathway.actions):
                    run.step = index
                    ACTION_FUNCTIONS[action.do](run, action, services)
                run.step = len(run.pathway.actions)
            except PathwayInterrupted:
                state, event.outcome = "interrupted", "cancelled"
            except (PacsimError, OSError) as exc:
                state, event.outcome = "failed", "failed"
                run.error = f"{run.pathway.actions[run.step].do}: {exc}"[:300]
                event.detail["error"] = run.error
                log.info("pathway %s #%d failed: %s", run.pathway.name, run.run_id, run.error)
            except Exception as exc:  # noqa: BLE001 - one pathway must not stop the day
                state, event.outcome = "failed", "error"
                run.error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("pathway %s #%d crashed", run.pathway.name, run.run_id)
        self._forget(run, state)

    def _forget(self, run: PathwayRun, state: str) -> None:
        with self._lock:
            self._running.pop(run.run_id, None)
        self.counters.move(run.pathway.name, "running", state)
        run.state = state
        self.recent.append(run.summary())
        try:
            self._ehr().forget_logs(EHR_LOG_KEEP)
        except PacsimError as exc:  # a container that does not answer: next time, then
            log.info("could not trim the EHR's logs: %s", exc)

    def _record(self, event: Exchange) -> None:
        self.stats.record(event)

    @property
    def reports_received(self) -> int:
        """ORU^R01 reports the EHR accepted (answered AA) in this epoch."""
        return 0 if self._reporter is None else self._reporter.accepted

    # ------------------------------------------------------------------ site lookups
    def _ehr(self) -> Any:
        """The EHR (in-process, or the proxy of its container)."""
        return self.site.actors.get("ehr") or self.site.only(Ehr, None)

    def _modalities(self) -> list[Any]:
        """The modalities, in-process or proxies: both say ``kind == "modality"``."""
        return [a for a in self.site.actors.values()
                if getattr(a, "kind", None) == Modality.kind]

    def _station_for(self, modality: str) -> str:
        rooms = [a for a in self._modalities() if a.config.modality == modality.upper()]
        if not rooms:
            raise ConfigError(f"this site has no {modality} modality",
                              modalities=",".join(sorted({a.config.modality
                                                          for a in self._modalities()})))
        with self._lock:
            busy = {r.station for r in self._running.values()}
        free = [r for r in rooms if r.name not in busy]
        return (free or rooms)[0].name

    def modality_actor(self, name: str) -> Any:
        """A modality by actor name, AE title or station name (case-insensitive)."""
        wanted = name.strip().upper()
        for scanner in self._modalities():
            if wanted in (scanner.name.upper(), scanner.config.ae_title.upper(),
                          scanner.config.station_name.upper()):
                return scanner
        raise ConfigError(f"no modality {name!r}",
                          modalities=",".join(s.name for s in self._modalities()))

    # ------------------------------------------------------------------ trainer operations
    def set_pace(self, pace: float | str) -> float:
        return self.clock.set_speed(pace)

    def set_rate(self, factor: float) -> float:
        value = float(factor)
        if not 0 <= value <= MAX_RATE_FACTOR:
            raise ConfigError(f"the rate factor is between 0 and {MAX_RATE_FACTOR:g}",
                              factor=factor)
        self.rate_factor = value
        return value

    def start_pathway(self, pathway: str, *, patient: str | None = None,
                      modality: str = "CT") -> dict[str, Any]:
        """Start ``pathway`` now, for a named patient when given; its summary."""
        if pathway not in self.pathways:
            raise ConfigError(f"unknown pathway {pathway!r}", known=",".join(self.pathways))
        if not self.started:
            raise ConfigError("the sandbox is not running")
        run = self._launch(pathway, modality.upper(), patient=patient)
        if run is None:
            raise ConfigError(f"{self.max_running} pathways are already running; try again")
        return run.summary()

    def inject_fault(self, modality: str, fault: str | None, **targeting: Any) -> dict[str, Any]:
        """Catalogue fault(s) on a modality from now on (None clears them); rules are
        parsed by the fault profile parser, as a scenario's ``faults:`` are."""
        scanner = self.modality_actor(modality)
        entries: list[Any] = []
        if fault:
            entry = {"id": fault, **{k: v for k, v in targeting.items() if v is not None}}
            entries.append(entry if len(entry) > 1 else fault)
        active = scanner.set_faults(entries)  # validated where the modality runs
        return {"modality": scanner.name, "ae_title": scanner.config.ae_title,
                "faults": list(active)}

    def reset(self) -> dict[str, Any]:
        """Interrupt everything, new epoch, zero counters, restart the simulated day."""
        previous = self.epoch.tag
        self._end_epoch_threads()
        with self._lock:
            self._running.clear()
        self.epoch = Epoch(self.seed)
        self.counters = PathwayCounters()
        self.stats = LoadStatistics(keep_latest=LATENCIES_KEPT, timeline=False)
        self.recent.clear()
        if self._reporter is not None:
            self._reporter.accepted = 0
        self.clock = SimClock(self.clock.speed, start=_time_of(self.clock.start_of_day))
        for scanner in self._modalities():
            scanner.set_faults(None)  # back to the site's own fault profile
        if self.started:
            self._begin_epoch_threads()
        return {"epoch": self.epoch.tag, "previous_epoch": previous}

    # ------------------------------------------------------------------ reading
    def viewer_url(self) -> str | None:
        """Where trainees look at the target with its own viewer: Orthanc's web UI
        when the target is an Orthanc pacsim started, else None (an external PACS
        has its own viewer; the built-in archive has none)."""
        orthanc = getattr(self.site, "orthanc", None)
        return None if orthanc is None else f"{orthanc.rest_url}/app/explorer.html"

    def status(self) -> dict[str, Any]:
        target = self.site.target
        with self._lock:
            running = [run.summary() for run in self._running.values()]
        exchanges = self.stats.totals(operations_only=False)
        return {
            "sim_time": self.clock.datetime().isoformat(timespec="seconds"),
            "sim_elapsed_s": round(self.clock.now(), 1),
            "pace": format_pace(self.clock.speed), "paused": self.clock.paused,
            "rate_factor": self.rate_factor, "epoch": self.epoch.tag,
            "epoch_started": self.epoch.started, "duration_s": self.duration,
            "pathways": self.counters.snapshot(), "running": running,
            "recent": list(self.recent), "reports_received_by_ehr": self.reports_received,
            "rates_per_hour": {k: round(v, 2) for k, v in
                               self.schedule.rate_at(self.clock.now()).items()}
            if self.started else {},
            "exchanges": {name: {"count": c, "errors": e} for name, (c, e) in exchanges.items()},
            "actors": {name: actor.describe() for name, actor in self.site.actors.items()},
            "target": None if target is None else {
                "kind": target.kind, "host": target.dicom.host, "port": target.dicom.port,
                "ae_title": target.dicom.ae_title, "dicomweb_url": target.dicomweb_url,
                "web_ui": self.viewer_url(),
                # what the target takes (probed or declared) and where MPPS goes
                "capabilities": None if self.site.capabilities is None
                else self.site.capabilities.as_dict()},
            "rss_mb": round(rss_mb(), 1),
        }


def _time_of(seconds: float) -> dt.time:
    whole = int(seconds) % 86400
    return dt.time(whole // 3600, whole % 3600 // 60, whole % 60)


__all__ = ["Sandbox", "MAX_RUNNING", "rss_mb"]
