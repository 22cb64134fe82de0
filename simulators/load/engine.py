"""The load engine: the shape, the fleet and the pacing, on one asyncio event loop.

A controller ticks every 50 ms: it reads how many modalities the shape wants now,
starts the missing ones and tells the surplus to stop after their current operation
(k6's graceful ramp-down). Each active modality runs one pacer per operation of the
profile (``every``, ``think`` or ``rate``). Everything is bounded: the shape's
duration, ``max_operations`` started in total, ``grace`` to let running operations
finish at the end, after which they are cancelled (and counted as interrupted, not as
errors: the target did nothing wrong).

The engine measures nothing itself: it emits events (the clients' wire exchanges and
one ``load.<do>`` event per operation) on its bus, and :class:`LoadStatistics`
listens. ``workers`` > 1 is handled by :mod:`simulators.load.workers`, which runs
this engine in each process on a share of the fleet.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from simulators.events import EventBus
from simulators.load.console import LiveView
from simulators.load.images import StudyImages
from simulators.load.operations import OrderNumbers, VirtualModality, WorklistQueries
from simulators.load.profile import LoadProfile, Operation
from simulators.load.shape import Member, Shape, fleet_members
from simulators.load.stats import LoadStatistics
from simulators.load.target import LoadTarget, check_target
from simulators.world.context import StudyContext
from simulators.world.world import World

TICK = 0.05
#: First order index of load runs, far from the indexes scenario steps use (0, 1, 2...).
ORDER_BASE = 5_000_000
#: Poisson arrivals one modality may have in flight before new ones are dropped.
MAX_IN_FLIGHT_PER_MODALITY = 4
#: Operations that store images (their image templates are recorded before the run).
STORING = ("store", "modality.perform")


@dataclass
class LoadRun:
    """What a load run produced; :mod:`simulators.load.report` turns it into reports."""

    profile: LoadProfile
    stats: LoadStatistics
    shape: Shape
    started: float
    duration: float = 0.0
    operations_started: int = 0
    interrupted: int = 0
    dropped: int = 0
    stopped_early: str = ""
    prepare: dict[str, Any] = field(default_factory=dict)
    planned: list[int] = field(default_factory=list)
    workers: int = 1


class _Budget:
    """``max_operations`` across the whole fleet; once spent, nothing new starts."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when the sleep ran out."""
    if seconds <= 0:
        return not stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return True
    return False


class LoadEngine:
    """Runs one profile against one target (see the module docstring)."""

    def __init__(self, profile: LoadProfile, target: LoadTarget, *, world: World,
                 events: EventBus | None = None, allow_external: bool = False,
                 live: TextIO | None = None, share: tuple[int, int] = (0, 1),
                 before_start: Callable[[], None] | None = None,
                 on_progress: Callable[[float, int, dict[str, tuple[int, int]]], None]
                 | None = None) -> None:
        check_target(target, allow_external=allow_external and profile.allow_external)
        self.profile = profile
        self.target = target
        self.world = world
        self.events = events or EventBus()
        self.shape = Shape(profile.stages)
        self.members = fleet_members(profile.modalities)
        self.worker, self.workers = share
        self.live = LiveView(live) if live is not None and profile.report.live else None
        self.before_start = before_start
        self.on_progress = on_progress
        seed = profile.seed if profile.seed is not None else world.seed
        self._random = random.Random(seed * 7919 + self.worker)
        self._images = StudyImages()
        self._queries = WorklistQueries()
        self._orders = OrderNumbers(ORDER_BASE + self.worker, self.workers)
        self._budget = _Budget(max(1, profile.max_operations // self.workers))
        self._dropped = 0
        self._interrupted = 0
        self._retiring: set[asyncio.Task[None]] = set()

    def mine(self, member: Member) -> bool:
        return member.index % self.workers == self.worker

    async def run(self, should_stop: Callable[[], bool] = lambda: False) -> LoadRun:
        """Prepare, run the shape to its end (or ``should_stop()``), drain, return the run."""
        prepare = await self._prepare()
        if self.before_start is not None:  # worker processes start the shape together
            self.before_start()
        started = time.time()
        stats = LoadStatistics(started=started, stages=self.shape.windows)
        unsubscribe = self.events.subscribe(stats.record)
        run = LoadRun(self.profile, stats, self.shape, started, prepare=prepare,
                      workers=self.workers)
        try:
            await self._drive(run, should_stop)
        finally:
            unsubscribe()
        run.duration = time.time() - started
        run.operations_started = self._budget.used
        run.dropped = self._dropped
        return run

    # ---------------------------------------------------------------- phases
    async def _prepare(self) -> dict[str, Any]:
        """Before the clock (not measured as load): image templates, then HL7 orders."""
        return {**self._prepare_images(), **await self._prepare_orders()}

    def _prepare_images(self) -> dict[str, Any]:
        """Record image templates for every (modality, study shape) the profile stores.

        Recording builds one whole study (about 2-4 ms per image); done during the
        run it would stall every modality on the loop and count as target latency.
        """
        began = time.perf_counter()
        shapes = {}
        for member in self.members:
            for operation in self.profile.every_modality:
                if self.mine(member) and operation.do in STORING:
                    images = operation.images
                    shapes[(member.modality, images.series, images.per_series, images.rows,
                            images.cols)] = (member, images)
        for member, images in shapes.values():
            ctx = StudyContext.unscheduled(self.world.patient(0), self.world, member.modality,
                                           station_name=member.ae_title, index=ORDER_BASE - 1)
            self._images.prepare(ctx, images)
        if not shapes:
            return {}
        return {"image_shapes": len(shapes),
                "image_seconds": round(time.perf_counter() - began, 3)}

    async def _prepare_orders(self) -> dict[str, Any]:
        """Send ``orders_per_modality`` HL7 orders per modality."""
        per_modality = self.profile.prepare.orders_per_modality
        if not per_modality or self.target.hl7 is None:
            return {}
        quiet = EventBus()
        modalities = [self._modality(m, quiet) for m in self.members if self.mine(m)]
        pending = [vu for vu in modalities for _ in range(per_modality)]
        began, failed = time.perf_counter(), 0
        gate = asyncio.Semaphore(self.profile.prepare.concurrency)

        async def order(vu: VirtualModality) -> None:
            nonlocal failed
            async with gate:
                event = await vu.run(Operation(do="hl7.order", every=1))
                failed += event.outcome != "ok"

        await asyncio.gather(*(order(vu) for vu in pending))
        return {"orders": len(pending), "failed": failed,
                "seconds": round(time.perf_counter() - began, 3)}

    async def _drive(self, run: LoadRun, should_stop: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        running: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        last_second = -1
        while True:
            elapsed = loop.time() - t0
            if elapsed >= self.shape.duration:
                break
            if should_stop():
                run.stopped_early = "stopped"
                break
            if self._budget.used >= self._budget.limit:
                run.stopped_early = f"max_operations ({self.profile.max_operations}) reached"
                break
            want = self.shape.target_at(elapsed)
            wanted = {m.index for m in self.members[:want] if self.mine(m)}
            for member in self.members[:want]:
                if member.index in wanted and member.index not in running:
                    stop = asyncio.Event()
                    task = asyncio.create_task(self._modality_loop(member, stop))
                    running[member.index] = (task, stop)
            for index in [i for i in running if i not in wanted]:
                task, stop = running.pop(index)
                stop.set()  # finishes its current operation, then ends
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
            second = int(elapsed)
            if second != last_second:
                run.planned.append(want)
                last_second = second
                self._progress(elapsed, len(running), run.stats)
            await asyncio.sleep(TICK)
        for task, stop in running.values():
            stop.set()
            self._retiring.add(task)
        run.interrupted = await self._drain()
        if self.live is not None:
            self.live.finish(run.stats.live_line(loop.time() - t0, 0))

    def _progress(self, elapsed: float, active: int, stats: LoadStatistics) -> None:
        if self.live is not None:
            self.live.show(elapsed, stats.live_line(elapsed, active))
        if self.on_progress is not None:
            self.on_progress(elapsed, active, stats.totals())

    async def _drain(self) -> int:
        """Let running operations finish within ``grace``; cancel and count the rest."""
        tasks = [t for t in self._retiring if not t.done()]
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=self.profile.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)
        self._retiring.clear()
        return self._interrupted

    # ---------------------------------------------------------------- modalities
    def _modality(self, member: Member, events: EventBus | None = None) -> VirtualModality:
        return VirtualModality(member, self.target, world=self.world, events=events or self.events,
                               images=self._images, orders=self._orders,
                               timeout=self.profile.timeout, queries=self._queries)

    async def _modality_loop(self, member: Member, stop: asyncio.Event) -> None:
        vu = self._modality(member)
        pacers = [asyncio.create_task(self._pace(vu, op, stop))
                  for op in self.profile.every_modality]
        try:
            await asyncio.gather(*pacers)
        finally:
            for pacer in pacers:
                pacer.cancel()

    async def _one(self, vu: VirtualModality, operation: Operation) -> None:
        try:
            await vu.run(operation)
        except asyncio.CancelledError:
            self._interrupted += 1
            raise

    async def _pace(self, vu: VirtualModality, operation: Operation, stop: asyncio.Event) -> None:
        """Run ``operation`` for one modality until ``stop`` (see the profile docstring)."""
        loop = asyncio.get_running_loop()
        if operation.every is not None:
            # Spread first starts over one period: 200 scanners do not poll in lockstep.
            if not await _pause(stop, self._random.uniform(0, operation.every)):
                return
            while not stop.is_set() and self._budget.take():
                began = loop.time()
                await self._one(vu, operation)
                if not await _pause(stop, began + operation.every - loop.time()):
                    return
        elif operation.think is not None:
            while not stop.is_set() and self._budget.take():
                await self._one(vu, operation)
                if not await _pause(stop, operation.think):
                    return
        else:
            assert operation.rate is not None
            arrivals: set[asyncio.Task[None]] = set()
            try:
                while await _pause(stop, self._random.expovariate(operation.rate)):
                    if len(arrivals) >= MAX_IN_FLIGHT_PER_MODALITY:
                        self._dropped += 1
                        continue
                    if not self._budget.take():
                        return
                    task = asyncio.create_task(self._one(vu, operation))
                    arrivals.add(task)
                    task.add_done_callback(arrivals.discard)
            finally:
                if arrivals:
                    await asyncio.gather(*arrivals, return_exceptions=True)


__all__ = ["LoadEngine", "LoadRun", "ORDER_BASE"]
