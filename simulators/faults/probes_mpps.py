"""Probes for the MPPS faults (PS3.4 Annex F): a malformed scanner, one request at a time.

Each probe takes a fresh worklist item from the target (so probes never disturb each
other), builds the N-CREATE a correct modality would send for it (the modality's own
builder), applies the fault's mutation from :mod:`simulators.injection.mutations`, and
reads the status back. "Nothing stored" is checked over the wire too: an N-SET on the
refused instance must answer 0112 (no such SOP instance).
"""

from __future__ import annotations

import datetime as dt
import warnings

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from simulators.dicom.fast.requests import mpps_create
from simulators.injection import mutations
from simulators.injection.model import Observation
from simulators.faults.probing import ProbeRun, probe
from simulators.faults.scu import (
    MPPS_CLASS, find_mwl, mpps_session, status_code, supports, universal_mwl_identifier,
)
from simulators.faults.target import STATION_NAME, Target
from simulators.world.context import StudyContext
from simulators.world.iod_common import code_item


def _unsupported(target: Target) -> str:
    if target.dicom is None:
        return "target has no DICOM address for MPPS"
    if not supports(target.dicom, target.calling_ae, MPPS_CLASS):
        return "target does not accept the MPPS SOP class (no MPPS SCP)"
    return ""


def base_create(run: ProbeRun, item: Dataset, calling_ae: str) -> Dataset:
    """The N-CREATE IN PROGRESS a correct modality sends for ``item``."""
    context = StudyContext.from_worklist(item, run.world, station_name=STATION_NAME)
    return mpps_create(context, item, calling_ae, dt.datetime.now().replace(microsecond=0))


def final_set(status: str = "COMPLETED") -> Dataset:
    """A valid N-SET to ``status``: end date/time and one performed series."""
    now = dt.datetime.now()
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = now.strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = now.strftime("%H%M%S")
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.ProtocolName = "FAULT PROBE"
    series.PerformingPhysicianName = ""
    series.OperatorsName = ""
    series.SeriesDescription = ""
    series.RetrieveAETitle = ""
    series.ReferencedImageSequence = []
    series.ReferencedNonImageCompositeSOPInstanceSequence = []
    ds.PerformedSeriesSequence = [series] if status == "COMPLETED" else []
    if status == "DISCONTINUED":
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [
            code_item("110514", "DCM", "Incorrect worklist entry selected")]
    return ds


def _create(assoc, uid: str, ds: Dataset) -> int | None:  # type: ignore[no-untyped-def]
    status, _ = assoc.send_n_create(ds, MPPS_CLASS, uid)
    return status_code(status)


def _set(assoc, uid: str, ds: Dataset) -> int | None:  # type: ignore[no-untyped-def]
    status, _ = assoc.send_n_set(ds, MPPS_CLASS, uid)
    return status_code(status)


def _mutated_create(fault_id: str):  # type: ignore[no-untyped-def]
    def run_probe(target: Target, run: ProbeRun) -> Observation:
        reason = _unsupported(target)
        if reason:
            return Observation(sent="N-CREATE", unsupported=reason)
        item = run.fresh_item()
        uid = generate_uid()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid values are the point here
            attributes = mutations.MPPS_CREATE[fault_id](base_create(run, item, target.calling_ae))
        assert target.dicom is not None
        with mpps_session(target.dicom, target.calling_ae) as assoc:
            status = _create(assoc, uid, attributes)
            obs = Observation(sent=f"N-CREATE ({run_fault_sent(fault_id)})", status=status)
            if status is not None and status != 0x0000:
                # refused: nothing may have been stored under that UID
                obs.checks["nothing created (N-SET answers 0112)"] = \
                    _set(assoc, uid, final_set("DISCONTINUED")) == 0x0112
        return obs
    return run_probe


_SENT = {
    "mpps.create-not-in-progress": "status COMPLETED",
    "mpps.create-missing-type1": "no Performed Procedure Step ID",
    "mpps.create-empty-type1": "empty Performed Station AE Title",
    "mpps.wrong-study-uid": "another Study Instance UID",
    "mpps.wrong-patient": "another Patient ID",
    "mpps.unscheduled": "empty accession/procedure/step IDs",
    "mpps.bad-vr": "start date 2026-13-45",
    "mpps.charset": "Latin-1 name, no Specific Character Set",
}


def run_fault_sent(fault_id: str) -> str:
    return _SENT.get(fault_id, fault_id)


for _fault_id in mutations.MPPS_CREATE:
    probe(_fault_id)(_mutated_create(_fault_id))


def _created(target: Target, run: ProbeRun, assoc) -> tuple[str, int | None]:  # type: ignore[no-untyped-def]
    uid = generate_uid()
    return uid, _create(assoc, uid, base_create(run, run.fresh_item(), target.calling_ae))


@probe("mpps.create-duplicate")
def create_duplicate(target: Target, run: ProbeRun) -> Observation:
    reason = _unsupported(target)
    if reason:
        return Observation(sent="N-CREATE x2", unsupported=reason)
    assert target.dicom is not None
    item = run.fresh_item()
    attributes = base_create(run, item, target.calling_ae)
    uid = generate_uid()
    with mpps_session(target.dicom, target.calling_ae) as assoc:
        first = _create(assoc, uid, attributes)
        second = _create(assoc, uid, attributes)
    obs = Observation(sent="the same N-CREATE twice", status=second)
    obs.checks["first N-CREATE accepted"] = first == 0x0000
    return obs


@probe("mpps.set-unknown")
def set_unknown(target: Target, run: ProbeRun) -> Observation:
    reason = _unsupported(target)
    if reason:
        return Observation(sent="N-SET", unsupported=reason)
    assert target.dicom is not None
    with mpps_session(target.dicom, target.calling_ae) as assoc:
        status = _set(assoc, generate_uid(), final_set("COMPLETED"))
    return Observation(sent="N-SET COMPLETED for a never-created UID", status=status)


def _set_fault(sent: str, modification, *, complete_first: bool = False):  # type: ignore[no-untyped-def]
    def run_probe(target: Target, run: ProbeRun) -> Observation:
        reason = _unsupported(target)
        if reason:
            return Observation(sent=sent, unsupported=reason)
        assert target.dicom is not None
        with mpps_session(target.dicom, target.calling_ae) as assoc:
            uid, created = _created(target, run, assoc)
            obs = Observation(sent=sent)
            obs.checks["N-CREATE accepted"] = created == 0x0000
            if complete_first:
                obs.checks["first N-SET COMPLETED accepted"] = \
                    _set(assoc, uid, final_set("COMPLETED")) == 0x0000
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obs.status = _set(assoc, uid, modification())
            if obs.status not in (None, 0x0000) and not complete_first:
                # refused: the step must still be open (a valid DISCONTINUED is accepted)
                obs.checks["state unchanged (still IN PROGRESS)"] = \
                    _set(assoc, uid, final_set("DISCONTINUED")) == 0x0000
            elif obs.status not in (None, 0x0000):
                obs.checks["state unchanged (still final)"] = \
                    _set(assoc, uid, final_set("DISCONTINUED")) not in (0x0000, None)
        return obs
    return run_probe


probe("mpps.set-after-final")(_set_fault(
    "N-SET DISCONTINUED after COMPLETED", lambda: final_set("DISCONTINUED"), complete_first=True))
probe("mpps.set-create-only-attr")(_set_fault(
    "N-SET changing Patient ID", lambda: mutations.set_create_only_attr(Dataset())))
probe("mpps.set-unknown-status")(_set_fault(
    "N-SET status FINISHED", lambda: mutations.set_unknown_status(Dataset())))
probe("mpps.complete-without-series")(_set_fault(
    "N-SET COMPLETED, empty Performed Series Sequence",
    lambda: mutations.complete_without_series(final_set("COMPLETED"))))


@probe("mpps.orphan")
def orphan(target: Target, run: ProbeRun) -> Observation:
    reason = _unsupported(target)
    if reason:
        return Observation(sent="N-CREATE", unsupported=reason)
    assert target.dicom is not None
    with mpps_session(target.dicom, target.calling_ae) as assoc:
        uid, status = _created(target, run, assoc)
    obs = Observation(sent="N-CREATE IN PROGRESS, never finished", status=status)
    if target.ris is not None:
        obs.checks["RIS lists it as stale"] = any(
            i.sop_instance_uid == uid for i in target.ris.mpps.stale(-1.0))
    return obs


@probe("mpps.double-claim")
def double_claim(target: Target, run: ProbeRun) -> Observation:
    reason = _unsupported(target)
    if reason:
        return Observation(sent="2 x N-CREATE", unsupported=reason)
    assert target.dicom is not None
    item = run.fresh_item()
    statuses = []
    for calling in (target.calling_ae, target.second_calling_ae):
        with mpps_session(target.dicom, calling) as assoc:
            statuses.append(_create(assoc, generate_uid(), base_create(run, item, calling)))
    answered = " / ".join("none" if s is None else f"{s:04X}" for s in statuses)
    return Observation(sent="two AEs N-CREATE for one step", status=statuses[-1],
                       answered=answered, open_reason=f"answers {answered}")


@probe("mpps.discontinued")
def discontinued(target: Target, run: ProbeRun) -> Observation:
    reason = _unsupported(target)
    if reason:
        return Observation(sent="N-SET DISCONTINUED", unsupported=reason)
    assert target.dicom is not None
    item = run.fresh_item()
    uid = generate_uid()
    with mpps_session(target.dicom, target.calling_ae) as assoc:
        created = _create(assoc, uid, base_create(run, item, target.calling_ae))
        status = _set(assoc, uid, final_set("DISCONTINUED"))
    obs = Observation(sent="N-SET DISCONTINUED (DCM 110514)", status=status)
    obs.checks["N-CREATE accepted"] = created == 0x0000
    accession = str(item.get("AccessionNumber", ""))
    if accession:
        _, found = find_mwl(target.dicom, target.calling_ae,
                            universal_mwl_identifier(AccessionNumber=accession))
        states = {str((f.get("ScheduledProcedureStepSequence") or [Dataset()])[0]
                      .get("ScheduledProcedureStepStatus", "")) for f in found}
        obs.checks["step no longer SCHEDULED on the worklist"] = "SCHEDULED" not in states
    return obs


__all__ = ["base_create", "final_set"]
