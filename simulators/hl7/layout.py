"""Where pacsim puts things in HL7 v2: the constants builders and parsers share.

Kept apart from both :mod:`simulators.hl7.messages` (building) and
:mod:`simulators.hl7.parsing` (reading) so the two directions cannot drift: a field
number changed here changes both. The full field map is in the messages docstring.
"""

from __future__ import annotations

DEFAULT_VERSION = "2.5.1"
ORDER_CONTROLS = frozenset({"NW", "CA", "XO"})
ADT_STRUCTURES = {"A01": "ADT_A01", "A04": "ADT_A01", "A08": "ADT_A01", "A40": "ADT_A39"}
PATIENT_CLASS = {"A01": "I", "A04": "O", "A08": "I", "A40": "I"}  # HL7 table 0004

#: DICOM Requested Procedure Priority -> HL7 table 0027 (S stat, A ASAP, R routine).
#: Lossy (MEDIUM and LOW become R), which is why ZPS-10 carries the DICOM value.
HL7_PRIORITY = {"STAT": "S", "HIGH": "A", "ROUTINE": "R", "MEDIUM": "R", "LOW": "R"}
DICOM_PRIORITY = {"S": "STAT", "A": "HIGH", "R": "ROUTINE"}

#: pacsim's ZPS (scheduled procedure step) segment: field number -> meaning.
ZPS_FIELDS = {
    1: "step_id", 2: "station_ae", 3: "station_name", 4: "modality", 5: "scheduled_start",
    6: "step_description", 7: "performing_physician", 8: "step_status",
    9: "requested_procedure_id", 10: "priority", 11: "body_part",
}

__all__ = [
    "DEFAULT_VERSION", "ORDER_CONTROLS", "ADT_STRUCTURES", "PATIENT_CLASS", "HL7_PRIORITY",
    "DICOM_PRIORITY", "ZPS_FIELDS",
]
