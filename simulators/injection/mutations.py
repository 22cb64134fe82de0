"""How each fault changes an outgoing request: MPPS datasets, C-STORE datasets, HL7 text.

One function per fault id, shared by the actor hooks (a modality or EHR with a fault
profile) and by the ``pacsim faults run`` probes, so the bytes a faulty scanner sends
in a scenario are exactly the bytes the conformance matrix judged. Every mutation
works on a copy: the caller's dataset or message is never changed.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from simulators.hl7.er7 import segments

DatasetMutation = Callable[[Dataset], Dataset]
TextMutation = Callable[[str], str]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _copy(ds: Dataset) -> Dataset:
    return copy.deepcopy(ds)


def _first_ssas(ds: Dataset) -> Dataset:
    items = ds.get("ScheduledStepAttributesSequence") or []
    if not items:
        ds.ScheduledStepAttributesSequence = [Dataset()]
        items = ds.ScheduledStepAttributesSequence
    return items[0]


# ------------------------------------------------------------------ MPPS N-CREATE
def create_not_in_progress(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.PerformedProcedureStepStatus = "COMPLETED"
    return out


def create_missing_type1(ds: Dataset) -> Dataset:
    out = _copy(ds)
    if "PerformedProcedureStepID" in out:
        del out.PerformedProcedureStepID
    return out


def create_empty_type1(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.PerformedStationAETitle = ""
    return out


def wrong_study_uid(ds: Dataset) -> Dataset:
    out = _copy(ds)
    _first_ssas(out).StudyInstanceUID = generate_uid()
    return out


def wrong_patient(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.PatientID = f"WRONG{str(out.get('PatientID', ''))}"[:64]
    return out


def unscheduled(ds: Dataset) -> Dataset:
    out = _copy(ds)
    item = _first_ssas(out)
    item.AccessionNumber = ""
    item.RequestedProcedureID = ""
    item.ScheduledProcedureStepID = ""
    item.StudyInstanceUID = generate_uid()
    return out


def bad_vr(ds: Dataset) -> Dataset:
    out = _copy(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid DA: the point here
        out.PerformedProcedureStepStartDate = "2026-13-45"
    return out


def charset(ds: Dataset) -> Dataset:
    """ISO 8859-1 bytes in Patient's Name and no Specific Character Set to say so."""
    out = _copy(ds)
    if "SpecificCharacterSet" in out:
        del out.SpecificCharacterSet
    out.PatientName = "MÜLLER^JÖRG".encode("latin-1")
    return out


# --------------------------------------------------------------------- MPPS N-SET
def set_create_only_attr(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.PatientID = "CHANGED-BY-NSET"
    return out


def set_unknown_status(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.PerformedProcedureStepStatus = "FINISHED"
    return out


def complete_without_series(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.PerformedProcedureStepStatus = "COMPLETED"
    out.PerformedSeriesSequence = []
    return out


# ------------------------------------------------------------------------ C-STORE
def sop_mismatch(ds: Dataset) -> Dataset:
    """Say MR in the dataset; the context (and command) stay CT."""
    out = _copy(ds)
    out.SOPClassUID = MR_IMAGE_STORAGE if str(ds.get("SOPClassUID")) != MR_IMAGE_STORAGE \
        else CT_IMAGE_STORAGE
    return out


def store_missing_type1(ds: Dataset) -> Dataset:
    out = _copy(ds)
    if "StudyInstanceUID" in out:
        del out.StudyInstanceUID
    return out


def duplicate_different_content(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.PatientID = f"OTHER{str(ds.get('PatientID', ''))}"[:64]
    out.PatientName = "OTHER^PATIENT"
    return out


# ------------------------------------------------------------------------ MWL
def wrong_identifier(ds: Dataset) -> Dataset:
    out = _copy(ds)
    out.QueryRetrieveLevel = "STUDY"
    return out


# ----------------------------------------------------------------------- HL7
def set_field(text: str, segment: str, number: int, value: str,
              component: int | None = None) -> str:
    """ER7 ``text`` with field ``segment``-``number`` (1-based, MSH counted as HL7 does)
    replaced by ``value``; only its ``component`` when given. Missing fields are padded."""
    out = []
    done = False
    for line in segments(text):
        parts = line.split("|")
        if not done and parts[0] == segment:
            index = number - 1 if segment == "MSH" else number
            parts += [""] * (index + 1 - len(parts))
            if component is None:
                parts[index] = value
            else:
                pieces = parts[index].split("^")
                pieces += [""] * (component - len(pieces))
                pieces[component - 1] = value
                parts[index] = "^".join(pieces)
            done = True
        out.append("|".join(parts))
    return "\r".join(out)


def hl7_required_missing(text: str) -> str:
    return set_field(text, "PID", 3, "")


def hl7_unsupported_event(text: str) -> str:
    return set_field(text, "MSH", 9, "A99", component=2)


def hl7_unsupported_type(text: str) -> str:
    return set_field(text, "MSH", 9, "ZZZ^Z01")


def hl7_bad_table_value(text: str) -> str:
    return set_field(text, "PID", 8, "Q")


def hl7_bad_order_control(text: str) -> str:
    return set_field(text, "ORC", 1, "ZZ")


def hl7_bad_date(text: str) -> str:
    return set_field(text, "PID", 7, "19991399")


def lf_separators(text: str) -> str:
    return "\n".join(segments(text))


#: Fault id -> dataset mutation, by hook. Faults that are a *sequence* (duplicate,
#: after-final, unknown instance, orphan) are handled by the hook itself.
MPPS_CREATE: dict[str, DatasetMutation] = {
    "mpps.create-not-in-progress": create_not_in_progress,
    "mpps.create-missing-type1": create_missing_type1,
    "mpps.create-empty-type1": create_empty_type1,
    "mpps.wrong-study-uid": wrong_study_uid,
    "mpps.wrong-patient": wrong_patient,
    "mpps.unscheduled": unscheduled,
    "mpps.bad-vr": bad_vr,
    "mpps.charset": charset,
}
MPPS_SET: dict[str, DatasetMutation] = {
    "mpps.set-create-only-attr": set_create_only_attr,
    "mpps.set-unknown-status": set_unknown_status,
    "mpps.complete-without-series": complete_without_series,
}
STORE: dict[str, DatasetMutation] = {
    "store.sop-mismatch": sop_mismatch,
    "store.missing-type1": store_missing_type1,
}
MWL: dict[str, DatasetMutation] = {"mwl.wrong-identifier": wrong_identifier}
HL7: dict[str, TextMutation] = {
    "hl7.required-missing": hl7_required_missing,
    "hl7.unsupported-event": hl7_unsupported_event,
    "hl7.unsupported-message-type": hl7_unsupported_type,
    "hl7.bad-table-value": hl7_bad_table_value,
    "hl7.bad-order-control": hl7_bad_order_control,
    "hl7.bad-date": hl7_bad_date,
    "mllp.lf-separators": lf_separators,
}


def apply(table: dict[str, Callable], fault_ids: list[str], value):  # type: ignore[no-untyped-def]
    """Apply every mutation of ``table`` named in ``fault_ids``, in order."""
    for fault_id in fault_ids:
        mutation = table.get(fault_id)
        if mutation is not None:
            value = mutation(value)
    return value


__all__ = ["MPPS_CREATE", "MPPS_SET", "STORE", "MWL", "HL7", "apply", "set_field",
           "duplicate_different_content", "CT_IMAGE_STORAGE", "MR_IMAGE_STORAGE"]
