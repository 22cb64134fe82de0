"""What the actor steps share: reader-friendly DICOM keys, status words, patient lookup.

Scenario authors write ``accession``, ``patient_id``, ``station``; DICOM says
``AccessionNumber``, ``PatientID``, ``ScheduledStationName``. One table translates
both ways, so match keys and observed values use the same words in every step
(and a raw DICOM keyword is always accepted as written).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Mapping

from pydantic import Field
from pydicom.dataset import Dataset

from simulators.common.header import RunHeader
from simulators.actors.workflow import status_word  # noqa: F401 - steps import it here
from simulators.errors import ScenarioError
from simulators.scenario.context import StepContext
from simulators.scenario.environment import site_of
from simulators.site.site import PatientView, Site
from simulators.scenario.models import StepBase, StrictModel

#: Friendly key -> DICOM keyword (patient/study/series/instance and worklist attributes).
KEYWORDS: dict[str, str] = {
    "patient_id": "PatientID", "patient_name": "PatientName", "issuer": "IssuerOfPatientID",
    "birth_date": "PatientBirthDate", "sex": "PatientSex",
    "accession": "AccessionNumber", "study_uid": "StudyInstanceUID", "study_date": "StudyDate",
    "study_description": "StudyDescription", "series_uid": "SeriesInstanceUID",
    "series_number": "SeriesNumber", "sop_uid": "SOPInstanceUID",
    "sop_class": "SOPClassUID", "instance_number": "InstanceNumber",
    "modalities": "ModalitiesInStudy",
    "requested_procedure_id": "RequestedProcedureID",
    "procedure": "RequestedProcedureDescription", "priority": "RequestedProcedurePriority",
    "referring_physician": "ReferringPhysicianName",
    # Scheduled Procedure Step Sequence (worklist)
    "modality": "Modality", "station_ae": "ScheduledStationAETitle",
    "station": "ScheduledStationName", "date": "ScheduledProcedureStepStartDate",
    "time": "ScheduledProcedureStepStartTime", "step_id": "ScheduledProcedureStepID",
    "step_description": "ScheduledProcedureStepDescription",
    "step_status": "ScheduledProcedureStepStatus",
    # counts at study/series level
    "series_count": "NumberOfStudyRelatedSeries",
    "instances": "NumberOfStudyRelatedInstances",
    "series_instances": "NumberOfSeriesRelatedInstances",
}
FRIENDLY: dict[str, str] = {keyword: name for name, keyword in KEYWORDS.items()}


Transaction = Literal["hl7", "mwl", "mpps", "storage_commitment", "query", "move", "get",
                      "dicomweb"]


class NeedsMixin(StepBase):
    """``needs: [mpps]`` on a check that only holds when a transaction is served (the RIS
    shows COMPLETED only if MPPS reached it): reported "not supported by target" when
    nobody in the site serves it (for MPPS: neither the target, as probed or declared,
    nor the RIS standing in for it), instead of failing."""

    needs: list[Transaction] = Field(
        default_factory=list,
        description="target transactions this step depends on, e.g. [mpps]")

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.needs)


class Images(StrictModel):
    """How many images an exam produces (small by default: tests, not load)."""

    series: int = Field(1, ge=1, le=50)
    per_series: int = Field(2, ge=1, le=2000)


def keyword(name: str) -> str:
    """The DICOM keyword for a friendly key (or the keyword itself)."""
    return KEYWORDS.get(name, name)


def match_value(value: Any) -> Any:
    """Matching values as DICOM wants them: ``today``/``yesterday`` -> YYYYMMDD,
    ``any``/null -> universal match (None), numbers as text."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("any", "*")):
        return None
    if isinstance(value, str) and value.strip().lower() in ("today", "yesterday"):
        day = dt.date.today() - dt.timedelta(days=value.strip().lower() == "yesterday")
        return day.strftime("%Y%m%d")
    if isinstance(value, PatientView):
        return value.id
    return str(value)


def translate_match(match: Mapping[str, Any]) -> dict[str, Any]:
    """Friendly matching keys (resolved already) -> DICOM keyword: value."""
    return {keyword(name): match_value(value) for name, value in match.items()}


def plain(value: Any) -> Any:
    """A pydicom value as plain text (lists for multi-valued elements)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    if isinstance(value, Dataset):
        return describe_dataset(value)
    return str(value)


def describe_dataset(ds: Dataset) -> dict[str, Any]:
    """A dataset as friendly keys -> plain values; the first item of the Scheduled
    Procedure Step Sequence (worklist) is folded in, other sequences are left out."""
    out: dict[str, Any] = {}
    for element in ds:
        if element.VR == "SQ":
            if element.keyword == "ScheduledProcedureStepSequence" and element.value:
                out.update(describe_dataset(element.value[0]))
            continue
        if element.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet", ""):
            continue
        out[FRIENDLY.get(element.keyword, element.keyword)] = plain(element.value)
    return out


def resolve_patient(ctx: StepContext, reference: str) -> PatientView:
    """``$jane`` / ``$patient3`` -> the patient; ScenarioError if it is something else."""
    value = ctx.resolve(reference)
    if not isinstance(value, PatientView):
        raise ScenarioError(f"{reference} is not a patient (write $patientN or a name from "
                            f"environment.patients)", field="patient")
    return value


def variable_name(reference: str) -> str | None:
    """``$jane`` -> ``jane`` when the field is a bare variable reference, else None."""
    if reference.startswith("$") and not reference.startswith("$$") and "." not in reference:
        return reference[1:]
    return None


def site(ctx: StepContext) -> Site:
    return site_of(ctx)


def site_header(here: Site) -> RunHeader:
    """The report header of a file a step writes (load, validation): the site's target,
    what it supports and the world's seed, so that file signs off on its own too."""
    target = here.target
    capabilities = here.capabilities
    return RunHeader.now(target_kind=target.kind if target else here.environment.target_kind,
                         target_address=str(target.dicom) if target else "",
                         capabilities=capabilities.as_dict() if capabilities else None,
                         seed=here.environment.seed)


__all__ = ["KEYWORDS", "FRIENDLY", "Images", "NeedsMixin", "Transaction", "keyword",
           "match_value", "translate_match", "plain", "describe_dataset", "status_word", "resolve_patient", "variable_name",
           "site", "site_header"]
