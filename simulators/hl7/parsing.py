"""Reading HL7 v2 messages back into world records, with errors an ACK can carry.

:func:`parse` is tolerant of LF separators and parses *flat* (segments as direct
children, no groups): sites send ORM^O01 with segments in slightly wrong groups all
the time, and the order filler still has to read them. Everything that cannot be
read raises :class:`~simulators.hl7.er7.Hl7Error` with the table 0357 code and ERL
location that belong in the NACK, so a handler can simply let it propagate: the
MLLP server answers AE/AR with ERR from it.

Extractors read pacsim's exact ZPS segment when present and otherwise the IHE
fields (OBR-18..24, ORC-7/OBR-27 or TQ1), so orders from other placers work too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hl7apy import SUPPORTED_LIBRARIES
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message, Segment
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from simulators.errors import Hl7Error
from simulators.hl7.er7 import read_header, unescape
from simulators.hl7.framing import normalize_segments
from simulators.hl7.layout import DICOM_PRIORITY, ORDER_CONTROLS, ZPS_FIELDS
from simulators.world.models import Order, Patient, Procedure, ScheduledStep

_SEXES = {"M": "M", "F": "F", "O": "O", "U": "O", "A": "O", "N": "O"}  # table 0001 -> DICOM


def parse(text: str) -> Message:
    """Parse ER7 text (CR, LF or CRLF separators) into a flat hl7apy Message.

    Raises :class:`Hl7Error`: 100 (no MSH, unknown segment, broken encoding
    characters), 203 (HL7 version hl7apy does not know).
    """
    text = normalize_segments(text.lstrip())
    header = read_header(text)  # raises 100 when there is no MSH
    if header.version not in SUPPORTED_LIBRARIES:
        raise Hl7Error(f"unsupported HL7 version {header.version!r}", hl7_code=203,
                       location="MSH^1^12")
    try:
        return parse_message(text, find_groups=False,
                             validation_level=VALIDATION_LEVEL.TOLERANT)
    except HL7apyException as exc:
        raise Hl7Error(f"cannot parse message: {exc}", hl7_code=100) from exc


def segments_named(msg: Message, name: str) -> list[Segment]:
    """All segments called ``name`` in a flat message, in order."""
    return [child for child in msg.children if child.name == name]


def field(msg: Message, segment: str, number: int, component: int = 1,
          subcomponent: int = 1) -> str:
    """One unescaped value: first segment ``segment``, first repetition of field
    ``number``, ``component`` and ``subcomponent`` (1-based). "" when absent."""
    found = segments_named(msg, segment)
    if not found:
        return ""
    wanted = f"{segment}_{number}"
    for child in found[0].children:
        if child.name == wanted:
            parts = child.to_er7().split("~")[0].split("^")
            if len(parts) < component:
                return ""
            subparts = parts[component - 1].split("&")
            return unescape(subparts[subcomponent - 1]) if len(subparts) >= subcomponent else ""
    return ""


def _require(msg: Message, segment: str, number: int, what: str, component: int = 1) -> str:
    if not segments_named(msg, segment):
        raise Hl7Error(f"{segment} segment missing", hl7_code=100, location=f"{segment}^1")
    value = field(msg, segment, number, component)
    if not value:
        raise Hl7Error(f"{what} missing ({segment}-{number})", hl7_code=101,
                       location=f"{segment}^1^{number}")
    return value


def parse_dtm(value: str, location: str) -> dt.datetime:
    """HL7 DTM/TS (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as a naive datetime."""
    digits = value.split("+")[0].split("-")[0].split(".")[0]
    formats = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    try:
        return dt.datetime.strptime(digits, formats[len(digits)])
    except (KeyError, ValueError):
        raise Hl7Error(f"not an HL7 date/time: {value!r}", hl7_code=102,
                       location=location) from None


def patient_from_message(msg: Message) -> Patient:
    """The PID patient (ID, issuer, name, birth date, sex) as a world ``Patient``.

    The name is already text (the listener decoded the frame by MSH-18), so a
    non-ASCII name always gets DICOM ``ISO_IR 192`` (UTF-8), whatever HL7 character
    set it arrived in: one DICOM set for every worklist item is simpler for the
    modalities than mirroring 8859/2 as ISO_IR 101 and so on, and UTF-8 holds all.
    """
    patient_id = _require(msg, "PID", 3, "patient ID")
    family = _require(msg, "PID", 5, "patient family name")
    birth = _require(msg, "PID", 7, "birth date")
    sex = field(msg, "PID", 8)
    if sex and sex not in _SEXES:
        raise Hl7Error(f"administrative sex {sex!r} not in table 0001", hl7_code=103,
                       location="PID^1^8")
    given = field(msg, "PID", 5, 2)
    name = family + given
    return Patient(
        patient_id=patient_id, issuer=field(msg, "PID", 3, 4),
        family_name=family, given_name=given,
        birth_date=parse_dtm(birth, "PID^1^7").date(), sex=_SEXES.get(sex, "O"),
        charset=None if name.isascii() else "ISO_IR 192",
    )


def merged_patient_id(msg: Message) -> str:
    """MRG-1: the ID of the record merged away by ADT^A40."""
    return _require(msg, "MRG", 1, "prior patient ID")


def _xcn_name(msg: Message, segment: str, number: int) -> str:
    """An XCN (``ID^FAMILY^GIVEN``) back to the DICOM-style ``FAMILY^GIVEN``."""
    family, given = field(msg, segment, number, 2), field(msg, segment, number, 3)
    return f"{family}^{given}".rstrip("^") if family or given else ""


def order_fields(msg: Message) -> dict[str, Any]:
    """Everything an order filler needs from ORM^O01 / OMG^O19, by meaning.

    Keys: control, order_status, placer, filler, accession, requested_procedure_id,
    step_id, station_ae, station_name, modality, procedure_code, procedure_text,
    procedure_scheme, body_part, priority (DICOM), scheduled_start (datetime or None),
    study_uid, referring_physician, reason, step_description, performing_physician,
    step_status. ZPS wins over the IHE fields when both are present.
    """
    control = _require(msg, "ORC", 1, "order control")
    if control not in ORDER_CONTROLS:
        raise Hl7Error(f"order control {control!r} not supported", hl7_code=103,
                       location="ORC^1^1")
    if not segments_named(msg, "OBR"):
        raise Hl7Error("OBR segment missing", hl7_code=100, location="OBR^1")
    zps = {key: field(msg, "ZPS", number) for number, key in ZPS_FIELDS.items()}
    timing_start = (field(msg, "TQ1", 7) or field(msg, "OBR", 27, 4)
                    or field(msg, "ORC", 7, 4))
    hl7_priority = (field(msg, "TQ1", 9) or field(msg, "OBR", 27, 6)
                    or field(msg, "ORC", 7, 6))
    start_text = zps["scheduled_start"] or timing_start
    procedure_text = field(msg, "OBR", 4, 2) or field(msg, "OBR", 44, 2)
    return {
        "control": control,
        "order_status": field(msg, "ORC", 5),
        "placer": field(msg, "ORC", 2) or field(msg, "OBR", 2),
        "filler": field(msg, "ORC", 3) or field(msg, "OBR", 3),
        "accession": field(msg, "OBR", 18),
        "requested_procedure_id": zps["requested_procedure_id"] or field(msg, "OBR", 19),
        "step_id": zps["step_id"] or field(msg, "OBR", 20),
        "station_ae": zps["station_ae"] or field(msg, "OBR", 21),
        "station_name": zps["station_name"],
        "modality": zps["modality"] or field(msg, "OBR", 24),
        "procedure_code": field(msg, "OBR", 4) or field(msg, "OBR", 44),
        "procedure_text": procedure_text,
        "procedure_scheme": field(msg, "OBR", 4, 3) or field(msg, "OBR", 44, 3),
        "body_part": zps["body_part"] or field(msg, "OBR", 15, 4),
        "priority": zps["priority"] or DICOM_PRIORITY.get(hl7_priority, "ROUTINE"),
        "scheduled_start": parse_dtm(start_text, "TQ1^1^7") if start_text else None,
        "study_uid": field(msg, "ZDS", 1),
        "referring_physician": _xcn_name(msg, "OBR", 16) or _xcn_name(msg, "PV1", 8),
        "reason": field(msg, "OBR", 31, 2) or field(msg, "OBR", 31, 1),
        "step_description": zps["step_description"] or procedure_text,
        "performing_physician": zps["performing_physician"],
        "step_status": zps["step_status"] or "SCHEDULED",
    }


def order_from_message(msg: Message) -> Order:
    """Rebuild the world ``Order`` an ORM^O01/OMG^O19 describes (``extra`` stays empty)."""
    fields = order_fields(msg)
    if not fields["accession"]:
        raise Hl7Error("accession number missing (OBR-18)", hl7_code=101,
                       location="OBR^1^18")
    if fields["scheduled_start"] is None:
        raise Hl7Error("scheduled start missing (TQ1-7 / OBR-27.4)", hl7_code=101,
                       location="TQ1^1^7")
    procedure = Procedure(code=fields["procedure_code"], meaning=fields["procedure_text"],
                          scheme=fields["procedure_scheme"], modality=fields["modality"],
                          body_part=fields["body_part"])
    step = ScheduledStep(step_id=fields["step_id"], station_ae=fields["station_ae"],
                         station_name=fields["station_name"], modality=fields["modality"],
                         start=fields["scheduled_start"],
                         description=fields["step_description"],
                         performing_physician=fields["performing_physician"],
                         status=fields["step_status"])
    return Order(placer_number=fields["placer"], filler_number=fields["filler"],
                 accession=fields["accession"], patient=patient_from_message(msg),
                 procedure=procedure, requested_procedure_id=fields["requested_procedure_id"],
                 study_uid=fields["study_uid"], step=step, priority=fields["priority"],
                 referring_physician=fields["referring_physician"], reason=fields["reason"])


def report_text(msg: Message) -> str:
    """The text of an ORU^R01: every OBX-5, one line each."""
    lines = []
    for obx in segments_named(msg, "OBX"):
        value = ""
        for child in obx.children:
            if child.name == "OBX_5":
                value = unescape(child.to_er7().split("~")[0])
        lines.append(value)
    return "\n".join(lines)


__all__ = [
    "parse", "segments_named", "field", "parse_dtm", "patient_from_message",
    "merged_patient_id", "order_fields", "order_from_message", "report_text",
]
