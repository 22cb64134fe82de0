"""Probe registry and verdicts: run one fault against a target, judge the answer.

A probe is a function registered under a catalogue id. It sends the fault over real
sockets and returns an :class:`Observation` (what it sent, what came back, the yes/no
facts it checked). :func:`run` wraps it with the invariant snapshots when the entry
asks for them, and :func:`judge` compares the observation with the catalogue's
expected answer. Keeping judging separate from probing means the rules for
"conformant" live in one place for every fault.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from pydicom.dataset import Dataset
from pynetdicom.status import code_to_category

from simulators.errors import PacsimError
from simulators.faults import invariants
from simulators.injection.model import (
    ABORT, ACK, BEHAVIOUR, CONFORMANT, DIMSE, ERROR, IMPLEMENTATION_DEFINED, NON_CONFORMANT,
    NOT_SUPPORTED, OPEN, REJECT, Fault, Observation, Outcome,
)
from simulators.faults.scu import find_mwl
from simulators.faults.target import STATION_AE, STATION_NAME, Target
from simulators.dicom.worklist import build_worklist_item
from simulators.world.world import World

log = logging.getLogger(__name__)

Probe = Callable[[Target, "ProbeRun"], Observation]
PROBES: dict[str, Probe] = {}


def probe(fault_id: str) -> Callable[[Probe], Probe]:
    """Register ``fn`` as the probe of ``fault_id``."""
    def register(fn: Probe) -> Probe:
        if fault_id in PROBES:
            raise ValueError(f"two probes for {fault_id}")
        PROBES[fault_id] = fn
        return fn
    return register


@dataclass
class ProbeRun:
    """Shared state of one catalogue run: worklist items to use, keys a probe may touch."""

    target: Target
    world: World = field(default_factory=lambda: World(99))
    allowed: set[str] = field(default_factory=set)
    _items: list[Dataset] | None = None
    _next: int = 0

    def fresh_item(self) -> Dataset:
        """A worklist item no earlier probe used (or a synthetic one), marked allowed."""
        if self._items is None:
            self._items = []
            if self.target.dicom is not None:
                try:
                    _, self._items = find_mwl(self.target.dicom, self.target.calling_ae)
                except PacsimError:
                    self._items = []
        if self._next < len(self._items):
            item = self._items[self._next]
        else:
            index = 10_000 + self._next
            order = self.world.order(self.world.patient(index), "CT", station_ae=STATION_AE,
                                     station_name=STATION_NAME, index=index,
                                     start=dt.datetime.now().replace(microsecond=0))
            item = build_worklist_item(order)
        self._next += 1
        self.allowed.add(invariants.item_key(item))
        return item


def is_failure(status: int | None) -> bool:
    return status is not None and code_to_category(status) == "Failure"


def _status_text(status: int | None) -> str:
    return "no response" if status is None else f"{status:04X}"


def judge(fault: Fault, obs: Observation) -> tuple[str, str]:
    """(verdict, detail) for what the target answered."""
    exp = fault.expected
    if obs.unsupported:
        return NOT_SUPPORTED, obs.unsupported
    failed = [name for name, ok in obs.checks.items() if not ok]
    problems = failed + obs.changed
    if obs.changed:
        return NON_CONFORMANT, "; ".join(problems)
    if exp.kind == DIMSE:
        ok = obs.status in exp.statuses or (exp.any_failure and is_failure(obs.status))
        if ok and not failed:
            return CONFORMANT, ""
        if obs.open_reason and not failed:
            return IMPLEMENTATION_DEFINED, obs.open_reason
        return NON_CONFORMANT, "; ".join(failed) or f"expected {exp.describe()}"
    if exp.kind == REJECT:
        if obs.reject == exp.reject and not failed:
            return CONFORMANT, ""
        if obs.open_reason and not failed:
            return IMPLEMENTATION_DEFINED, obs.open_reason
        return NON_CONFORMANT, "; ".join(failed) or f"expected {exp.describe()}"
    if exp.kind == ACK:
        ok = obs.ack_code in exp.ack_codes and (not exp.err_codes or obs.err_code in exp.err_codes)
        return (CONFORMANT, "") if ok and not failed else (
            NON_CONFORMANT, "; ".join(failed) or f"expected {exp.describe()}")
    if exp.kind in (BEHAVIOUR, ABORT):
        if exp.statuses and obs.status not in exp.statuses and not obs.open_reason:
            return NON_CONFORMANT, f"expected status {exp.describe()}"
        if failed:
            return NON_CONFORMANT, "; ".join(failed)
        if obs.open_reason:
            return IMPLEMENTATION_DEFINED, obs.open_reason
        return CONFORMANT, ""
    if exp.kind == OPEN:
        return (NON_CONFORMANT, "; ".join(failed)) if failed else (
            IMPLEMENTATION_DEFINED, obs.open_reason or "the standard leaves this open")
    return ERROR, f"unknown expectation kind {exp.kind}"


def answered_text(obs: Observation) -> str:
    if obs.unsupported and not obs.answered:
        return "-"
    if obs.answered:
        return obs.answered
    if obs.reject:
        return "A-ASSOCIATE-RJ %d/%d/%d" % obs.reject
    if obs.ack_code:
        return obs.ack_code + (f" ERR {obs.err_code}" if obs.err_code is not None else "")
    if obs.status is not None or not (obs.aborted or obs.closed):
        return _status_text(obs.status)
    return "A-ABORT" if obs.aborted else "connection closed"


def run(target: Target, fault: Fault, session: ProbeRun) -> Outcome:
    """Run ``fault``'s probe against ``target`` (with invariants) and judge it."""
    started = time.perf_counter()
    fn = PROBES.get(fault.id)
    if fn is None:
        return Outcome(fault, ERROR, "", "", "no probe registered")
    try:
        before = invariants.take(target) if fault.invariant and target.dicom else None
        session.allowed = set()
        obs = fn(target, session)
        if before is not None and not obs.unsupported:
            after = invariants.take(target)
            obs.changed = invariants.changes(before, after, session.allowed)
    except (PacsimError, OSError, LookupError, ValueError) as exc:
        log.warning("probe %s failed: %s", fault.id, exc)
        return Outcome(fault, ERROR, "", "", f"probe could not run: {exc}",
                       time.perf_counter() - started)
    verdict, detail = judge(fault, obs)
    return Outcome(fault, verdict, obs.sent, answered_text(obs), detail,
                   time.perf_counter() - started)


__all__ = ["PROBES", "probe", "ProbeRun", "judge", "run", "is_failure", "answered_text"]
