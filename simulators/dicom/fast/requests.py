"""The datasets a modality sends: MWL identifier, MPPS N-CREATE/N-SET, commitment request.

Kept next to the fast client because the load engine's simulated modalities send
exactly these too; ``simulators.actors.modality`` is the one-scanner actor on top.
References: PS3.4 K.6 (worklist keys), F.7.2 Table F.7.2-1 (MPPS attributes per
N-CREATE/N-SET), J.3 (storage commitment), PS3.16 CID 9300 (discontinuation reasons).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sr.codedict import Code, Collection

from simulators.errors import ConfigError
from simulators.world.context import StudyContext
from simulators.world.iod_common import code_item, dicom_date, dicom_time

#: Keys of an MWL identifier that live in the Scheduled Procedure Step Sequence item.
_SPS_KEYS = ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
             "ScheduledProcedureStepStartTime", "ScheduledPerformingPhysicianName",
             "ScheduledProcedureStepDescription", "ScheduledProcedureStepID",
             "ScheduledStationName", "ScheduledProcedureStepLocation",
             "ScheduledProcedureStepStatus")
_TOP_KEYS = ("SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID",
             "PatientBirthDate", "PatientSex", "StudyInstanceUID", "AccessionNumber",
             "ReferringPhysicianName", "RequestedProcedureID", "RequestedProcedureDescription",
             "RequestedProcedurePriority")
#: PS3.16 CID 9300 "Procedure Discontinuation Reasons", by code value, from pydicom.
DISCONTINUED_REASONS: dict[str, Code] = {
    code.value: code for code in Collection("CID9300").concepts.values()
    if code.scheme_designator == "DCM"}


def worklist_identifier(station_ae: str, day: dt.date, match: dict[str, Any]) -> Dataset:
    """An MWL C-FIND identifier: return keys empty, our station and ``day`` matched."""
    unknown = set(match) - set(_SPS_KEYS) - set(_TOP_KEYS)
    if unknown:
        raise ConfigError("unknown worklist matching key", keys=",".join(sorted(unknown)),
                          known=",".join(_TOP_KEYS + _SPS_KEYS))
    values = {"ScheduledStationAETitle": station_ae,
              "ScheduledProcedureStepStartDate": day.strftime("%Y%m%d"), **match}
    identifier, step = Dataset(), Dataset()
    for keyword in _TOP_KEYS:
        setattr(identifier, keyword, values.get(keyword) or "")
    for keyword in _SPS_KEYS:
        setattr(step, keyword, values.get(keyword) or "")
    if not identifier.SpecificCharacterSet:
        del identifier.SpecificCharacterSet
    step.ScheduledProtocolCodeSequence = []
    identifier.ScheduledProcedureStepSequence = [step]
    identifier.RequestedProcedureCodeSequence = []
    return identifier


def mpps_create(ctx: StudyContext, item: Dataset, station_ae: str, started: dt.datetime) -> Dataset:
    """N-CREATE attributes, IN PROGRESS (PS3.4 Table F.7.2-1), identity from the item."""
    ds = Dataset()
    if ctx.charset:
        ds.SpecificCharacterSet = ctx.charset
    ssas = Dataset()
    ssas.StudyInstanceUID = ctx.study_uid
    ssas.ReferencedStudySequence = []
    ssas.AccessionNumber = ctx.accession
    ssas.RequestedProcedureID = ctx.requested_procedure_id
    ssas.RequestedProcedureDescription = ctx.requested_procedure_description
    ssas.ScheduledProcedureStepID = ctx.scheduled_step_id
    ssas.ScheduledProcedureStepDescription = ctx.scheduled_step_description
    steps = item.get("ScheduledProcedureStepSequence") or [Dataset()]
    ssas.ScheduledProtocolCodeSequence = list(steps[0].get("ScheduledProtocolCodeSequence") or [])
    ds.ScheduledStepAttributesSequence = [ssas]
    ds.PatientName = ctx.patient_name
    ds.PatientID = ctx.patient_id
    ds.IssuerOfPatientID = ctx.issuer
    ds.PatientBirthDate = ctx.birth_date
    ds.PatientSex = ctx.sex
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = ctx.performed_step_id
    ds.PerformedStationAETitle = station_ae
    ds.PerformedStationName = ctx.station_name
    ds.PerformedLocation = ctx.station_name
    ds.PerformedProcedureStepStartDate = dicom_date(started)
    ds.PerformedProcedureStepStartTime = dicom_time(started)
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = ctx.study_description
    ds.PerformedProcedureTypeDescription = ctx.study_description
    code = ctx.requested_procedure_code
    ds.ProcedureCodeSequence = [code_item(code.value, code.scheme, code.meaning)] if code else []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = ctx.modality
    ds.StudyID = ctx.study_id
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def mpps_final(ctx: StudyContext, images: list[Dataset], status: str, station_ae: str,
               ended: dt.datetime, reason: str | None) -> Dataset:
    """N-SET to COMPLETED/DISCONTINUED: end date/time and the Performed Series Sequence."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = dicom_date(ended)
    ds.PerformedProcedureStepEndTime = dicom_time(ended)
    series: dict[str, Dataset] = {}
    for image in images:
        entry = series.get(str(image.SeriesInstanceUID))
        if entry is None:
            entry = series[str(image.SeriesInstanceUID)] = Dataset()
            entry.PerformingPhysicianName = image.get("PerformingPhysicianName", "")
            entry.ProtocolName = image.get("ProtocolName", "") or ctx.study_description
            entry.OperatorsName = image.get("OperatorsName", "")
            entry.SeriesInstanceUID = image.SeriesInstanceUID
            entry.SeriesDescription = image.get("SeriesDescription", "")
            entry.RetrieveAETitle = ""
            entry.ReferencedImageSequence = []
            entry.ReferencedNonImageCompositeSOPInstanceSequence = []
        reference = Dataset()
        reference.ReferencedSOPClassUID = image.SOPClassUID
        reference.ReferencedSOPInstanceUID = image.SOPInstanceUID
        entry.ReferencedImageSequence.append(reference)
    ds.PerformedSeriesSequence = list(series.values())
    if status == "DISCONTINUED" and reason:
        code = DISCONTINUED_REASONS[reason]
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [
            code_item(code.value, code.scheme_designator, code.meaning)]
    return ds


def commitment_request(transaction_uid: str, references: list[tuple[str, str]]) -> Dataset:
    """N-ACTION Action Information for Request Storage Commitment (PS3.4 J.3.2)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    items = []
    for sop_class, sop_instance in references:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


def parse_commitment(ds: Dataset | None) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """Committed instances and (instance, Failure Reason) pairs from the event info."""
    if ds is None:
        return (), ()
    committed = tuple(str(item.ReferencedSOPInstanceUID)
                      for item in ds.get("ReferencedSOPSequence") or [])
    failed = tuple((str(item.get("ReferencedSOPInstanceUID", "")), int(item.get("FailureReason", 0x0110)))
                   for item in ds.get("FailedSOPSequence") or [])
    return committed, failed


__all__ = ["DISCONTINUED_REASONS", "worklist_identifier", "mpps_create", "mpps_final",
           "commitment_request", "parse_commitment"]
