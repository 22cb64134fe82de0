"""Fault profiles on actors: which faults fire, how often, and on which exchange.

An actor's config carries ``faults: [...]``; each entry is a catalogue id, a ready
profile name, or a mapping ``{id: ..., rate: 0.1, nth: 3, every: 10, seed: 7}``.
Targeting is counted per hook ("the 3rd MPPS N-CREATE this modality sends", "every
10th C-STORE"), and ``rate`` draws from a ``random.Random`` seeded from the rule, so
the same profile on the same run always hits the same exchanges: a failing
scenario can be replayed exactly.
"""

from __future__ import annotations

import random
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from simulators.errors import ConfigError
from simulators.injection.catalogue import BY_ID

#: Ready profiles: a name for a list of rules.
PROFILES: dict[str, tuple[Mapping[str, Any], ...]] = {
    # The playbook's bad scanner: one of everything that corrupts worklists elsewhere.
    "malformed-mpps-scanner": (
        {"id": "mpps.create-not-in-progress", "nth": 1},
        {"id": "mpps.create-missing-type1", "nth": 2},
        {"id": "mpps.wrong-patient", "nth": 3},
        {"id": "mpps.wrong-study-uid", "nth": 4},
        {"id": "mpps.bad-vr", "nth": 5},
        # N-SET faults: the after-final one on the first N-SET (and every 5th), so it is
        # never masked by set-create-only-attr refusing the same N-SET first.
        {"id": "mpps.set-after-final", "nth": 1},
        {"id": "mpps.set-create-only-attr", "every": 2},
        {"id": "mpps.complete-without-series", "every": 3},
        {"id": "mpps.set-after-final", "every": 5},
    ),
    "bad-hl7-sender": (
        {"id": "hl7.required-missing", "nth": 1},
        {"id": "hl7.bad-table-value", "nth": 2},
        {"id": "hl7.duplicate-control-id", "every": 3},
        {"id": "mllp.lf-separators", "every": 5},
    ),
}

#: Faults each actor kind can inject itself (the others need two actors or raw bytes:
#: ``pacsim faults run`` probes them).
MODALITY_FAULTS = frozenset({
    "mpps.create-not-in-progress", "mpps.create-missing-type1", "mpps.create-empty-type1",
    "mpps.create-duplicate", "mpps.wrong-study-uid", "mpps.wrong-patient", "mpps.unscheduled",
    "mpps.bad-vr", "mpps.charset", "mpps.set-unknown", "mpps.set-after-final",
    "mpps.set-create-only-attr", "mpps.set-unknown-status", "mpps.complete-without-series",
    "mpps.orphan", "mpps.discontinued", "store.sop-mismatch", "store.missing-type1",
    "store.duplicate-uid-different-content", "mwl.wrong-identifier",
})
EHR_FAULTS = frozenset({
    "hl7.required-missing", "hl7.unsupported-event", "hl7.unsupported-message-type",
    "hl7.bad-table-value", "hl7.bad-order-control", "hl7.bad-date", "hl7.duplicate-control-id",
    "mllp.lf-separators", "mllp.no-start-block", "mllp.no-end-block", "mllp.oversize",
    "mllp.split",
})
#: Where the actor asks "which faults now?": the hook a fault fires at, by actor.
ACTOR_HOOK = {"mpps.orphan": "modality.mpps.n-set", "mpps.discontinued": "modality.mpps.n-set",
              "mpps.set-unknown": "modality.mpps.n-set",
              "mpps.set-after-final": "modality.mpps.n-set",
              "mpps.create-duplicate": "modality.mpps.n-create"}


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault with its targeting. Without nth/every/rate the fault fires every time."""

    id: str
    rate: float = 1.0
    nth: int | None = None
    every: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.id not in BY_ID:
            raise ConfigError(f"unknown fault {self.id!r}", known=", ".join(sorted(BY_ID)))
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError("fault rate must be between 0 and 1", fault=self.id, rate=self.rate)
        for name in ("nth", "every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"fault {name} must be at least 1", fault=self.id)
        if self.nth is not None and self.every is not None:
            raise ConfigError("a fault takes nth or every, not both", fault=self.id)

    @property
    def hook(self) -> str:
        return ACTOR_HOOK.get(self.id, BY_ID[self.id].hook)


def parse_faults(entries: Iterable[Any], *, allowed: frozenset[str] | None = None,
                 actor: str = "actor") -> tuple[FaultRule, ...]:
    """Config entries (ids, profile names, mappings) as validated rules."""
    rules: list[FaultRule] = []
    for entry in entries or ():
        if isinstance(entry, FaultRule):
            rules.append(entry)
            continue
        if isinstance(entry, str) and entry in PROFILES:
            rules.extend(FaultRule(**dict(rule)) for rule in PROFILES[entry])
            continue
        if isinstance(entry, Mapping) and "profile" in entry:
            name = str(entry["profile"])
            if name not in PROFILES:
                raise ConfigError(f"unknown fault profile {name!r}", known=", ".join(PROFILES))
            rules.extend(FaultRule(**dict(rule)) for rule in PROFILES[name])
            continue
        if isinstance(entry, str):
            rules.append(FaultRule(entry))
            continue
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"id", "rate", "nth", "every", "seed"}
            if unknown or "id" not in entry:
                raise ConfigError("a fault entry needs id and takes rate, nth, every, seed",
                                  entry=dict(entry))
            rules.append(FaultRule(str(entry["id"]), float(entry.get("rate", 1.0)),
                                   _optional_int(entry.get("nth")),
                                   _optional_int(entry.get("every")), int(entry.get("seed", 0))))
            continue
        raise ConfigError(f"cannot read fault entry {entry!r}")
    if allowed is not None:
        for rule in rules:
            if rule.id not in allowed:
                raise ConfigError(f"the {actor} cannot inject {rule.id}; "
                                  "run it with `pacsim faults run`", fault=rule.id)
    return tuple(rules)


#: ``only:`` keys of a scenario fault entry and the rule field each one sets.
SCENARIO_TARGETING = {"nth": "nth", "study": "nth", "exam": "nth", "every": "every",
                      "seed": "seed"}


def scenario_faults(refs: Iterable[Any], *, actor: str = "actor") -> tuple[Any, ...]:
    """A scenario actor's ``faults:`` (``FaultRef``: id, rate, only) as parser entries.

    A bare id or profile name passes through; ``{id, rate, only: {nth: 3}}`` becomes
    ``{id, rate, nth: 3}`` (``only`` also takes ``study``/``exam`` for nth, ``every``,
    ``seed``; ``nth``/``every``/``seed`` on the entry itself are read too when the
    scenario model has them). Ids and counts are still validated by :func:`parse_faults`,
    so the rules live in one place."""
    entries: list[Any] = []
    for ref in refs:
        targeting = dict(getattr(ref, "only", None) or {})
        for key in ("nth", "every", "seed"):
            if getattr(ref, key, None) is not None:
                targeting[key] = getattr(ref, key)
        unknown = sorted(set(targeting) - set(SCENARIO_TARGETING))
        if unknown:
            raise ConfigError(f"{actor}: fault {ref.id} has unknown targeting "
                              f"{', '.join(unknown)}", allowed=",".join(SCENARIO_TARGETING))
        rate = float(getattr(ref, "rate", 1.0))
        if ref.id in PROFILES:
            if targeting or rate != 1.0:
                raise ConfigError(f"{actor}: the profile {ref.id} has its own targeting; "
                                  "list its faults one by one to change it")
            entries.append(ref.id)
            continue
        entry: dict[str, Any] = {"id": ref.id, "rate": rate}
        entry.update({SCENARIO_TARGETING[key]: value for key, value in targeting.items()})
        entries.append(entry)
    return tuple(entries)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class FaultInjector:
    """Decides, per opportunity at a hook, which faults fire; records what fired."""

    rules: tuple[FaultRule, ...] = ()
    fired: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._random = {rule: random.Random(zlib.crc32(f"{rule.id}:{rule.seed}".encode()))
                        for rule in self.rules}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def pick(self, hook: str) -> list[str]:
        """The fault ids that fire at this opportunity of ``hook`` (counted from 1)."""
        if not self.rules:
            return []
        with self._lock:
            count = self._counts[hook] = self._counts.get(hook, 0) + 1
            chosen = []
            for rule in self.rules:
                if rule.hook != hook:
                    continue
                if rule.nth is not None and count != rule.nth:
                    continue
                if rule.every is not None and count % rule.every:
                    continue
                if rule.rate < 1.0 and self._random[rule].random() >= rule.rate:
                    continue
                chosen.append(rule.id)
                self.fired.append((hook, rule.id, count))
            return chosen


__all__ = ["FaultRule", "FaultInjector", "PROFILES", "parse_faults", "scenario_faults",
           "MODALITY_FAULTS", "EHR_FAULTS"]
