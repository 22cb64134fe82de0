"""The pathways library: patient journeys as data, run one action after another.

Why data: a trainer's hospital differs from ours (no merge pathway, a longer wait
before the report). A pathway is a name, a description and a list of actions
(``{do: order, patient: other}``) read from ``scenarios/sandbox/hospital-day.yaml``
(or a file of the site's own); the actions themselves live in
:mod:`simulators.sandbox.actions`. Unknown actions or arguments are a ConfigError
when the file is loaded, not half-way through a training session.

A running pathway (:class:`PathwayRun`) holds only what its next actions need
(its patients, orders and exams); when it ends, the sandbox keeps a counter and
drops the run, so memory stays flat however long the day.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from simulators.errors import ConfigError
from simulators.world.models import Order, Patient

#: The library that ships with pacsim.
DEFAULT_DAY = Path(__file__).resolve().parents[2] / "scenarios" / "sandbox" / "hospital-day.yaml"
ROLES = ("main", "other")
#: Each action and the arguments it takes (besides ``do``).
ACTIONS: dict[str, frozenset[str]] = {
    "admit": frozenset({"patient"}),
    "register": frozenset({"patient"}),
    "order": frozenset({"patient", "priority"}),
    "worklist": frozenset({"patient"}),
    "perform": frozenset({"patient", "images", "outcome"}),
    "report": frozenset({"patient"}),
    "cancel": frozenset({"patient"}),
    "merge": frozenset({"surviving", "merged"}),
    "priors": frozenset({"studies"}),
    "unscheduled": frozenset({"images"}),
    "wait": frozenset({"minutes"}),
}
#: States a pathway is counted under.
STATES = ("running", "completed", "failed", "interrupted")
_run_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Action:
    do: str
    args: Mapping[str, Any]

    def role(self, key: str = "patient") -> str:
        return str(self.args.get(key, "main"))


@dataclass(frozen=True, slots=True)
class Pathway:
    name: str
    description: str
    actions: tuple[Action, ...]


@dataclass
class PathwayRun:
    """One patient's pathway in progress (forgotten when it ends)."""

    pathway: Pathway
    modality: str
    station: str
    run_id: int = field(default_factory=lambda: next(_run_ids))
    state: str = "running"
    step: int = 0
    error: str = ""
    patients: dict[str, Patient] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    exams: dict[str, Any] = field(default_factory=dict)
    started_sim: float = 0.0
    display_name: str | None = None
    #: Studies this pathway put in the target (kept until it ends, for the API's answer).
    study_uids: list[str] = field(default_factory=list)
    #: What the wire answered at the end: MPPS final state and status, the ORU's ACK.
    outcome: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        main = self.patients.get("main")
        return {"id": self.run_id, "pathway": self.pathway.name, "modality": self.modality,
                "station": self.station, "state": self.state, "step": self.step,
                "action": (self.pathway.actions[self.step].do
                           if self.step < len(self.pathway.actions) else "done"),
                "patient_id": main.patient_id if main else None,
                "patient_name": main.dicom_name if main else None,
                "accession": self.orders["main"].accession if "main" in self.orders else None,
                "study_uids": list(self.study_uids), "outcome": dict(self.outcome),
                "identifiers": self.identifiers(), "error": self.error}

    def identifiers(self) -> list[str]:
        """Every patient ID, accession and study UID this pathway produced."""
        found = [p.patient_id for p in self.patients.values()]
        found += [o.accession for o in self.orders.values()]
        return sorted(set(found + [o.study_uid for o in self.orders.values()]
                          + self.study_uids))


def _action(entry: Any, where: str) -> Action:
    if not isinstance(entry, Mapping) or "do" not in entry:
        raise ConfigError(f"{where}: each step is a mapping with 'do:'")
    name = str(entry["do"])
    if name not in ACTIONS:
        raise ConfigError(f"{where}: unknown action {name!r}", known=",".join(sorted(ACTIONS)))
    args = {k: v for k, v in entry.items() if k != "do"}
    unknown = sorted(set(args) - ACTIONS[name])
    if unknown:
        raise ConfigError(f"{where}: {name} takes no {', '.join(unknown)}",
                          allowed=",".join(sorted(ACTIONS[name])) or "nothing")
    for key in ("patient", "surviving", "merged"):
        if key in args and args[key] not in ROLES:
            raise ConfigError(f"{where}: {key} is one of {', '.join(ROLES)}", value=args[key])
    if name == "wait" and not 0 <= float(args.get("minutes", 0)) <= 24 * 60:
        raise ConfigError(f"{where}: wait minutes must be between 0 and 1440")
    return Action(name, args)


def parse_pathways(data: Mapping[str, Any]) -> dict[str, Pathway]:
    """``pathways:`` of a hospital-day document -> pathways by name."""
    raw = data.get("pathways")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("a hospital day needs a 'pathways:' mapping")
    found = {}
    for name, body in raw.items():
        steps = body.get("steps") if isinstance(body, Mapping) else None
        if not isinstance(steps, list) or not steps:
            raise ConfigError(f"pathway {name}: 'steps:' is a non-empty list")
        actions = tuple(_action(entry, f"pathway {name} step {n}")
                        for n, entry in enumerate(steps, start=1))
        found[str(name)] = Pathway(str(name), str(body.get("description", name)), actions)
    return found


def load_day(path: str | Path | None = None) -> dict[str, Any]:
    """The hospital-day document (pathways and arrivals) as plain data."""
    source = Path(path) if path else DEFAULT_DAY
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the hospital day {source}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a hospital day is a mapping")
    return data


class PathwayCounters:
    """Counts per (pathway, state): all that remains of finished pathways."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {}
        self.dropped = 0

    def move(self, name: str, before: str | None, after: str) -> None:
        with self._lock:
            states = self.counts.setdefault(name, dict.fromkeys(STATES, 0))
            if before is not None:
                states[before] -= 1
            states[after] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_pathway = {name: dict(states) for name, states in sorted(self.counts.items())}
        totals = dict.fromkeys(STATES, 0)
        for states in by_pathway.values():
            for state, value in states.items():
                totals[state] += value
        return {"by_pathway": by_pathway, "totals": totals, "dropped": self.dropped}


__all__ = ["Pathway", "PathwayRun", "Action", "ACTIONS", "STATES", "ROLES", "parse_pathways",
           "load_day", "PathwayCounters", "DEFAULT_DAY"]
