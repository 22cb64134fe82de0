"""One entry point for a load run: in this process, or spread over worker processes.

Why its own module: the engine runs one share of the load; the worker pool runs
several engines. Choosing between them sits above both, so neither imports the other.
"""

from __future__ import annotations

import asyncio
from typing import Callable, TextIO

from simulators.events import EventBus
from simulators.load.engine import LoadEngine, LoadRun
from simulators.load.profile import LoadProfile
from simulators.load.target import LoadTarget
from simulators.load.workers import run_workers
from simulators.world.world import World


def run_load(profile: LoadProfile, target: LoadTarget, *, world: World,
             events: EventBus | None = None, allow_external: bool = False,
             live: TextIO | None = None, should_stop: Callable[[], bool] = lambda: False,
             isolate: bool = False) -> LoadRun:
    """Run a profile to completion: in this process, or in worker processes when the
    profile asks for ``workers`` > 1 or ``isolate`` is set (the target runs in this
    process and must not share its interpreter with the generator)."""
    if profile.workers > 1 or isolate:
        return run_workers(profile, target, world_seed=world.seed,
                           allow_external=allow_external, live=live, should_stop=should_stop)
    engine = LoadEngine(profile, target, world=world, events=events,
                        allow_external=allow_external, live=live)
    return asyncio.run(engine.run(should_stop))


__all__ = ["run_load"]
