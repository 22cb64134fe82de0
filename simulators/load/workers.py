"""Load generation in worker processes: off the target's GIL, and past one core.

Two reasons to leave the calling process. ``pacsim run`` hosts the built-in actors
(RIS, archive) in-process: a generator sharing their interpreter would compete with
them for the GIL and the latencies would measure both. And one event loop uses one
core; ``workers: N`` spreads the fleet over N processes (modality i goes to worker
i mod N, so each share keeps the modality mix and the shape scales with it).

Each worker runs :class:`LoadEngine` on its share with a private bus and returns its
events as plain tuples; the parent replays them into one :class:`LoadStatistics`, so
merged figures are computed exactly as in a single process (percentiles of all
samples, not an average of per-worker percentiles). Workers prepare their orders,
then wait at a barrier so the shape starts at the same moment everywhere; they send a
progress message each second for the live view. Everything is bounded by time: a
worker that does not report in time is terminated and named in the error.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue as queue_module
import signal
import time
import traceback
from typing import Any, Callable, TextIO

from simulators.errors import ConfigError
from simulators.events import EventBus, Exchange
from simulators.load.console import LiveView, format_live
from simulators.load.engine import LoadEngine, LoadRun
from simulators.load.profile import LoadProfile
from simulators.load.shape import Shape
from simulators.load.stats import LoadStatistics
from simulators.load.target import LoadTarget, check_target
from simulators.world.world import World

#: Time a worker may take to start (imports) and prepare its orders.
STARTUP_TIMEOUT = 180.0
EventTuple = tuple[str, str, str, float, float, str, str, int, str]


def _as_tuple(event: Exchange) -> EventTuple:
    return (event.kind, event.actor, event.peer, event.start, event.duration, event.outcome,
            event.status, event.bytes, str(event.detail.get("error", "") or ""))


def _from_tuple(row: EventTuple) -> Exchange:
    kind, actor, peer, start, duration, outcome, status, size, error = row
    return Exchange(kind=kind, actor=actor, peer=peer, start=start, duration=duration,
                    outcome=outcome, status=status, bytes=size,
                    detail={"error": error} if error else {})


def _worker_main(profile_data: dict[str, Any], target: LoadTarget, seed: int,
                 share: tuple[int, int], allow_external: bool, barrier: Any,
                 results: Any, stop: Any = None) -> None:
    """Entry point of one worker process (spawned: nothing inherited but arguments).

    Ctrl-C in a terminal reaches the whole process group: the worker ignores it and
    stops when the parent sets ``stop``, so its figures still reach the report."""

    worker = share[0]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        profile = LoadProfile.model_validate(profile_data)
        events = EventBus()
        rows: list[EventTuple] = []
        events.subscribe(lambda event: rows.append(_as_tuple(event)))

        def progress(elapsed: float, active: int, totals: dict[str, tuple[int, int]]) -> None:
            results.put(("progress", worker, elapsed, active, totals))

        engine = LoadEngine(profile, target, world=World(seed), events=events,
                            allow_external=allow_external, share=share,
                            before_start=lambda: barrier.wait(STARTUP_TIMEOUT),
                            on_progress=progress)
        run = asyncio.run(engine.run(stop.is_set if stop is not None else lambda: False))
        recorded = [r for r in rows if r[3] >= run.started]  # prepare's events stay out
        results.put(("done", worker, recorded, {
            "started": run.started, "operations_started": run.operations_started,
            "interrupted": run.interrupted, "dropped": run.dropped,
            "stopped_early": run.stopped_early, "prepare": run.prepare,
            "planned": run.planned}))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001
            pass
        results.put(("error", worker, traceback.format_exc(limit=5)))


def run_workers(profile: LoadProfile, target: LoadTarget, *, world_seed: int,
                allow_external: bool = False, live: TextIO | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> LoadRun:
    """Run ``profile`` in ``max(profile.workers, 1)`` processes and merge the results;
    ``should_stop()`` true ends the stages early in every worker (Ctrl-C, SIGTERM)."""
    check_target(target, allow_external=allow_external and profile.allow_external)
    count = max(profile.workers, 1)
    context = mp.get_context("spawn")
    barrier = context.Barrier(count + 1)
    results = context.Queue()
    stop = context.Event()
    processes = [context.Process(target=_worker_main, name=f"pacsim-load-{w}", daemon=True,
                                 args=(profile.model_dump(mode="json"), target, world_seed,
                                       (w, count), allow_external, barrier, results, stop))
                 for w in range(count)]
    for process in processes:
        process.start()
    view = LiveView(live) if live is not None and profile.report.live else None
    try:
        try:
            barrier.wait(STARTUP_TIMEOUT)
        except Exception:  # noqa: BLE001 - a worker failed or never came: say which
            raise ConfigError("load workers did not start",
                              detail=_first_error(results) or "start-up timed out") from None
        started = time.time()

        def stopping() -> bool:
            if should_stop():
                stop.set()
                return True
            return False

        finished = _collect(results, count, profile, view, started, stopping)
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
    shape = Shape(profile.stages)
    stats = LoadStatistics(started=started, stages=shape.windows)
    run = LoadRun(profile, stats, shape, started, workers=count)
    planned: list[int] = []
    for rows, meta in finished:
        for row in rows:
            stats.record(_from_tuple(row))
        run.operations_started += meta["operations_started"]
        run.interrupted += meta["interrupted"]
        run.dropped += meta["dropped"]
        run.stopped_early = run.stopped_early or meta["stopped_early"]
        for key, value in (meta["prepare"] or {}).items():
            if isinstance(value, (int, float)):
                run.prepare[key] = max(run.prepare.get(key, 0), value) if key.endswith("seconds") \
                    else run.prepare.get(key, 0) + value
        planned = [a + b for a, b in zip(planned, meta["planned"])] if planned \
            else list(meta["planned"])
    run.planned = planned
    run.duration = time.time() - started
    if view is not None:
        view.finish(stats.live_line(run.duration, 0))
    return run


def _collect(results: Any, count: int, profile: LoadProfile, view: LiveView | None,
             started: float, stopping: Callable[[], bool] = lambda: False
             ) -> list[tuple[list[EventTuple], dict[str, Any]]]:
    """Progress messages until every worker is done; bounded by the run's own limits.
    ``stopping()`` is asked each second (it tells the workers to stop when true)."""
    deadline = started + profile.total_duration + profile.grace + 60
    finished: dict[int, tuple[list[EventTuple], dict[str, Any]]] = {}
    progress: dict[int, tuple[int, dict[str, tuple[int, int]]]] = {}
    while len(finished) < count:
        if stopping():
            deadline = min(deadline, time.time() + profile.grace + 30)
        remaining = deadline - time.time()
        if remaining <= 0:
            raise ConfigError("load workers did not finish in time",
                              finished=len(finished), workers=count)
        try:
            message = results.get(timeout=min(remaining, 1.0))
        except queue_module.Empty:
            continue
        if message[0] == "error":
            raise ConfigError(f"load worker {message[1]} failed", detail=message[2][-500:])
        if message[0] == "done":
            finished[message[1]] = (message[2], message[3])
        elif message[0] == "progress" and view is not None:
            progress[message[1]] = (message[3], message[4])
            totals: dict[str, tuple[int, int]] = {}
            for _, counts in progress.values():
                for name, (n, errors) in counts.items():
                    before = totals.get(name, (0, 0))
                    totals[name] = (before[0] + n, before[1] + errors)
            active = sum(a for a, _ in progress.values())
            view.show(message[2], format_live(message[2], active, totals))
    return [finished[w] for w in sorted(finished)]


def _first_error(results: Any) -> str:
    for _ in range(100):
        try:
            message = results.get(timeout=0.1)
        except queue_module.Empty:
            return ""
        if message[0] == "error":
            return str(message[2])[-500:]
    return ""


__all__ = ["run_workers"]
