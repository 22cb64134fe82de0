"""A small, realistic procedure catalogue per modality.

Codes use LOINC ("LN") only where the code/meaning pair is certain; everything else
uses the local scheme "99PACSIM", as sites do for their own chargemaster codes. Body
parts are DICOM Body Part Examined defined terms (PS3.16 Annex L), so images built
from these procedures carry values a validator accepts.
"""

from __future__ import annotations

from simulators.errors import WorldError
from simulators.world.models import Procedure

LOCAL_SCHEME = "99PACSIM"
LOINC = "LN"


def _local(code: str, meaning: str, modality: str, body_part: str) -> Procedure:
    return Procedure(code=code, meaning=meaning, scheme=LOCAL_SCHEME, modality=modality,
                     body_part=body_part)


CATALOGUE: dict[str, tuple[Procedure, ...]] = {
    "CT": (
        Procedure("29252-4", "CT CHEST W/O CONTRAST", LOINC, "CT", "CHEST"),
        _local("PSM-CT-002", "CT HEAD W/O CONTRAST", "CT", "HEAD"),
        _local("PSM-CT-003", "CT ABDOMEN PELVIS W CONTRAST", "CT", "ABDOMENPELVIS"),
        _local("PSM-CT-004", "CT LUMBAR SPINE W/O CONTRAST", "CT", "LSPINE"),
    ),
    "MR": (
        _local("PSM-MR-001", "MR BRAIN W/WO CONTRAST", "MR", "BRAIN"),
        Procedure("24590-2", "MR BRAIN", LOINC, "MR", "BRAIN"),
        _local("PSM-MR-003", "MR KNEE W/O CONTRAST", "MR", "KNEE"),
        _local("PSM-MR-004", "MR LUMBAR SPINE W/O CONTRAST", "MR", "LSPINE"),
    ),
    "CR": (
        Procedure("36643-5", "XR CHEST 2 VIEWS", LOINC, "CR", "CHEST"),
        _local("PSM-CR-002", "XR HAND 3 VIEWS", "CR", "HAND"),
        _local("PSM-CR-003", "XR KNEE 2 VIEWS", "CR", "KNEE"),
    ),
    "DX": (
        Procedure("36643-5", "XR CHEST 2 VIEWS", LOINC, "DX", "CHEST"),
        _local("PSM-DX-002", "XR PELVIS 1 VIEW", "DX", "PELVIS"),
        _local("PSM-DX-003", "XR ANKLE 3 VIEWS", "DX", "ANKLE"),
    ),
    "MG": (
        _local("PSM-MG-001", "MG SCREENING BILATERAL", "MG", "BREAST"),
        _local("PSM-MG-002", "MG DIAGNOSTIC BILATERAL", "MG", "BREAST"),
    ),
    "US": (
        _local("PSM-US-001", "US ABDOMEN COMPLETE", "US", "ABDOMEN"),
        _local("PSM-US-002", "US PELVIS TRANSABDOMINAL", "US", "PELVIS"),
        _local("PSM-US-003", "US THYROID", "US", "NECK"),
    ),
}

MODALITIES: tuple[str, ...] = tuple(CATALOGUE)


def procedures_for(modality: str) -> tuple[Procedure, ...]:
    """The catalogue entries of one modality; WorldError names the supported ones."""
    try:
        return CATALOGUE[modality.upper()]
    except KeyError:
        raise WorldError("no procedures for this modality", modality=modality,
                         supported=",".join(MODALITIES)) from None


def find_procedure(modality: str, *, code: str | None = None,
                   meaning: str | None = None) -> Procedure | None:
    """Look a procedure up by code (preferred) or by description, case-insensitively.

    Used when a study is built from a worklist item, which carries the code and
    description but not our body part.
    """
    for procedure in CATALOGUE.get(modality.upper(), ()):
        if code and procedure.code == code:
            return procedure
    for procedure in CATALOGUE.get(modality.upper(), ()):
        if meaning and procedure.meaning.upper() == meaning.strip().upper():
            return procedure
    return None


__all__ = ["CATALOGUE", "MODALITIES", "LOCAL_SCHEME", "LOINC", "procedures_for",
           "find_procedure"]
