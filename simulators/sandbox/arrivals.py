"""When patients arrive over the simulated day, for which pathway and which modality.

Reuses the load engine's pieces instead of a second scheduler: each arrival stream
(emergency, outpatient, inpatient) is a :class:`simulators.load.shape.Shape` over the
24 hours (arrivals per hour as the stage level, read with ``level_at``), and the
modality mix is the fleet order of :func:`simulators.load.shape.fleet_members`
(smooth weighted round robin, so a 50/35/15 mix really alternates CT, DX, US).

Arrivals are a non-homogeneous Poisson process in *simulated* seconds, drawn by
thinning (Lewis & Shedler): candidate gaps at the day's peak rate, each kept with
probability rate(t)/peak. The trainer's rate factor multiplies every stream.
Everything is seeded, so the same ``--seed`` gives the same day.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from simulators.errors import ConfigError
from simulators.load.profile import KNOWN_MODALITIES, Fleet, Stage
from simulators.load.shape import Shape, fleet_members

DAY = 86400.0
#: A load Stage is at most 4 hours; longer quiet spells are split.
_STAGE_LIMIT = 4 * 3600.0
#: Members of the mix cycle (enough for percentages to come out exactly).
_MIX_CYCLE = 100


@dataclass(frozen=True, slots=True)
class Arrival:
    """One patient arriving: at simulated second ``at``, for ``pathway`` on ``modality``."""

    at: float
    stream: str
    pathway: str
    modality: str


def day_shape(per_hour: Mapping[Any, Any]) -> Shape:
    """``{0: 3, 8: 10, 17: 0}`` (rate from each hour on) -> a 24-hour Shape, steps not ramps."""
    try:
        points = sorted((float(hour), int(rate)) for hour, rate in per_hour.items())
    except (TypeError, ValueError):
        raise ConfigError("per_hour maps hours (0-23) to whole arrivals per hour") from None
    if not points or points[0][0] != 0 or any(not 0 <= h < 24 or r < 0 for h, r in points):
        raise ConfigError("per_hour starts at hour 0, hours 0-23, rates >= 0",
                          per_hour=str(dict(per_hour)))
    stages: list[Stage] = []
    bounds = [h for h, _ in points[1:]] + [24.0]
    for (hour, rate), end in zip(points, bounds):
        left = (end - hour) * 3600.0
        while left > 0:
            piece = min(left, _STAGE_LIMIT)
            stages.append(Stage(duration=piece, target=rate, ramp=0, name=f"{hour:g}h"))
            left -= piece
    return Shape(stages)


def mix_cycle(mix: Mapping[str, Any], available: set[str]) -> list[str]:
    """Modalities in the mix's interleaved order, limited to those the site has."""
    usable = {m: float(share) for m, share in mix.items() if m in available and float(share) > 0}
    if not usable:
        raise ConfigError("no modality of the mix exists at this site",
                          mix=",".join(mix), site=",".join(sorted(available)))
    unknown = sorted(set(usable) - set(KNOWN_MODALITIES))
    if unknown:
        raise ConfigError(f"unknown modality {', '.join(unknown)} in the mix")
    total = sum(usable.values())
    fleet = Fleet(count=_MIX_CYCLE, mix={m: share / total for m, share in usable.items()},
                  ae_title="MIX{n:03d}")
    return [member.modality for member in fleet_members(fleet)]


@dataclass
class Stream:
    """One arrival stream: its day shape, pathway weights and modality cycle."""

    name: str
    shape: Shape
    pathways: dict[str, float]
    modalities: Iterator[str]
    peak: float  # arrivals per hour at the busiest moment


def build_streams(arrivals: Mapping[str, Any], pathways: set[str],
                  available: set[str]) -> list[Stream]:
    """The ``arrivals:`` section -> streams; unknown pathways are a ConfigError."""
    if not isinstance(arrivals, Mapping) or not arrivals:
        raise ConfigError("a hospital day needs an 'arrivals:' mapping")
    streams = []
    for name, body in arrivals.items():
        if not isinstance(body, Mapping):
            raise ConfigError(f"arrival stream {name} is a mapping")
        shape = day_shape(body.get("per_hour") or {})
        weights = {str(p): float(w) for p, w in (body.get("pathways") or {}).items()}
        unknown = sorted(set(weights) - pathways)
        if unknown or not weights:
            raise ConfigError(f"arrival stream {name}: unknown or no pathways",
                              unknown=",".join(unknown))
        cycle = mix_cycle(body.get("mix") or {"CT": 1}, available)
        peak = max(window.target for window in shape.windows)
        streams.append(Stream(str(name), shape, weights, itertools.cycle(cycle), float(peak)))
    return streams


class ArrivalSchedule:
    """Draws the next arrival after a simulated instant (see the module docstring)."""

    def __init__(self, streams: list[Stream], *, start_of_day: float, seed: int) -> None:
        self.streams = streams
        self.start_of_day = start_of_day
        self._random = random.Random(seed)
        self.peak = sum(s.peak for s in streams) / 3600.0  # per simulated second

    def rate_at(self, elapsed: float) -> dict[str, float]:
        """Arrivals per simulated hour of each stream at ``elapsed`` sandbox seconds."""
        hour = (self.start_of_day + elapsed) % DAY
        return {s.name: s.shape.level_at(hour) for s in self.streams}

    def next_after(self, elapsed: float, factor: float = 1.0,
                   horizon: float = DAY) -> Arrival | None:
        """The first arrival after ``elapsed`` (None within ``horizon``, or no rate)."""
        if self.peak <= 0 or factor <= 0:
            return None
        at = elapsed
        for _ in range(100_000):  # bounded; quiet nights only take a few hundred draws
            at += self._random.expovariate(self.peak * factor)
            if at - elapsed > horizon:
                return None
            rates = self.rate_at(at)
            total = sum(rates.values()) / 3600.0
            if self._random.random() * self.peak < total:
                stream = self._pick_stream(rates)
                names, weights = zip(*stream.pathways.items())
                pathway = self._random.choices(names, weights)[0]
                return Arrival(at, stream.name, pathway, next(stream.modalities))
        return None

    def _pick_stream(self, rates: dict[str, float]) -> Stream:
        point = self._random.random() * sum(rates.values())
        for stream in self.streams:
            point -= rates[stream.name]
            if point < 0:
                return stream
        return self.streams[-1]


__all__ = ["ArrivalSchedule", "Arrival", "Stream", "build_streams", "day_shape", "mix_cycle"]
