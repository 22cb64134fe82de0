"""Which studies move, in which stage and order: the migration strategies.

* ``full`` - every study, **oldest first**. Why oldest first: the target then receives
  the archive in the order the legacy acquired it, so an index that keeps the first
  instance's patient attributes (pacsim's own, and many PACS) ends up with the same
  patient rows as the legacy, priors always arrive before the studies that compare
  with them, and a resumed run's progress is a date you can read.
* ``staged`` - stage 1 is the ``--since`` window (e.g. ``2y``: the two most recent
  years), stage 2 the rest; a re-run continues with whatever stage is unfinished.
* ``parallel`` - only the ``--since`` window moves; the legacy stays the system of
  record for older priors (a viewer looks them up there).

Study lists are *streamed*: from the legacy store's index when the source is a
directory (one ordered read, :func:`simulators.dicom.store.studies_by_date`), otherwise
by Study Root C-FIND in date windows of one year, so no single answer and no list in
memory grows with the archive.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, Sequence

from simulators.dicom.store import studies_by_date
from simulators.errors import ConfigError

Strategy = Literal["full", "staged", "parallel"]
STRATEGIES: tuple[str, ...] = ("full", "staged", "parallel")
#: Oldest StudyDate a C-FIND window walk starts from.
FIRST_YEAR = 1980
_SINCE = re.compile(r"^\s*(\d{1,3})\s*([dwmy])\s*$")
_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


@dataclass(frozen=True, slots=True)
class StudyRef:
    """One study to migrate: what planning and the checkpoint need, nothing more."""

    study_uid: str
    study_date: str = ""
    patient_id: str = ""


@dataclass(frozen=True, slots=True)
class Stage:
    """A slice of the archive by StudyDate: ``since <= date`` and/or ``date < before``
    (YYYYMMDD; empty = open). A study whose date is empty or not a date belongs to
    the stage with no lower bound (it cannot be shown to be recent)."""

    name: str
    since: str = ""
    before: str = ""

    def holds(self, study_date: str) -> bool:
        valid = len(study_date) == 8 and study_date.isdigit()
        if self.since and (not valid or study_date < self.since):
            return False
        return not (self.before and valid and study_date >= self.before)


def parse_since(text: str | None) -> dt.timedelta:
    """``2y``, ``18m``, ``6w``, ``30d`` -> timedelta; ConfigError naming ``--since``."""
    match = _SINCE.match(text or "")
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"--since: expected a period like 2y, 18m, 6w or 30d, got {text!r}",
                          field="since")
    return dt.timedelta(days=int(match.group(1)) * _DAYS[match.group(2)])


def stages_for(strategy: str, since: str | None, today: dt.date | None = None) -> list[Stage]:
    """The stages of a strategy, in the order they run."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}",
                          field="strategy")
    if strategy == "full":
        return [Stage("all")]
    today = today or dt.date.today()
    boundary = (today - parse_since(since or "2y")).strftime("%Y%m%d")
    recent = Stage(f"since {since or '2y'}", since=boundary)
    if strategy == "parallel":
        return [recent]
    return [recent, Stage("older", before=boundary)]


def batches(refs: Iterable[StudyRef], size: int) -> Iterator[list[StudyRef]]:
    """Groups of ``size`` studies from a stream (the last one may be shorter)."""
    if size < 1:
        raise ConfigError("--batch must be at least 1", field="batch")
    batch: list[StudyRef] = []
    for ref in refs:
        batch.append(ref)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def studies_from_index(db_path: Path, stage: Stage) -> Iterator[StudyRef]:
    """Stream a legacy directory's studies of ``stage`` from its store index, oldest first.

    The store reads its index read-only and on a connection of its own: the archive
    serving the directory keeps writing; the planner must never lock it.
    """
    for study in studies_by_date(db_path):
        if stage.holds(study.study_date):
            yield StudyRef(study.study_uid, study.study_date, study.patient_id)


#: C-FIND STUDY level for one date range ("YYYYMMDD-YYYYMMDD"); returns the refs found.
StudyFinder = Callable[[str], Sequence[StudyRef]]


def studies_by_find(find: StudyFinder, stage: Stage, today: dt.date | None = None
                    ) -> Iterator[StudyRef]:
    """Stream a remote legacy's studies of ``stage`` by C-FIND, one year window at a time.

    Windows keep every answer bounded (a legacy with 100k studies answers ~10k per
    year, not everything at once). Studies without a valid date cannot be found by a
    range; they are a known gap of AE sources (a DIR source lists them from its index).
    """
    today = today or dt.date.today()
    start = dt.date(FIRST_YEAR, 1, 1)
    if stage.since:
        start = max(start, dt.datetime.strptime(stage.since, "%Y%m%d").date())
    end = today + dt.timedelta(days=1)
    if stage.before:
        end = min(end, dt.datetime.strptime(stage.before, "%Y%m%d").date())
    cursor = start
    while cursor < end:
        window_end = min(dt.date(cursor.year + 1, 1, 1), end)
        last = window_end - dt.timedelta(days=1)
        found = sorted(find(f"{cursor:%Y%m%d}-{last:%Y%m%d}"),
                       key=lambda r: (r.study_date, r.study_uid))
        yield from (ref for ref in found if stage.holds(ref.study_date))
        cursor = window_end


__all__ = ["StudyRef", "Stage", "Strategy", "STRATEGIES", "parse_since", "stages_for",
           "batches", "studies_from_index", "studies_by_find"]
