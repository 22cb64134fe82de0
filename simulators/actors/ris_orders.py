"""The RIS's order book: orders, their scheduled steps, patients and MPPS links.

Why separate from the actor: every protocol front (HL7 listener, MWL SCP, MPPS SCP,
direct ``schedule()`` calls from scenarios) changes the same state from its own
thread, so the rules live in one lock-protected place. The invariant FAULTS.md
insists on is enforced here: an MPPS changes an order only when *every* field of its
Scheduled Step Attributes item (accession, requested procedure ID, step ID, study
UID) and, when sent, the patient ID agree with that order; anything else is
recorded as unmatched and touches nothing.

Worklist datasets are cached per accession and rebuilt only when the order changes,
so a broad query over thousands of items costs matching, not dataset building.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from pydicom.dataset import Dataset

from simulators.dicom.mpps import COMPLETED, DISCONTINUED, IN_PROGRESS, MppsInstance, StepReference
from simulators.dicom.mwl_index import WorklistRecord
from simulators.dicom.worklist import build_worklist_item
from simulators.errors import WorldError
from simulators.world.models import Order, Patient

#: Step states a modality still sees on the worklist (an IN PROGRESS step stays
#: visible as STARTED, so a second device can see it is taken).
VISIBLE_STEP_STATES = frozenset({"SCHEDULED", "ARRIVED", "READY", "STARTED"})
FINAL_STEP_STATES = frozenset({"COMPLETED", "DISCONTINUED"})
#: What each MPPS state means for the scheduled step it performs.
STEP_STATE_FOR_MPPS = {IN_PROGRESS: "STARTED", COMPLETED: "COMPLETED",
                       DISCONTINUED: "DISCONTINUED"}


@dataclass(frozen=True, slots=True)
class MppsLink:
    """Which orders one MPPS instance changed (empty ``accessions`` = unscheduled)."""

    sop_instance_uid: str
    accessions: tuple[str, ...]
    unmatched: tuple[StepReference, ...]


class OrderBook:
    """Thread-safe store of orders keyed by accession number."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._orders: dict[str, Order] = {}
        self._items: dict[str, WorklistRecord] = {}
        #: Bumped by every change of an order: what an AnswerMemo entry is valid for.
        self._version = 0
        self._patients: dict[str, Patient] = {}
        self._merged_into: dict[str, str] = {}
        self._mpps_links: dict[str, MppsLink] = {}

    # ------------------------------------------------------------------ orders
    def schedule(self, order: Order) -> Order:
        """Add a new order (or replace a not-yet-started one with the same accession)."""
        with self._lock:
            existing = self._orders.get(order.accession)
            if existing is not None and existing.step.status not in ("SCHEDULED", "DISCONTINUED"):
                raise WorldError("an order with this accession is already being performed",
                                 accession=order.accession, status=existing.step.status)
            survivor = self._merged_into.get(order.patient.patient_id)
            if survivor is not None and survivor in self._patients:
                # An order for an already merged ID belongs to the surviving patient.
                order = order.with_changes(patient=self._patients[survivor])
            patient = self._patients.get(order.patient.patient_id)
            if patient is not None and patient != order.patient:
                # The RIS's registered demographics win over stale copies in the order.
                order = order.with_changes(patient=patient)
            self._patients.setdefault(order.patient.patient_id, order.patient)
            self._store(order)
            return order

    def cancel(self, accession: str) -> Order | None:
        """Cancel (ORM CA): the step becomes DISCONTINUED and leaves the worklist."""
        return self.set_step_status(accession, "DISCONTINUED")

    def set_step_status(self, accession: str, status: str) -> Order | None:
        with self._lock:
            order = self._orders.get(accession)
            if order is None:
                return None
            changed = order.with_changes(step=replace(order.step, status=status))
            self._store(changed)
            return changed

    def find_by_placer(self, placer_number: str) -> Order | None:
        with self._lock:
            return next((o for o in self._orders.values() if o.placer_number == placer_number),
                        None)

    def order(self, accession: str) -> Order | None:
        with self._lock:
            return self._orders.get(accession)

    def orders(self) -> list[Order]:
        """A snapshot of every order (frozen records: safe to hand out)."""
        with self._lock:
            return list(self._orders.values())

    def worklist_items(self) -> list[Dataset]:
        """The MWL items of every visible step. The datasets are shared, read-only."""
        return [record.dataset for record in self.worklist_records()]

    def worklist_records(self) -> list[WorklistRecord]:
        """The visible steps' items with their plain values and cached answers (shared)."""
        return self.worklist_snapshot()[1]

    def worklist_snapshot(self) -> tuple[int, list[WorklistRecord]]:
        """(version, visible records), read together under the lock."""
        with self._lock:
            return self._version, [self._items[a] for a, o in self._orders.items()
                                   if o.step.status in VISIBLE_STEP_STATES]

    def _store(self, order: Order) -> None:
        """Every change of an order goes through here: a new record, so the encoded
        answers cached for the old item are dropped with it."""
        self._orders[order.accession] = order
        self._items[order.accession] = WorklistRecord.of(build_worklist_item(order))
        self._version += 1

    # ---------------------------------------------------------------- patients
    def register_patient(self, patient: Patient) -> int:
        """ADT A01/A04/A08: record demographics and carry them to that patient's open
        orders. Returns how many orders changed."""
        with self._lock:
            self._patients[patient.patient_id] = patient
            changed = 0
            for order in list(self._orders.values()):
                if order.patient.patient_id == patient.patient_id and order.patient != patient:
                    self._store(order.with_changes(patient=patient))
                    changed += 1
            return changed

    def patient(self, patient_id: str) -> Patient | None:
        with self._lock:
            return self._patients.get(patient_id)

    def merge(self, surviving: Patient, merged_id: str) -> int:
        """ADT A40: every order of ``merged_id`` moves to ``surviving``; the merged ID
        disappears from the worklist. Returns how many orders moved."""
        with self._lock:
            self._patients[surviving.patient_id] = surviving
            self._patients.pop(merged_id, None)
            self._merged_into[merged_id] = surviving.patient_id
            moved = 0
            for order in list(self._orders.values()):
                if order.patient.patient_id in (merged_id, surviving.patient_id) and \
                        order.patient != surviving:
                    moved += order.patient.patient_id == merged_id
                    self._store(order.with_changes(patient=surviving))
            return moved

    def merged_into(self, patient_id: str) -> str | None:
        with self._lock:
            return self._merged_into.get(patient_id)

    # -------------------------------------------------------------------- MPPS
    def _matching_order(self, ref: StepReference, patient_id: str) -> Order | None:
        if ref.is_unscheduled:
            return None
        order = self._orders.get(ref.accession)
        if order is None:
            return None
        if (order.requested_procedure_id, order.step.step_id, order.study_uid) != (
                ref.requested_procedure_id, ref.step_id, ref.study_uid):
            return None
        if patient_id and patient_id != order.patient.patient_id:
            return None  # wrong patient: never attach another patient's procedure
        return order

    def apply_mpps(self, instance: MppsInstance) -> MppsLink:
        """Move the referenced steps to the state the MPPS reached.

        Only exact matches change; a step already COMPLETED/DISCONTINUED keeps its
        final state (a late or duplicate MPPS must not reopen it).
        """
        target = STEP_STATE_FOR_MPPS.get(instance.status)
        patient_id = str(instance.dataset.get("PatientID", "") or "").strip()
        with self._lock:
            matched: list[str] = []
            unmatched: list[StepReference] = []
            for ref in instance.references:
                order = self._matching_order(ref, patient_id)
                if order is None:
                    unmatched.append(ref)
                    continue
                matched.append(order.accession)
                if target and order.step.status not in FINAL_STEP_STATES:
                    self._store(order.with_changes(step=replace(order.step, status=target)))
            link = MppsLink(instance.sop_instance_uid, tuple(matched), tuple(unmatched))
            self._mpps_links[instance.sop_instance_uid] = link
            return link

    def mpps_link(self, sop_instance_uid: str) -> MppsLink | None:
        with self._lock:
            return self._mpps_links.get(sop_instance_uid)


__all__ = ["OrderBook", "MppsLink", "VISIBLE_STEP_STATES", "STEP_STATE_FOR_MPPS"]
