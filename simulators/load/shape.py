"""The load shape: how many virtual modalities are active at each moment, and who they are.

Like k6's ``ramping-vus`` and Locust's ``LoadTestShape.tick()``, the shape is a pure
function of elapsed time, so the engine, the report (the planned line under the
measured concurrency) and the tests all read the same plan. The fleet is ordered so
that any first N members follow the modality mix (smooth weighted round robin): at
10 active modalities of a 40/20/25/15 mix, about 4 are CT, not 10.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.errors import ConfigError
from simulators.load.profile import Fleet, Stage


@dataclass(frozen=True, slots=True)
class Member:
    """One virtual modality of the fleet."""

    index: int
    ae_title: str
    modality: str


@dataclass(frozen=True, slots=True)
class StageWindow:
    """A stage placed on the time axis (seconds since the load started)."""

    name: str
    start: float
    end: float
    target: int


class Shape:
    """Active modalities over time, from the profile's stages."""

    def __init__(self, stages: list[Stage]) -> None:
        self.windows: list[StageWindow] = []
        self._ramps: list[tuple[float, float, int, int]] = []  # start, ramp, from, to
        start, previous = 0.0, 0
        for number, stage in enumerate(stages, start=1):
            ramp = stage.duration if stage.ramp is None else stage.ramp
            self._ramps.append((start, ramp, previous, stage.target))
            self.windows.append(StageWindow(stage.name or f"stage {number}", start,
                                            start + stage.duration, stage.target))
            start += stage.duration
            previous = stage.target
        self.duration = start

    def target_at(self, elapsed: float) -> int:
        """Active modalities wanted at ``elapsed`` seconds; 0 once the shape has ended."""
        return round(self.level_at(elapsed))

    def level_at(self, elapsed: float) -> float:
        """The shape's unrounded value at ``elapsed`` seconds (0 outside the shape).

        The load engine rounds it to whole modalities; the sandbox reads it as an
        arrival rate over the simulated day, where fractions matter.
        """
        if elapsed < 0 or elapsed >= self.duration:
            return 0.0
        for window, (start, ramp, before, after) in zip(self.windows, self._ramps):
            if elapsed < window.end:
                if ramp <= 0 or elapsed - start >= ramp:
                    return float(after)
                return before + (after - before) * (elapsed - start) / ramp
        return 0.0

    def window_at(self, elapsed: float) -> StageWindow | None:
        return next((w for w in self.windows if w.start <= elapsed < w.end), None)


def fleet_members(fleet: Fleet) -> list[Member]:
    """The fleet in activation order, modalities interleaved by the mix."""
    total = sum(fleet.mix.values())
    weights = {modality: share / total for modality, share in sorted(fleet.mix.items())
               if share > 0}
    credit = dict.fromkeys(weights, 0.0)
    members = []
    for index in range(fleet.count):
        for modality, weight in weights.items():
            credit[modality] += weight
        chosen = max(credit, key=lambda m: (credit[m], m))
        credit[chosen] -= 1.0
        title = fleet.ae_title.format(modality=chosen, n=index + 1, i=index)
        members.append(Member(index, title, chosen))
    titles = [m.ae_title for m in members]
    if len(set(titles)) != len(titles):
        raise ConfigError("the ae_title pattern gives duplicate AE titles; include {n}",
                          pattern=fleet.ae_title)
    return members


__all__ = ["Shape", "StageWindow", "Member", "fleet_members"]
