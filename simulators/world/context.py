"""StudyContext: everything an image needs to know about who, what and why.

The same context comes out of an order (the world's view) and out of an MWL C-FIND
response (the modality's view, over the wire). Building images only from a context
is what makes one patient's identity identical in HL7, worklist, MPPS and images,
and lets tests prove it by comparing ``identity()`` of both paths.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from simulators.errors import WorldError
from simulators.world.models import Order, Patient, Procedure
from simulators.world.seeding import derived_uid

if TYPE_CHECKING:
    from simulators.world.world import World

UTF8 = "ISO_IR 192"


@dataclass(frozen=True, slots=True)
class Code:
    """A coded entry (Code Value, Coding Scheme Designator, Code Meaning)."""

    value: str
    scheme: str
    meaning: str

    @classmethod
    def from_procedure(cls, procedure: Procedure) -> "Code":
        return cls(procedure.code, procedure.scheme, procedure.meaning)


@dataclass(frozen=True, slots=True)
class StudyContext:
    """Patient, study, request and performed-step facts shared by every image."""

    patient_id: str
    issuer: str
    patient_name: str            # DICOM PN, FAMILY^GIVEN
    birth_date: str              # YYYYMMDD
    sex: str
    charset: str | None          # None (ASCII) or "ISO_IR 192"
    study_uid: str
    accession: str               # "" for unscheduled studies
    study_id: str
    study_description: str
    referring_physician: str
    requested_procedure_id: str  # "" for unscheduled studies
    requested_procedure_description: str
    requested_procedure_code: Code | None
    scheduled_step_id: str       # "" for unscheduled studies
    scheduled_step_description: str
    performed_step_id: str
    performed_step_start: dt.datetime
    modality: str
    station_name: str
    body_part: str
    institution: str
    uid_root: str
    seed: int
    mpps_uid: str | None = None  # MPPS SOP Instance UID, referenced from the images

    IDENTITY_FIELDS = ("patient_id", "issuer", "patient_name", "birth_date", "sex",
                       "charset", "study_uid", "accession", "study_id",
                       "study_description", "referring_physician",
                       "requested_procedure_id", "requested_procedure_description",
                       "requested_procedure_code", "scheduled_step_id", "modality",
                       "body_part")

    @property
    def scheduled(self) -> bool:
        return bool(self.scheduled_step_id)

    def identity(self) -> dict[str, object]:
        """The fields that must agree between the order path and the worklist path."""
        values = asdict(self)
        return {name: values[name] for name in self.IDENTITY_FIELDS}

    def series_uid(self, series_number: int) -> str:
        return derived_uid(self.uid_root, self.seed, "series", self.study_uid,
                           self.performed_step_id, series_number)

    def instance_uid(self, series_number: int, instance_number: int) -> str:
        return derived_uid(self.uid_root, self.seed, "instance", self.study_uid,
                           self.performed_step_id, series_number, instance_number)

    def frame_of_reference_uid(self, series_number: int) -> str:
        return derived_uid(self.uid_root, self.seed, "frame-of-reference", self.study_uid,
                           self.performed_step_id, series_number)

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_order(cls, order: Order, world: "World", *, attempt: int = 0,
                   performed_start: dt.datetime | None = None) -> "StudyContext":
        """Context for performing ``order`` (``attempt`` > 0 for a repeated exam)."""
        patient = order.patient
        pps_id = world.performed_step_id(order.study_uid, attempt)
        return cls(
            patient_id=patient.patient_id, issuer=patient.issuer,
            patient_name=patient.dicom_name, birth_date=patient.dicom_birth_date,
            sex=patient.sex,
            charset=_charset(patient.dicom_name, order.referring_physician,
                             order.procedure.meaning, order.step.station_name,
                             world.institution),
            study_uid=order.study_uid, accession=order.accession,
            study_id=order.requested_procedure_id, study_description=order.procedure.meaning,
            referring_physician=order.referring_physician,
            requested_procedure_id=order.requested_procedure_id,
            requested_procedure_description=order.procedure.meaning,
            requested_procedure_code=Code.from_procedure(order.procedure),
            scheduled_step_id=order.step.step_id,
            scheduled_step_description=order.step.description,
            performed_step_id=pps_id,
            performed_step_start=performed_start or order.step.start,
            modality=order.procedure.modality, station_name=order.step.station_name,
            body_part=order.procedure.body_part, institution=world.institution,
            uid_root=world.uid_root, seed=world.seed,
            mpps_uid=world.uid("mpps", order.study_uid, attempt))

    @classmethod
    def from_worklist(cls, ds: Dataset, world: "World", *, station_name: str | None = None,
                      attempt: int = 0,
                      performed_start: dt.datetime | None = None) -> "StudyContext":
        """Context from an MWL C-FIND response identifier, as a modality receives it.

        Missing Type 2 values become "" (as on the wire). The Study Instance UID given by
        the worklist is used as is (IHE SWF); WorldError if Patient ID, Study Instance
        UID or the Scheduled Procedure Step Sequence is absent.
        """
        patient_id = _text(ds, "PatientID")
        study_uid = _text(ds, "StudyInstanceUID")
        steps = ds.get("ScheduledProcedureStepSequence") or []
        if not patient_id or not study_uid or not steps:
            raise WorldError("worklist item lacks Patient ID, Study Instance UID or "
                             "Scheduled Procedure Step Sequence",
                             patient_id=patient_id or None, study_uid=study_uid or None)
        step = steps[0]
        modality = _text(step, "Modality").upper()
        codes = ds.get("RequestedProcedureCodeSequence") or []
        code = (Code(_text(codes[0], "CodeValue"), _text(codes[0], "CodingSchemeDesignator"),
                     _text(codes[0], "CodeMeaning")) if codes else None)
        description = (_text(ds, "RequestedProcedureDescription")
                       or _text(step, "ScheduledProcedureStepDescription"))
        procedure = world.find_procedure(modality, code=code.value if code else None,
                                         meaning=description)
        start = performed_start or _step_start(step)
        name = _text(ds, "PatientName")
        station = station_name if station_name is not None else _text(step,
                                                                       "ScheduledStationName")
        return cls(
            patient_id=patient_id, issuer=_text(ds, "IssuerOfPatientID") or world.issuer,
            patient_name=name, birth_date=_text(ds, "PatientBirthDate"),
            sex=_text(ds, "PatientSex"),
            charset=_charset(name, _text(ds, "ReferringPhysicianName"), description, station,
                             world.institution),
            study_uid=study_uid, accession=_text(ds, "AccessionNumber"),
            study_id=_text(ds, "RequestedProcedureID"), study_description=description,
            referring_physician=_text(ds, "ReferringPhysicianName"),
            requested_procedure_id=_text(ds, "RequestedProcedureID"),
            requested_procedure_description=description, requested_procedure_code=code,
            scheduled_step_id=_text(step, "ScheduledProcedureStepID"),
            scheduled_step_description=_text(step, "ScheduledProcedureStepDescription"),
            performed_step_id=world.performed_step_id(study_uid, attempt),
            performed_step_start=start, modality=modality, station_name=station,
            body_part=procedure.body_part if procedure else "",
            institution=world.institution, uid_root=world.uid_root, seed=world.seed,
            mpps_uid=world.uid("mpps", study_uid, attempt))

    @classmethod
    def unscheduled(cls, patient: Patient, world: "World", modality: str, *,
                    station_name: str, index: int, procedure: Procedure | None = None,
                    performed_start: dt.datetime | None = None) -> "StudyContext":
        """An emergency exam with no order: no accession, no request; a fresh study UID
        derived from (patient, modality, index) so it is still deterministic."""
        chosen = procedure or world.procedure(modality, 0)
        study_uid = world.uid("unscheduled-study", patient.patient_id, chosen.modality, index)
        pps_id = world.performed_step_id(study_uid)
        return cls(
            patient_id=patient.patient_id, issuer=patient.issuer,
            patient_name=patient.dicom_name, birth_date=patient.dicom_birth_date,
            sex=patient.sex,
            charset=_charset(patient.dicom_name, chosen.meaning, station_name,
                             world.institution),
            study_uid=study_uid, accession="", study_id=pps_id[-16:],
            study_description=chosen.meaning, referring_physician="",
            requested_procedure_id="", requested_procedure_description="",
            requested_procedure_code=None, scheduled_step_id="",
            scheduled_step_description="", performed_step_id=pps_id,
            performed_step_start=performed_start or dt.datetime.now().replace(microsecond=0),
            modality=chosen.modality, station_name=station_name,
            body_part=chosen.body_part, institution=world.institution,
            uid_root=world.uid_root, seed=world.seed, mpps_uid=world.uid("mpps", study_uid, 0))


def _text(ds: Dataset, keyword: str) -> str:
    """A string value from a dataset, "" when absent or empty (Type 2 on the wire)."""
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _charset(*texts: str) -> str | None:
    """Images are always written in UTF-8: any non-ASCII text (name, physician, site)
    needs "ISO_IR 192"; all-ASCII needs none. Deciding from content, not from what a
    sender declared, makes the order path and the worklist path agree."""
    return None if all(text.isascii() for text in texts) else UTF8


def _step_start(step: Dataset) -> dt.datetime:
    date, time = _text(step, "ScheduledProcedureStepStartDate"), _text(
        step, "ScheduledProcedureStepStartTime")
    try:
        day = dt.datetime.strptime(date, "%Y%m%d").date()
    except ValueError:
        return dt.datetime.now().replace(microsecond=0)
    digits = (time.split(".")[0] + "000000")[:6]
    try:
        return dt.datetime.combine(day, dt.datetime.strptime(digits, "%H%M%S").time())
    except ValueError:
        return dt.datetime.combine(day, dt.time())


__all__ = ["StudyContext", "Code"]
