"""The ``load:`` section of a scenario: who generates traffic, how much, for how long, and
what counts as a pass.

Why a profile instead of a script: a QA lead states a peak the way the site describes
it ("200 modalities polling every 30 s while studies arrive"), and the engine turns it
into bounded traffic. Every number here has an upper bound, so a typo cannot turn a
test into a denial of service: at most :data:`MAX_MODALITIES` virtual modalities,
:data:`MAX_DURATION` of load, :data:`MAX_OPERATIONS_LIMIT` operations.

Shape (k6 ``ramping-vus`` / Locust ``LoadTestShape``): ``stages`` list the number of
active modalities over time; each stage moves linearly from the previous target to its
own ``target`` during its ``ramp`` (default: the whole stage, as k6 does), then holds.
Operations per modality run either paced (``every: 30s``: one start per period, the
next waiting for the previous to end, like a scanner's worklist poll), as a closed loop
(``think: 1s`` after each one, a user at a workstation), or as Poisson arrivals
(``rate: 2/h`` per modality: studies arriving). With fewer active modalities in a
stage, the arrival rate of the whole fleet ramps with them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulators.common.fields import Duration, Fraction, Rate, parse_fraction, parse_rate

MAX_MODALITIES = 5000
MAX_DURATION = 4 * 3600.0
MAX_OPERATIONS_LIMIT = 2_000_000
MAX_WORKERS = 16
#: Operations a virtual modality can perform (``do:``).
OPERATIONS = ("mwl.query", "modality.perform", "store", "mpps", "hl7.order", "echo")
#: Modalities the image builders know (``simulators.world.images.IODS``).
KNOWN_MODALITIES = ("CT", "MR", "CR", "DX", "MG", "US")
class _Model(BaseModel):
    """Unknown keys are errors (a misspelt threshold silently ignored would pass)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Fleet(_Model):
    """The virtual modalities: how many, which kinds, how they are titled."""

    count: int = Field(ge=1, le=MAX_MODALITIES, description="number of virtual modalities")
    mix: dict[str, Fraction] = Field(
        default_factory=lambda: {"CT": 1.0},
        description="share of each modality, e.g. {CT: 40%, MR: 20%, CR: 25%, US: 15%}")
    ae_title: str = Field("LD{modality}{n:03d}",
                          description="AE title pattern: {modality}, {n} (1-based), "
                                      "{i} (0-based); at most 16 characters once filled")

    @model_validator(mode="after")
    def _check(self) -> "Fleet":
        unknown = sorted(set(self.mix) - set(KNOWN_MODALITIES))
        if unknown:
            raise ValueError(f"unknown modality {', '.join(unknown)} in mix "
                             f"(known: {', '.join(KNOWN_MODALITIES)})")
        if sum(self.mix.values()) <= 0:
            raise ValueError("the modality mix must have a share above 0%")
        try:
            longest = self.ae_title.format(modality="MMMM", n=self.count, i=self.count)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad ae_title pattern {self.ae_title!r}: {exc}") from None
        if not 0 < len(longest) <= 16:
            raise ValueError(f"ae_title pattern gives {longest!r}: AE titles are 1-16 "
                             f"characters")
        return self


class Stage(_Model):
    """Move to ``target`` active modalities over ``ramp``, then hold until ``duration`` ends."""

    duration: Duration = Field(gt=0, le=MAX_DURATION)
    target: int = Field(ge=0, le=MAX_MODALITIES, description="active modalities")
    ramp: Duration | None = Field(None, description="ramp time at the start (default: all of it)")
    name: str | None = Field(None, description="label in the report (default: 'stage N')")

    @model_validator(mode="after")
    def _check(self) -> "Stage":
        if self.ramp is not None and self.ramp > self.duration:
            raise ValueError("a stage's ramp cannot be longer than its duration")
        return self


class Images(_Model):
    """Images of one study: realistic sizes by default (CT slice 512x512x16 bit = 0.5 MB)."""

    series: int = Field(1, ge=1, le=20)
    per_series: int = Field(20, ge=1, le=2000)
    rows: int = Field(512, ge=8, le=4096)
    cols: int = Field(512, ge=8, le=4096)


class Operation(_Model):
    """One thing every active modality does, and how often."""

    do: Literal["mwl.query", "modality.perform", "store", "mpps", "hl7.order", "echo"]
    every: Duration | None = Field(None, gt=0, description="paced: one start per period")
    think: Duration | None = Field(None, ge=0, description="closed loop: pause after each")
    rate: Rate | None = Field(None, description="Poisson arrivals per modality, e.g. 2/h")
    scope: Literal["station", "all"] = Field(
        "station", description="mwl.query: our station's items today, or every item")
    match: dict[str, str] = Field(
        default_factory=dict, description="mwl.query: more matching keys, by DICOM keyword "
                                          "(e.g. {ScheduledStationAETitle: CT_POOL})")
    images: Images = Field(default_factory=Images)

    @model_validator(mode="after")
    def _one_pace(self) -> "Operation":
        paces = [name for name in ("every", "think", "rate") if getattr(self, name) is not None]
        if len(paces) != 1:
            raise ValueError(f"{self.do}: give exactly one of every, think or rate "
                             f"(got {', '.join(paces) or 'none'})")
        return self


class Threshold(_Model):
    """Pass/fail limits for one operation (or wire exchange kind, e.g. dicom.c-find)."""

    p50: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None
    max: Duration | None = None
    errors: Fraction | None = Field(None, description="largest error rate, e.g. 0% or 1%")
    min_count: int | None = Field(None, ge=0, description="at least this many completed")


class Prepare(_Model):
    """Before the stages: orders sent over HL7 so every station has worklist items."""

    orders_per_modality: int = Field(0, ge=0, le=100)
    concurrency: int = Field(8, ge=1, le=64)


class ReportSettings(_Model):
    """Where the load report (load.json, load.html) is written."""

    dir: str = Field("reports/load", description="directory; one sub-directory per run")
    live: bool = Field(True, description="print a live status line each second")


class LoadProfile(_Model):
    """The ``load:`` section (see the module docstring)."""

    name: str | None = None
    modalities: Fleet
    stages: list[Stage] = Field(min_length=1, max_length=100)
    every_modality: list[Operation] = Field(min_length=1, max_length=20)
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    prepare: Prepare = Field(default_factory=Prepare)
    workers: int = Field(1, ge=1, le=MAX_WORKERS, description="processes sharing the fleet")
    max_operations: int = Field(200_000, ge=1, le=MAX_OPERATIONS_LIMIT,
                                description="hard stop: operations started, all modalities")
    grace: Duration = Field(30.0, ge=0, le=600, description="wait for running operations at "
                                                             "the end, then abort them")
    timeout: Duration = Field(30.0, gt=0, le=600, description="network/DIMSE timeout")
    seed: int | None = Field(None, description="pacing jitter seed (default: the world's)")
    allow_external: bool = Field(False, description="allow a non-loopback target (an "
                                                    "external target must also say so)")
    report: ReportSettings = Field(default_factory=ReportSettings)

    @model_validator(mode="after")
    def _check(self) -> "LoadProfile":
        if self.total_duration > MAX_DURATION:
            raise ValueError(f"stages last {self.total_duration:.0f}s; the limit is "
                             f"{MAX_DURATION:.0f}s")
        too_many = [s.target for s in self.stages if s.target > self.modalities.count]
        if too_many:
            raise ValueError(f"a stage targets {max(too_many)} modalities but the fleet has "
                             f"{self.modalities.count}")
        if self.workers > self.modalities.count:
            raise ValueError("more workers than modalities")
        return self

    @property
    def total_duration(self) -> float:
        return sum(stage.duration for stage in self.stages)

    @property
    def peak(self) -> int:
        return max(stage.target for stage in self.stages)


__all__ = ["LoadProfile", "Fleet", "Stage", "Images", "Operation", "Threshold", "Prepare",
           "ReportSettings", "OPERATIONS", "KNOWN_MODALITIES", "parse_rate", "parse_fraction",
           "MAX_MODALITIES", "MAX_DURATION", "MAX_OPERATIONS_LIMIT"]
