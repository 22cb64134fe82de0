"""Plain records of the synthetic world, shared by every protocol.

One ``Patient`` or ``Order`` object is the single source of truth for what the
EHR sends in HL7, what the RIS answers on the worklist, what the modality puts in
MPPS and in the images. Keeping them as frozen dataclasses (no protocol code)
lets HL7 builders, DICOM builders and tests agree on identity by construction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class Patient:
    """A synthetic patient. ``charset`` is the DICOM Specific Character Set needed
    for the name (``None`` for plain ASCII, ``"ISO_IR 192"`` for UTF-8)."""

    patient_id: str
    issuer: str
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str  # "M", "F" or "O" (DICOM and HL7 table 0001 agree on these three)
    charset: str | None = None

    @property
    def dicom_name(self) -> str:
        """Name as a DICOM PN value: ``FAMILY^GIVEN``."""
        return f"{self.family_name}^{self.given_name}"

    @property
    def dicom_birth_date(self) -> str:
        return self.birth_date.strftime("%Y%m%d")

    def with_changes(self, **changes: object) -> "Patient":
        """A copy with some demographics changed (for ADT A08 updates)."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Procedure:
    """A requested procedure type, as a site's procedure catalogue codes it."""

    code: str
    meaning: str
    scheme: str  # coding scheme designator, e.g. "LN" (LOINC) or a local "99PACSIM"
    modality: str  # DICOM modality: CT, MR, CR, DX, MG, US
    body_part: str  # DICOM Body Part Examined, e.g. "CHEST"


@dataclass(frozen=True, slots=True)
class ScheduledStep:
    """A Scheduled Procedure Step: what the worklist shows one modality."""

    step_id: str
    station_ae: str
    station_name: str
    modality: str
    start: dt.datetime
    description: str
    performing_physician: str = ""
    status: str = "SCHEDULED"  # SCHEDULED, ARRIVED, READY, STARTED, COMPLETED, DISCONTINUED


@dataclass(frozen=True, slots=True)
class Order:
    """An imaging order: one requested procedure with one scheduled step.

    ``study_uid`` is decided when the order is placed (the RIS assigns it), so the
    worklist, MPPS and every image of the study agree on it.
    """

    placer_number: str
    filler_number: str
    accession: str
    patient: Patient
    procedure: Procedure
    requested_procedure_id: str
    study_uid: str
    step: ScheduledStep
    priority: str = "ROUTINE"  # DICOM Requested Procedure Priority: STAT, HIGH, ROUTINE, MEDIUM, LOW
    referring_physician: str = ""
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def with_changes(self, **changes: object) -> "Order":
        return replace(self, **changes)  # type: ignore[arg-type]


__all__ = ["Patient", "Procedure", "ScheduledStep", "Order"]
