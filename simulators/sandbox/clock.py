"""The sandbox's simulated clock: one time source, a speed factor, pausable.

Why a clock object instead of ``time.time()`` scattered around: a trainer changes the
pace (1x, 10x, 60x) while the hospital runs, pauses it to explain something, and
expects every pathway, arrival and report to follow. So everything in the sandbox
reads simulated time here and waits with :meth:`SimClock.wait_until`, which wakes
up early when the pace changes or the clock is stopped.

Simulated time is anchored: at wall instant ``w0`` the simulation was at ``s0``;
``now = s0 + (wall - w0) * speed`` while running. Changing the speed or pausing
re-anchors, so simulated time never jumps and never runs backwards (monotonic:
the wall source is ``time.monotonic``).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from typing import Callable

from simulators.errors import ConfigError

#: Paces the CLI and the trainer API offer; any positive float works internally.
PACES = ("1x", "10x", "60x")
MAX_SPEED = 100_000.0
_PACE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE)
#: Longest single wall-clock wait, so a waiter rechecks stop/pace regularly.
_MAX_WAIT = 0.5


def parse_pace(value: str | float | int) -> float:
    """``"60x"``, ``"10"`` or ``2.5`` -> a speed factor; ConfigError when not positive."""
    if isinstance(value, bool):
        raise ConfigError("a pace is a factor like 1x, 10x or 60x", pace=value)
    if isinstance(value, (int, float)):
        speed = float(value)
    else:
        match = _PACE.match(str(value))
        if match is None:
            raise ConfigError("a pace is a factor like 1x, 10x or 60x", pace=value)
        speed = float(match.group(1))
    if not 0 < speed <= MAX_SPEED:
        raise ConfigError(f"a pace must be above 0 and at most {MAX_SPEED:g}x", pace=value)
    return speed


def format_pace(speed: float) -> str:
    return f"{speed:g}x"


class SimClock:
    """Simulated seconds since the sandbox's start of day, at ``speed`` times wall time.

    ``start`` is the simulated wall-clock time of day the sandbox begins at (08:00 by
    default), so :meth:`time_of_day` can drive the day's arrival shape.
    """

    def __init__(self, speed: float = 1.0, *, start: dt.time = dt.time(8, 0),
                 wall: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._lock = threading.Condition()
        self._speed = parse_pace(speed)
        self._anchor_wall = wall()
        self._anchor_sim = 0.0
        self._paused = False
        self._closed = False
        self.start_of_day = start.hour * 3600 + start.minute * 60 + start.second
        self.day = dt.date.today()

    # ------------------------------------------------------------------ reading
    def now(self) -> float:
        """Simulated seconds elapsed since the sandbox started (monotonic)."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> float:
        if self._paused:
            return self._anchor_sim
        return self._anchor_sim + (self._wall() - self._anchor_wall) * self._speed

    def time_of_day(self) -> float:
        """Seconds since simulated midnight (wraps every simulated day)."""
        return (self.start_of_day + self.now()) % 86400.0

    def datetime(self) -> dt.datetime:
        """The simulated date and time (the first day is today)."""
        start = dt.datetime.combine(self.day, dt.time()) + dt.timedelta(seconds=self.start_of_day)
        return start + dt.timedelta(seconds=self.now())

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    # ------------------------------------------------------------------ control
    def _reanchor(self) -> None:
        self._anchor_sim = self._now_locked()
        self._anchor_wall = self._wall()

    def set_speed(self, speed: float | str) -> float:
        """Change the pace from now on; waiters recompute their wall-clock deadline."""
        value = parse_pace(speed)
        with self._lock:
            self._reanchor()
            self._speed = value
            self._lock.notify_all()
        return value

    def pause(self) -> None:
        with self._lock:
            if not self._paused:
                self._reanchor()
                self._paused = True
                self._lock.notify_all()

    def resume(self) -> None:
        with self._lock:
            if self._paused:
                self._anchor_wall = self._wall()
                self._paused = False
                self._lock.notify_all()

    def close(self) -> None:
        """Wake every waiter for good (the sandbox is going down)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    # ------------------------------------------------------------------ waiting
    def wait_until(self, target: float, stop: threading.Event | None = None) -> bool:
        """Block until simulated time reaches ``target``; False if stopped/closed first.

        Wall waits are capped at half a second so a ``stop`` event set elsewhere is
        seen promptly even without a notify.
        """
        with self._lock:
            while True:
                if self._closed or (stop is not None and stop.is_set()):
                    return False
                now = self._now_locked()
                if now >= target and not self._paused:
                    return True
                wait = _MAX_WAIT if self._paused else min((target - now) / self._speed,
                                                         _MAX_WAIT)
                self._lock.wait(max(wait, 0.0005))

    def sleep(self, simulated: float, stop: threading.Event | None = None) -> bool:
        """Wait ``simulated`` seconds of simulated time (see :meth:`wait_until`)."""
        return self.wait_until(self.now() + max(simulated, 0.0), stop)


__all__ = ["SimClock", "parse_pace", "format_pace", "PACES"]
