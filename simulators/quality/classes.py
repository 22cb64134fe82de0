"""The names of the data-quality defect classes, shared by the seeder and the validator.

Why a module of its own: the migration validator (simulators/migration/checks.py)
must classify findings with exactly the strings the seeder writes into
``manifest.json``, and it should not import the seeder's injection code to get them.
"""

from __future__ import annotations

PATIENT_NAME_CONFLICT = "patient-name-conflict"
BIRTH_DATE_CONFLICT = "birth-date-conflict"
WRONG_MODALITY = "wrong-modality"
MISSING_MODALITY = "missing-modality"
MISSING_TYPE2 = "missing-type2"
INVALID_VR_VALUE = "invalid-vr-value"
DUPLICATE_SOP_UID = "duplicate-sop-uid"
RETIRED_SOP_CLASS = "retired-sop-class"
ODD_CHARSET = "odd-charset"
PRIVATE_TAGS = "private-tags"
SPLIT_STUDY = "split-study"

#: Every class the seeder can inject, in the order of the contract (defects.md).
DEFECT_CLASSES: tuple[str, ...] = (
    PATIENT_NAME_CONFLICT, BIRTH_DATE_CONFLICT, WRONG_MODALITY, MISSING_MODALITY, MISSING_TYPE2,
    INVALID_VR_VALUE, DUPLICATE_SOP_UID, RETIRED_SOP_CLASS, ODD_CHARSET, PRIVATE_TAGS,
    SPLIT_STUDY,
)

#: Findings only stricter ingestion rules can raise (the seeder never injects them):
#: a current SOP Class or a transfer syntax that the target's rules do not list.
DISALLOWED_SOP_CLASS = "disallowed-sop-class"
DISALLOWED_TRANSFER_SYNTAX = "disallowed-transfer-syntax"
RULE_ONLY_CLASSES: tuple[str, ...] = (DISALLOWED_SOP_CLASS, DISALLOWED_TRANSFER_SYNTAX)

__all__ = [
    "DEFECT_CLASSES", "RULE_ONLY_CLASSES", "PATIENT_NAME_CONFLICT", "BIRTH_DATE_CONFLICT",
    "WRONG_MODALITY", "MISSING_MODALITY", "MISSING_TYPE2", "INVALID_VR_VALUE",
    "DUPLICATE_SOP_UID", "RETIRED_SOP_CLASS", "ODD_CHARSET", "PRIVATE_TAGS", "SPLIT_STUDY",
    "DISALLOWED_SOP_CLASS", "DISALLOWED_TRANSFER_SYNTAX",
]
