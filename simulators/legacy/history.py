"""The study mix of a legacy archive: who was imaged, with what, when, and how much.

Why per patient: a real archive is a set of patient histories (a first exam, then
priors and follow-ups over the years), and the dirt that matters most in a
migration is about one patient's studies disagreeing with each other. So the
history is generated patient by patient, each from its own seeded stream
(``derived_random(seed, "legacy-patient", index)``): patient 7's history never
depends on how many patients came before, the archive can be generated in chunks
by several processes, and nothing but the current patient is held in memory.

The mix (documented figures; ``MODALITY_MIX`` and ``SHAPES``):

* modalities: CR 30%, CT 20%, DX 15%, US 15%, MR 12%, MG 8%;
* studies per patient: 1 (35%), 2 (22%), 3 (15%), 4 (10%), 5-8 (13%), 9-15 (5%); mean ~3;
* series x images per study: CR 1 x 1-2, DX 1 x 1-3, MG 1 x 4, US 1 x 2-6,
  CT 2-4 x 2-5, MR 3-5 x 2-4 (about 5 instances per study on average);
* dates: over ``years`` years ending at ``until``, density growing 15% a year (the
  most recent years are denser, as archives grow), times 07:00-19:59.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

from simulators.errors import ConfigError
from simulators.world.catalogue import procedures_for
from simulators.world.seeding import derived_random

MODALITY_MIX: dict[str, int] = {"CR": 30, "CT": 20, "DX": 15, "US": 15, "MR": 12, "MG": 8}
#: modality -> ((min series, max series), (min images, max images) per series)
SHAPES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "CR": ((1, 1), (1, 2)), "DX": ((1, 1), (1, 3)), "MG": ((1, 1), (4, 4)),
    "US": ((1, 1), (2, 6)), "CT": ((2, 4), (2, 5)), "MR": ((3, 5), (2, 4)),
}
_STUDY_COUNTS = ((1, 1, 35), (2, 2, 22), (3, 3, 15), (4, 4, 10), (5, 8, 13), (9, 15, 5))
YEARLY_GROWTH = 1.15
MAX_YEARS = 50
MAX_STUDIES = 10_000_000


@dataclass(frozen=True, slots=True)
class StudyPlan:
    """One study to seed: its world index (UIDs and numbers derive from it) and shape."""

    index: int
    patient_index: int
    modality: str
    procedure_index: int
    start: dt.datetime
    series: int
    per_series: int

    @property
    def instances(self) -> int:
        return self.series * self.per_series


@dataclass(frozen=True, slots=True)
class PatientHistory:
    """One patient's studies, oldest first (so the later one is the prior's follow-up)."""

    patient_index: int
    studies: tuple[StudyPlan, ...]


def check_size(studies: int, years: int) -> None:
    """ConfigError for a size the seeder will not attempt."""
    if not 1 <= studies <= MAX_STUDIES:
        raise ConfigError(f"studies must be between 1 and {MAX_STUDIES}", studies=studies)
    if not 1 <= years <= MAX_YEARS:
        raise ConfigError(f"years must be between 1 and {MAX_YEARS}", years=years)


def _recent_weighted_day(u: float, years: int) -> float:
    """Inverse CDF of a density growing by YEARLY_GROWTH a year: days since the start."""
    g = math.log(YEARLY_GROWTH)
    t = math.log(1 + u * (math.exp(g * years) - 1)) / g
    return min(t, years - 1e-9) * 365.0


def _study_count(rng) -> int:  # noqa: ANN001 - random.Random
    low, high, _ = rng.choices(_STUDY_COUNTS, weights=[w for _, _, w in _STUDY_COUNTS])[0]
    return rng.randint(low, high)


def patient_histories(seed: int, studies: int, years: int,
                      until: dt.date) -> Iterator[PatientHistory]:
    """Patient histories in order until ``studies`` studies are planned (the last
    patient may get fewer than drawn). Study indexes run 0..studies-1."""
    check_size(studies, years)
    first_day = dt.datetime.combine(until, dt.time()) - dt.timedelta(days=365 * years)
    modalities, weights = list(MODALITY_MIX), list(MODALITY_MIX.values())
    planned, patient = 0, 0
    while planned < studies:  # bounded: every patient plans at least one study
        rng = derived_random(seed, "legacy-patient", patient)
        count = min(_study_count(rng), studies - planned)
        drafts = []
        for _ in range(count):
            modality = rng.choices(modalities, weights=weights)[0]
            (s_low, s_high), (i_low, i_high) = SHAPES[modality]
            day = _recent_weighted_day(rng.random(), years)
            minute = rng.randrange(7 * 60, 20 * 60)
            start = first_day + dt.timedelta(days=int(day), minutes=minute)
            drafts.append((start, modality, rng.randrange(len(procedures_for(modality))),
                           rng.randint(s_low, s_high), rng.randint(i_low, i_high)))
        drafts.sort()
        plans = tuple(StudyPlan(planned + n, patient, modality, procedure, start, series, per)
                      for n, (start, modality, procedure, series, per) in enumerate(drafts))
        yield PatientHistory(patient, plans)
        planned += count
        patient += 1


__all__ = ["StudyPlan", "PatientHistory", "patient_histories", "check_size", "MODALITY_MIX",
           "SHAPES", "YEARLY_GROWTH"]
