"""The Modality Performed Procedure Step SCP state machine (DICOM PS3.4 Annex F.7).

Why a reusable manager: the RIS and (optionally) the archive are both MPPS SCPs, and
the MPPS fault catalogue (FAULTS.md) is about one thing, answering a malformed scanner
with the status the standard prescribes while leaving every *other* order untouched.
The manager owns the instances and their states; the owner (RIS, archive) learns about
transitions through callbacks and decides what a transition does to its orders.

States (PS3.4 F.1, Tables F.1-3/F.1-4): ``IN PROGRESS`` -> ``COMPLETED`` or
``DISCONTINUED``; both final. Status codes (PS3.7 Annex C, PS3.4 F.7.2):

================================================  ======  ================================
situation                                          status  standard text
================================================  ======  ================================
N-CREATE with a status other than IN PROGRESS      0106    F.7.2.1.2 SCP: "shall accept
                                                           N-CREATE ... only if ... IN
                                                           PROGRESS ... Invalid attribute
                                                           value (0106H)"
N-CREATE without a Type 1 attribute                0120    Table F.7.2-1 (1/1), PS3.7 C.4.2
N-CREATE with a Type 1 attribute zero-length       0121    PS3.7 C.4.2 missing attr. value
N-CREATE with badly formed DA/TM/UI values         0106    PS3.7 C.4.2 invalid attr. value
N-CREATE for an existing SOP Instance UID          0111    PS3.7 C.4.2 duplicate instance
N-SET for an unknown SOP Instance UID              0112    PS3.7 C.4.3 no such instance
N-SET after COMPLETED / DISCONTINUED               0110    F.7.2.2.2 SCP + Table F.7.2-2:
                                                           comment "Performed Procedure
                                                           Step Object may no longer be
                                                           updated", Error ID A710
N-SET changing an attribute that Table F.7.2-1     0106    choice (FAULTS.md allows 0105 or
marks "Not allowed" in N-SET (patient, study                0106): the attribute exists, its
UID in the Scheduled Step Attributes Sequence...)          new *value* is what is refused
N-SET to COMPLETED without the Final State         0110    Table F.7.2-1 "Final State"
attributes (end date/time, Performed Series                column; processing failure with
Sequence with Series Instance UIDs)                        a comment naming what is missing
================================================  ======  ================================

Every refused request leaves the stored instance exactly as it was. A "Not allowed"
attribute resent with its *unchanged* value is accepted (many modalities resend the
whole dataset in N-SET; the standard's concern is modification). Type 2 attributes
are not enforced unless ``strict_type2`` is set, since real scanners often omit them.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from simulators.dicom.fast.service import DimseRequest, Reply

log = logging.getLogger(__name__)

IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
FINAL_STATES = frozenset({COMPLETED, DISCONTINUED})

SUCCESS = 0x0000
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
#: Table F.7.2-2: Error ID for "Performed Procedure Step Object may no longer be updated".
ERROR_ID_NO_LONGER_UPDATABLE = 0xA710

#: Type 1 in N-CREATE (Table F.7.2-1, "1/1"): keyword -> tag.
CREATE_TYPE1 = ("ScheduledStepAttributesSequence", "PerformedProcedureStepID",
                "PerformedStationAETitle", "PerformedProcedureStepStartDate",
                "PerformedProcedureStepStartTime", "PerformedProcedureStepStatus", "Modality")
#: Type 1 inside each Scheduled Step Attributes Sequence item.
SSAS_TYPE1 = ("StudyInstanceUID",)
#: Type 2 in N-CREATE (present, may be empty); enforced only with ``strict_type2``.
CREATE_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                "PerformedStationName", "PerformedLocation", "PerformedProcedureStepEndDate",
                "PerformedProcedureStepEndTime", "PerformedProcedureStepDescription",
                "PerformedSeriesSequence", "StudyID", "ProcedureCodeSequence")
#: "Not allowed" in N-SET (Table F.7.2-1): the attributes that identify what was done.
NOT_ALLOWED_IN_SET = frozenset(Tag(k) for k in (
    "ScheduledStepAttributesSequence", "PatientName", "PatientID", "IssuerOfPatientID",
    "PatientBirthDate", "PatientSex", "ReferencedPatientSequence", "OtherPatientIDsSequence",
    "PerformedProcedureStepID", "PerformedStationAETitle", "PerformedStationName",
    "PerformedLocation", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "Modality", "StudyID", "AdmissionID", "SOPClassUID", "SOPInstanceUID"))
_STATUS_TAG = Tag("PerformedProcedureStepStatus")

_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_UI = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*")


@dataclass(frozen=True, slots=True)
class StepReference:
    """What one Scheduled Step Attributes Sequence item says was performed.

    The owner matches all four fields against its orders; an item whose accession
    and step are empty is the "unscheduled" case and must not match any order."""

    accession: str
    requested_procedure_id: str
    step_id: str
    study_uid: str

    @property
    def is_unscheduled(self) -> bool:
        return not (self.accession or self.requested_procedure_id or self.step_id)


@dataclass(slots=True)
class MppsInstance:
    """One Performed Procedure Step as the SCP holds it."""

    sop_instance_uid: str
    dataset: Dataset
    references: tuple[StepReference, ...]
    calling_ae: str = ""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    #: Set by the owner: False when no scheduled step matched (unscheduled case).
    scheduled: bool | None = None

    @property
    def status(self) -> str:
        return str(self.dataset.get("PerformedProcedureStepStatus", ""))

    def snapshot(self) -> "MppsInstance":
        """A deep copy, so callers never mutate the SCP's state behind its lock."""
        return MppsInstance(self.sop_instance_uid, copy.deepcopy(self.dataset), self.references,
                            self.calling_ae, self.created, self.updated, self.scheduled)


@dataclass(frozen=True, slots=True)
class MppsResult:
    """The outcome of one N-CREATE/N-SET: a status and what to tell the SCU."""

    status: int
    comment: str = ""
    sop_instance_uid: str = ""
    error_id: int | None = None
    offending: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    def status_dataset(self, *, with_attribute_list: bool = False) -> Dataset:
        """Status for pynetdicom: Status, Error Comment/ID, and for N-SET the
        Attribute Identifier List naming the offending attributes (PS3.7 10.1.3)."""
        ds = Dataset()
        ds.Status = self.status
        if self.comment:
            ds.ErrorComment = self.comment[:64]
        if self.error_id is not None:
            ds.ErrorID = self.error_id
        if with_attribute_list and self.offending:
            ds.AttributeIdentifierList = list(self.offending)
        return ds

    def response_fields(self, *, with_attribute_list: bool = False) -> dict[str, Any]:
        """The status elements other than Status, as response command fields (for
        acceptors that build the command set themselves)."""
        status = self.status_dataset(with_attribute_list=with_attribute_list)
        return {element.keyword: element.value for element in status if element.keyword != "Status"}


Callback = Callable[[MppsInstance], None]


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _is_empty(ds: Dataset, keyword: str) -> bool:
    element = ds.get(Tag(keyword))
    if element is None or element.value is None:
        return True
    if element.VR == "SQ":
        return len(element.value) == 0
    return str(element.value).strip() == ""


def step_references(ds: Dataset) -> tuple[StepReference, ...]:
    """The Scheduled Step Attributes Sequence as :class:`StepReference` records."""
    return tuple(
        StepReference(_text(item, "AccessionNumber"), _text(item, "RequestedProcedureID"),
                      _text(item, "ScheduledProcedureStepID"), _text(item, "StudyInstanceUID"))
        for item in ds.get("ScheduledStepAttributesSequence", []) or [])


def _bad_values(ds: Dataset) -> tuple[str, int] | None:
    """The first badly formed DA/TM/UI value among the MPPS attributes we rely on."""
    checks: list[tuple[Dataset, str, re.Pattern[str]]] = [
        (ds, "PerformedProcedureStepStartDate", _DA), (ds, "PerformedProcedureStepEndDate", _DA),
        (ds, "PerformedProcedureStepStartTime", _TM), (ds, "PerformedProcedureStepEndTime", _TM),
    ]
    checks += [(item, "StudyInstanceUID", _UI)
               for item in ds.get("ScheduledStepAttributesSequence", []) or []]
    checks += [(item, "SeriesInstanceUID", _UI)
               for item in ds.get("PerformedSeriesSequence", []) or []]
    for dataset, keyword, pattern in checks:
        value = _text(dataset, keyword)
        if not value:
            continue
        if not pattern.fullmatch(value) or (keyword.endswith("InstanceUID") and len(value) > 64):
            return f"{keyword} {value[:24]!r} is malformed", int(Tag(keyword))
        if pattern is _DA:
            try:
                dt.datetime.strptime(value, "%Y%m%d")
            except ValueError:
                return f"{keyword} {value!r} is not a date", int(Tag(keyword))
    return None


class MppsManager:
    """Holds MPPS instances and enforces PS3.4 F.7.2; thread-safe.

    ``on_in_progress`` runs after a successful N-CREATE, ``on_completed`` and
    ``on_discontinued`` after the N-SET that reaches that final state, ``on_updated``
    after any other successful N-SET. Callbacks run outside the lock, receive a
    snapshot, and an exception in one is logged: it never changes the DIMSE status.
    """

    def __init__(self, *, on_in_progress: Callback | None = None,
                 on_completed: Callback | None = None, on_discontinued: Callback | None = None,
                 on_updated: Callback | None = None, strict_type2: bool = False,
                 require_protocol_name: bool = False) -> None:
        self._instances: dict[str, MppsInstance] = {}
        self._lock = threading.Lock()
        self._callbacks = {IN_PROGRESS: on_in_progress, COMPLETED: on_completed,
                           DISCONTINUED: on_discontinued, "updated": on_updated}
        self.strict_type2 = strict_type2
        self.require_protocol_name = require_protocol_name

    # ------------------------------------------------------------------ N-CREATE
    def n_create(self, sop_instance_uid: str | None, attributes: Dataset, *,
                 calling_ae: str = "") -> MppsResult:
        """Create an instance (F.7.2.1); a missing SOP Instance UID is generated."""
        uid = (sop_instance_uid or "").strip() or generate_uid()
        duplicate = MppsResult(DUPLICATE_SOP_INSTANCE, "SOP Instance UID already exists", uid)
        with self._lock:
            if uid in self._instances:  # checked first: a resend must not look "invalid"
                return duplicate
        failure = self._check_create(attributes)
        if failure is not None:
            return MppsResult(failure[0], failure[1], uid, offending=failure[2])
        instance = MppsInstance(uid, copy.deepcopy(attributes), step_references(attributes),
                                calling_ae)
        with self._lock:
            if uid in self._instances:  # a concurrent twin won the race
                return duplicate
            self._instances[uid] = instance
            snapshot = instance.snapshot()
        self._notify(IN_PROGRESS, snapshot)
        return MppsResult(SUCCESS, sop_instance_uid=uid)

    def _check_create(self, ds: Dataset) -> tuple[int, str, tuple[int, ...]] | None:
        for keyword in CREATE_TYPE1:
            if keyword not in ds:
                return MISSING_ATTRIBUTE, f"missing {keyword}", (int(Tag(keyword)),)
            if _is_empty(ds, keyword):
                return MISSING_ATTRIBUTE_VALUE, f"empty {keyword}", (int(Tag(keyword)),)
        for item in ds.ScheduledStepAttributesSequence:
            for keyword in SSAS_TYPE1:
                if keyword not in item:
                    return MISSING_ATTRIBUTE, f"missing {keyword} in SSAS", (int(Tag(keyword)),)
                if _is_empty(item, keyword):
                    return (MISSING_ATTRIBUTE_VALUE, f"empty {keyword} in SSAS",
                            (int(Tag(keyword)),))
        if self.strict_type2:
            for keyword in CREATE_TYPE2:
                if keyword not in ds:
                    return MISSING_ATTRIBUTE, f"missing {keyword}", (int(Tag(keyword)),)
        status = _text(ds, "PerformedProcedureStepStatus")
        if status != IN_PROGRESS:
            return (INVALID_ATTRIBUTE_VALUE, f"N-CREATE status must be IN PROGRESS, not {status}",
                    (int(_STATUS_TAG),))
        bad = _bad_values(ds)
        if bad is not None:
            return INVALID_ATTRIBUTE_VALUE, bad[0], (bad[1],)
        return None

    # --------------------------------------------------------------------- N-SET
    def n_set(self, sop_instance_uid: str | None, modifications: Dataset) -> MppsResult:
        """Update an instance (F.7.2.2); refused requests change nothing."""
        uid = (sop_instance_uid or "").strip()
        with self._lock:
            instance = self._instances.get(uid)
            if instance is None:
                return MppsResult(NO_SUCH_SOP_INSTANCE, "no such MPPS instance", uid)
            if instance.status in FINAL_STATES:
                return MppsResult(PROCESSING_FAILURE,
                                  "Performed Procedure Step Object may no longer be updated",
                                  uid, error_id=ERROR_ID_NO_LONGER_UPDATABLE)
            failure = self._check_set(instance.dataset, modifications)
            if failure is not None:
                return MppsResult(failure[0], failure[1], uid, offending=failure[2])
            merged = copy.deepcopy(instance.dataset)
            for element in modifications:
                if element.tag.element != 0:
                    merged[element.tag] = copy.deepcopy(element)
            new_status = _text(merged, "PerformedProcedureStepStatus")
            if new_status == COMPLETED:
                missing = self._missing_final_state(merged)
                if missing:
                    return MppsResult(PROCESSING_FAILURE, f"cannot complete: {missing}", uid)
            instance.dataset = merged
            instance.updated = time.time()
            snapshot = instance.snapshot()
        self._notify(new_status if new_status in FINAL_STATES else "updated", snapshot)
        return MppsResult(SUCCESS, sop_instance_uid=uid)

    @staticmethod
    def _check_set(current: Dataset, mods: Dataset) -> tuple[int, str, tuple[int, ...]] | None:
        for element in mods:
            if element.tag in NOT_ALLOWED_IN_SET:
                existing = current.get(element.tag)
                if existing is None or existing.value != element.value:
                    keyword = element.keyword or str(element.tag)
                    return (INVALID_ATTRIBUTE_VALUE, f"{keyword} may not be changed by N-SET",
                            (int(element.tag),))
        if _STATUS_TAG in mods:
            status = _text(mods, "PerformedProcedureStepStatus")
            if not status:
                return MISSING_ATTRIBUTE_VALUE, "empty status", (int(_STATUS_TAG),)
            if status not in (IN_PROGRESS, COMPLETED, DISCONTINUED):
                return INVALID_ATTRIBUTE_VALUE, f"unknown status {status[:20]}", (int(_STATUS_TAG),)
        bad = _bad_values(mods)
        if bad is not None:
            return INVALID_ATTRIBUTE_VALUE, bad[0], (bad[1],)
        return None

    def _missing_final_state(self, ds: Dataset) -> str:
        """What Table F.7.2-1's Final State column still lacks for COMPLETED ("" if none)."""
        for keyword in ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime",
                        "PerformedSeriesSequence"):
            if _is_empty(ds, keyword):
                return f"{keyword} has no value"
        needed = ["SeriesInstanceUID"] + (["ProtocolName"] if self.require_protocol_name else [])
        for index, item in enumerate(ds.PerformedSeriesSequence):
            for keyword in needed:
                if _is_empty(item, keyword):
                    return f"Performed Series item {index + 1} has no {keyword}"
        return ""

    # ------------------------------------------------------------------- queries
    def get(self, sop_instance_uid: str) -> MppsInstance | None:
        with self._lock:
            instance = self._instances.get(sop_instance_uid)
            return instance.snapshot() if instance else None

    def instances(self) -> list[MppsInstance]:
        """Snapshots of every instance, oldest first."""
        with self._lock:
            return [i.snapshot() for i in sorted(self._instances.values(), key=lambda i: i.created)]

    def mark_scheduled(self, sop_instance_uid: str, scheduled: bool) -> None:
        """Owner's verdict on whether the referenced steps exist (False = unscheduled)."""
        with self._lock:
            instance = self._instances.get(sop_instance_uid)
            if instance is not None:
                instance.scheduled = scheduled

    def stale(self, max_age_seconds: float, *, now: float | None = None) -> list[MppsInstance]:
        """IN PROGRESS instances not updated for ``max_age_seconds`` (orphans)."""
        now = time.time() if now is None else now
        with self._lock:
            return [i.snapshot() for i in self._instances.values()
                    if i.status == IN_PROGRESS and now - i.updated > max_age_seconds]

    # ------------------------------------------------ transport-neutral answers
    def answer_n_create(self, sop_instance_uid: str | None,
                        decode: Callable[[], Dataset | None], *,
                        calling_ae: str = "") -> MppsResult:
        """N-CREATE with a lazily decoded attribute list; never raises.

        ``decode`` may raise on the peer's bad bytes: that is a 0110 processing
        failure, not a crash. No attribute list at all is an empty one (0120 follows).
        """
        try:
            attributes = decode()
            return self.n_create(sop_instance_uid, attributes if attributes is not None
                                 else Dataset(), calling_ae=calling_ae)
        except Exception as exc:  # noqa: BLE001 - undecodable or odd input: answer, not crash
            log.warning("MPPS N-CREATE could not be processed: %s", exc)
            return MppsResult(PROCESSING_FAILURE, "attribute list cannot be processed")

    def answer_n_set(self, sop_instance_uid: str | None,
                     decode: Callable[[], Dataset | None]) -> MppsResult:
        """N-SET with a lazily decoded modification list; never raises."""
        try:
            modifications = decode()
            return self.n_set(sop_instance_uid, modifications if modifications is not None
                              else Dataset())
        except Exception as exc:  # noqa: BLE001
            log.warning("MPPS N-SET could not be processed: %s", exc)
            return MppsResult(PROCESSING_FAILURE, "modification list cannot be processed")

    # ------------------------------------------------------- FastServer glue
    async def serve_n_create(self, request: "DimseRequest") -> "Reply":
        """FastServer N-CREATE handler: the manager's lock and the owner's callbacks
        (which take the owner's locks) run in the server's thread pool."""

        requested = str(request.get("AffectedSOPInstanceUID", "") or "") or None
        result = await request.run_blocking(
            lambda: self.answer_n_create(requested, request.dataset, calling_ae=request.calling_ae))
        fields = result.response_fields()
        if result.ok and requested is None:
            fields["AffectedSOPInstanceUID"] = result.sop_instance_uid
        return Reply(result.status, fields=fields)

    async def serve_n_set(self, request: "DimseRequest") -> "Reply":
        """FastServer N-SET handler (see :meth:`serve_n_create`)."""

        result = await request.run_blocking(
            self.answer_n_set, str(request.get("RequestedSOPInstanceUID", "") or ""),
            request.dataset)
        return Reply(result.status, fields=result.response_fields(with_attribute_list=True))

    # --------------------------------------------------------- pynetdicom glue
    def handle_n_create(self, event: Any) -> tuple[Dataset, Dataset | None]:
        """EVT_N_CREATE handler: decode, apply, answer; never raises."""
        request = event.request
        result = self.answer_n_create(request.AffectedSOPInstanceUID,
                                      lambda: event.attribute_list, calling_ae=_calling_ae(event))
        reply = None
        if result.ok and not request.AffectedSOPInstanceUID:
            reply = Dataset()
            reply.AffectedSOPInstanceUID = result.sop_instance_uid
        return result.status_dataset(), reply

    def handle_n_set(self, event: Any) -> tuple[Dataset, Dataset | None]:
        """EVT_N_SET handler: decode, apply, answer; never raises."""
        result = self.answer_n_set(event.request.RequestedSOPInstanceUID,
                                   lambda: event.modification_list)
        return result.status_dataset(with_attribute_list=True), None

    def _notify(self, which: str, snapshot: MppsInstance) -> None:
        callback = self._callbacks.get(which)
        if callback is None:
            return
        try:
            callback(snapshot)
        except Exception:  # noqa: BLE001 - owner bugs must not change the DIMSE answer
            log.exception("MPPS %s callback failed for %s", which, snapshot.sop_instance_uid)


def _calling_ae(event: Any) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip()
    except Exception:  # noqa: BLE001 - only used for bookkeeping
        return ""


__all__ = [
    "MppsManager", "MppsInstance", "MppsResult", "StepReference", "step_references",
    "IN_PROGRESS", "COMPLETED", "DISCONTINUED", "FINAL_STATES", "SUCCESS",
    "INVALID_ATTRIBUTE_VALUE", "PROCESSING_FAILURE", "DUPLICATE_SOP_INSTANCE",
    "NO_SUCH_SOP_INSTANCE", "MISSING_ATTRIBUTE", "MISSING_ATTRIBUTE_VALUE",
    "ERROR_ID_NO_LONGER_UPDATABLE", "NOT_ALLOWED_IN_SET",
]
