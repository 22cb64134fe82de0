"""The invariant behind every MPPS fault: nothing *else* changed.

One malformed scanner must not corrupt worklist data for the rest of the site. A
snapshot is taken before and after the faulty exchange: every worklist item read
back over the wire (MWL C-FIND, so it works against any target) and, when the target
is the built-in RIS, every order in its order book too. ``changes`` names each item
that differs, except the ones the faulty exchange was *allowed* to move (the step
it legitimately started), so reports can say exactly what a bad scanner damaged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from pydicom.dataset import Dataset

from simulators.errors import PacsimError
from simulators.faults.scu import find_mwl
from simulators.faults.target import Target

#: What an item is compared on (a change in any of these is corruption).
_TOP = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
        "RequestedProcedureID")
_STEP = ("ScheduledProcedureStepID", "ScheduledProcedureStepStatus", "Modality",
         "ScheduledStationAETitle", "ScheduledProcedureStepStartDate")


def item_key(item: Dataset) -> str:
    """Accession number, else study UID + step ID: how an item is recognised."""
    accession = str(item.get("AccessionNumber", "") or "")
    if accession:
        return accession
    steps = item.get("ScheduledProcedureStepSequence") or [Dataset()]
    return f"{item.get('StudyInstanceUID', '')}/{steps[0].get('ScheduledProcedureStepID', '')}"


def item_summary(item: Dataset) -> tuple[str, ...]:
    steps = item.get("ScheduledProcedureStepSequence") or [Dataset()]
    return tuple(str(item.get(k, "") or "") for k in _TOP) + tuple(
        str(steps[0].get(k, "") or "") for k in _STEP)


#: An order as the invariants compare it: (dotted field, value) pairs, in field order.
OrderSummary = tuple[tuple[str, str], ...]


def order_summary(order: Any) -> OrderSummary:
    """Every field of an order (nested ones dotted: ``patient.patient_id``, ``step.status``)
    as text, so a change can be reported field by field instead of as "it differs"."""
    def flatten(value: Any, prefix: str) -> list[tuple[str, str]]:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            pairs: list[tuple[str, str]] = []
            for item in dataclasses.fields(value):
                pairs += flatten(getattr(value, item.name), f"{prefix}{item.name}.")
            return pairs
        return [(prefix.rstrip("."), str(value))]

    return tuple(flatten(order, ""))


@dataclass
class Snapshot:
    """Worklist items (by key) and, for the built-in RIS, orders (by accession)."""

    items: dict[str, tuple[str, ...]] = field(default_factory=dict)
    orders: dict[str, OrderSummary] = field(default_factory=dict)
    complete: bool = True

    def __str__(self) -> str:  # what a report shows for a saved $snapshot
        return f"{len(self.items)} worklist item(s), {len(self.orders)} order(s)"


def take(target: Target) -> Snapshot:
    """Read the whole worklist (and the RIS's order book when we own the RIS)."""
    snapshot = Snapshot()
    if target.dicom is not None:
        try:
            final, items = find_mwl(target.dicom, target.calling_ae)
        except (PacsimError, ValueError, RuntimeError):
            final, items = None, []  # no worklist on this target: orders only
        snapshot.complete = final == 0x0000
        snapshot.items = {item_key(item): item_summary(item) for item in items}
    if target.ris is not None:
        snapshot.orders = {order.accession: order_summary(order) for order in target.ris.orders()}
    return snapshot


def changes(before: Snapshot, after: Snapshot, allowed: Iterable[str] = ()) -> list[str]:
    """Human lines naming every item or order that changed, except ``allowed`` keys."""
    skip = set(allowed)
    fields = _TOP + _STEP
    return [
        *_differences("worklist item {}", ("", ""), before.items, after.items, skip,
                      lambda old, new: _how(zip(fields, old), zip(fields, new))),
        *_differences("order {}", (" in the RIS", " from the RIS"), before.orders,
                      after.orders, skip, _how),
    ]


def _differences(label: str, where: tuple[str, str], before: dict[str, Any],
                 after: dict[str, Any], skip: set[str],
                 how: Callable[[Any, Any], str]) -> list[str]:
    """One line per key that appeared, disappeared or changed between two mappings;
    ``where`` is the (in, from) suffix naming the system that holds them."""
    inside, outside = where
    found: list[str] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if key in skip or old == new:
            continue
        name = label.format(key)
        if old is None:
            found.append(f"{name} appeared{inside}")
        elif new is None:
            found.append(f"{name} disappeared{outside}")
        else:
            found.append(f"{name} changed{inside}: {how(old, new)}")
    return found


def _how(old: Iterable[tuple[str, str]], new: Iterable[tuple[str, str]]) -> str:
    """``Field 'a' -> 'b'`` for every field whose value differs (same field order)."""
    before, after = dict(old), dict(new)
    return ", ".join(f"{name} {before.get(name, '')!r} -> {after.get(name, '')!r}"
                     for name in dict.fromkeys([*before, *after])
                     if before.get(name) != after.get(name))


__all__ = ["Snapshot", "OrderSummary", "take", "changes", "item_key", "item_summary",
           "order_summary"]
