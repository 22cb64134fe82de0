"""HL7 v2 messages the simulated EHR and RIS exchange, built on hl7apy.

Every identity field of the world records goes on the wire, so the receiver can
rebuild the very same :class:`~simulators.world.models.Order` (see
:func:`simulators.hl7.parsing.order_from_message`). Where a value lives:

========================  ==================================================
PID-3 / PID-5 / 7 / 8     ID^^^issuer^MR, FAMILY^GIVEN, birth date, sex
MRG-1 / MRG-7 (A40)       merged (non-surviving) ID^^^issuer^MR and its name
ORC-2 / ORC-3, OBR-2/3    placer and filler order numbers (EI: number^application)
OBR-4 (and OBR-44)        procedure code^meaning^coding scheme
OBR-15.4                  body part (specimen source / body site)
OBR-16, PV1-8             referring physician (XCN: ^FAMILY^GIVEN)
OBR-18 / OBR-19 / OBR-20  accession number / requested procedure ID / SPS ID (IHE RAD)
OBR-21 / OBR-24           scheduled station AE title / modality (IHE RAD)
ORC-7, OBR-27 (ORM)       quantity/timing ^^^start^^priority (v2.3.1 style)
TQ1-7 / TQ1-9 (OMG)       start / priority (v2.5.1 style)
OBR-31                    reason for study
ZDS-1                     Study Instance UID^PACSIM^Application^DICOM (IHE RAD ZDS)
ZPS-1..11                 pacsim's exact scheduled step, see ``ZPS_FIELDS``
========================  ==================================================

The study UID goes in ZDS-1 (the IHE Radiology Z-segment real order fillers know)
and the accession in OBR-18 (the IHE mapping), rather than v2.6+ IPC, because IPC
does not exist in v2.3.1/v2.5.1 ORM and OMG. HL7 priorities (table 0027) are
coarser than DICOM's, so the exact DICOM priority, station name and step details
also travel in ZPS; a receiver without ZPS still finds everything IHE defines.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hl7apy.core import Segment

from simulators.errors import ConfigError
from simulators.hl7.ack import ack
from simulators.hl7.er7 import DEFAULT_ENCODING_CHARS, escape, hl7_timestamp, new_control_id, version_tuple
from simulators.hl7.layout import (
    ADT_STRUCTURES, DEFAULT_VERSION, DICOM_PRIORITY, HL7_PRIORITY, ORDER_CONTROLS,
    PATIENT_CLASS, ZPS_FIELDS,
)
from simulators.hl7.parsing import (
    merged_patient_id, order_fields, order_from_message, parse, patient_from_message,
)
from simulators.world.models import Order, Patient

@dataclass(frozen=True, slots=True)
class Endpoints:
    """MSH-3..6: who sends and who receives (applications and facilities)."""

    sending_application: str = "PACSIM_EHR"
    sending_facility: str = "PACSIM"
    receiving_application: str = "PACSIM_RIS"
    receiving_facility: str = "PACSIM"


def components(*values: str) -> str:
    """Join escaped values with the component separator, trailing empties dropped."""
    return "^".join(escape(v) for v in values).rstrip("^")


def adt(event: str, patient: Patient, *, merged: Patient | None = None,
        endpoints: Endpoints | None = None, version: str = DEFAULT_VERSION,
        patient_class: str | None = None, control_id: str | None = None,
        when: dt.datetime | None = None) -> str:
    """ADT^A01 (admit), A04 (register), A08 (update) or A40 (merge ``merged`` into
    ``patient``, the surviving record)."""
    if event not in ADT_STRUCTURES:
        raise ConfigError(f"unsupported ADT event {event!r}", supported=sorted(ADT_STRUCTURES))
    if (event == "A40") != (merged is not None):
        raise ConfigError("ADT^A40 needs merged=..., and only A40 takes it", event=event)
    now = when or dt.datetime.now()
    body = [
        _segment("EVN", version, {1: event, 2: hl7_timestamp(now)}),
        _pid(patient, version),
    ]
    if merged is not None:
        body.append(_segment("MRG", version, {
            1: components(merged.patient_id, "", "", merged.issuer, "MR"),
            7: components(merged.family_name, merged.given_name),
        }))
    body.append(_segment("PV1", version, {1: "1", 2: patient_class or PATIENT_CLASS[event]}))
    return _message(f"ADT^{event}^{ADT_STRUCTURES[event]}", body, endpoints, version,
                    control_id, now)


def orm_o01(order: Order, control: str = "NW", *, endpoints: Endpoints | None = None,
            version: str = DEFAULT_VERSION, control_id: str | None = None,
            when: dt.datetime | None = None) -> str:
    """ORM^O01 (RAD-2 placer order; the form v2.3.1 sites run) with NW, CA or XO."""
    ends = endpoints or Endpoints()
    now = when or dt.datetime.now()
    timing = _timing(order)
    body = [_pid(order.patient, version), _pv1(order, version),
            _orc(order, control, ends, version, now, timing),
            _obr(order, _apps(ends), version, timing), *_z_segments(order, version)]
    return _message("ORM^O01^ORM_O01", body, ends, version, control_id, now)


def omg_o19(order: Order, control: str = "NW", *, endpoints: Endpoints | None = None,
            version: str = DEFAULT_VERSION, control_id: str | None = None,
            when: dt.datetime | None = None) -> str:
    """OMG^O19 (RAD-2 in IHE SWF.b, HL7 v2.5.1): timing in TQ1 instead of ORC-7/OBR-27.

    Refused with :class:`ConfigError` before v2.5: OMG^O19 does not exist in v2.3.1
    (it came with v2.4) and the TQ1 segment it carries here came with v2.5, so an
    older version cannot be honoured and must not be silently replaced by 2.5.1.
    """
    if version_tuple(version) < (2, 5):
        raise ConfigError("OMG^O19 needs HL7 v2.5 or later (not in v2.3.1; TQ1 is v2.5); "
                          "use ORM^O01 for older versions", version=version)
    ends = endpoints or Endpoints()
    now = when or dt.datetime.now()
    tq1 = _segment("TQ1", version, {1: "1", 7: hl7_timestamp(order.step.start),
                                    9: HL7_PRIORITY.get(order.priority, "R")})
    body = [_pid(order.patient, version), _pv1(order, version),
            _orc(order, control, ends, version, now, None), tq1,
            _obr(order, _apps(ends), version, None), *_z_segments(order, version)]
    return _message("OMG^O19^OMG_O19", body, ends, version, control_id, now)


def oru_r01(order: Order, report_text: str, *, endpoints: Endpoints | None = None,
            version: str = DEFAULT_VERSION, result_status: str = "F",
            control_id: str | None = None, when: dt.datetime | None = None) -> str:
    """ORU^R01 carrying a radiology report back to the EHR, one OBX (TX) per line."""
    ends = endpoints or Endpoints("PACSIM_RIS", "PACSIM", "PACSIM_EHR", "PACSIM")
    now = when or dt.datetime.now()
    # The report travels filler -> placer, so the order numbers' namespaces swap.
    apps = (ends.receiving_application, ends.sending_application)
    obr = _obr(order, apps, version, None, extra={7: hl7_timestamp(order.step.start),
                                                  22: hl7_timestamp(now), 25: result_status})
    body = [_pid(order.patient, version), _pv1(order, version), obr]
    lines = report_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        body.append(_segment("OBX", version, {
            1: str(number), 2: "TX", 3: "18782-3^Radiology Study observation^LN",
            4: "1", 5: escape(line), 11: result_status,
        }))
    return _message("ORU^R01^ORU_R01", body, ends, version, control_id, now)


# -- segments -----------------------------------------------------------------------
def _message(message_type: str, body: list[str], endpoints: Endpoints | None, version: str,
             control_id: str | None, when: dt.datetime) -> str:
    """MSH plus body; MSH-18 says UTF-8 when any value is not plain ASCII.

    The MSH-18 value must be one of *this version's* table 0211: ``UNICODE UTF-8``
    only exists from v2.5, and a v2.3.1/v2.4 receiver validating MSH-18 would refuse
    it (issue 13), so those get their only Unicode value, ``UNICODE``, which
    receivers (pacsim's included, see :mod:`simulators.hl7.charsets`) read as UTF-8.
    """
    ends = endpoints or Endpoints()
    non_ascii = any(not segment.isascii() for segment in body)
    msh = Segment("MSH", version=version)
    msh.msh_1 = "|"  # a stand-alone segment has no message to inherit these from
    msh.msh_2 = DEFAULT_ENCODING_CHARS
    msh.msh_3 = escape(ends.sending_application)
    msh.msh_4 = escape(ends.sending_facility)
    msh.msh_5 = escape(ends.receiving_application)
    msh.msh_6 = escape(ends.receiving_facility)
    msh.msh_7 = hl7_timestamp(when)
    msh.msh_9 = message_type
    msh.msh_10 = control_id or new_control_id()
    msh.msh_11 = "P"
    msh.msh_12 = version
    if non_ascii:
        msh.msh_18 = "UNICODE UTF-8" if version_tuple(version) >= (2, 5) else "UNICODE"
    return "\r".join([msh.to_er7(), *body])


def _segment(name: str, version: str, fields: dict[int, str]) -> str:
    """One segment built by hl7apy (checks that each field exists in ``version``)."""
    segment = Segment(name, version=version)
    prefix = name.lower()
    for number, value in sorted(fields.items()):
        if value:
            setattr(segment, f"{prefix}_{number}", value)
    return segment.to_er7()


def _pid(patient: Patient, version: str) -> str:
    return _segment("PID", version, {
        1: "1",
        3: components(patient.patient_id, "", "", patient.issuer, "MR"),
        5: components(patient.family_name, patient.given_name),
        7: hl7_timestamp(patient.birth_date),
        8: patient.sex,
    })


def _xcn(person_name: str) -> str:
    """A DICOM-style ``FAMILY^GIVEN`` name as an XCN with no ID: ``^FAMILY^GIVEN``."""
    if not person_name:
        return ""
    return "^" + components(*person_name.split("^"))


def _pv1(order: Order, version: str) -> str:
    return _segment("PV1", version, {1: "1", 2: "O", 8: _xcn(order.referring_physician)})


def _apps(ends: Endpoints) -> tuple[str, str]:
    """(placer, filler) application names for an order sent placer -> filler."""
    return ends.sending_application, ends.receiving_application


def _timing(order: Order) -> str:
    """TQ (ORC-7/OBR-27): ^^^start^^priority."""
    return f"^^^{hl7_timestamp(order.step.start)}^^{HL7_PRIORITY.get(order.priority, 'R')}"


def _orc(order: Order, control: str, ends: Endpoints, version: str, now: dt.datetime,
         timing: str | None) -> str:
    if control not in ORDER_CONTROLS:
        raise ConfigError(f"unsupported order control {control!r}",
                          supported=sorted(ORDER_CONTROLS))
    placer_app, filler_app = _apps(ends)
    return _segment("ORC", version, {
        1: control,
        2: components(order.placer_number, placer_app),
        3: components(order.filler_number, filler_app) if order.filler_number else "",
        5: "CA" if control == "CA" else "",
        7: timing or "",
        9: hl7_timestamp(now),
        12: _xcn(order.referring_physician),
    })


def _obr(order: Order, apps: tuple[str, str], version: str, timing: str | None,
         extra: dict[int, str] | None = None) -> str:
    procedure = order.procedure
    placer_app, filler_app = apps
    code = components(procedure.code, procedure.meaning, procedure.scheme)
    fields = {
        1: "1",
        2: components(order.placer_number, placer_app),
        3: components(order.filler_number, filler_app) if order.filler_number else "",
        4: code,
        15: "^^^" + escape(procedure.body_part) if procedure.body_part else "",
        16: _xcn(order.referring_physician),
        18: escape(order.accession),
        19: escape(order.requested_procedure_id),
        20: escape(order.step.step_id),
        21: escape(order.step.station_ae),
        24: escape(order.procedure.modality),
        27: timing or "",
        31: "^" + escape(order.reason) if order.reason else "",
        44: code,
    }
    fields.update(extra or {})
    return _segment("OBR", version, fields)


def _z_segments(order: Order, version: str) -> list[str]:
    """ZDS (IHE: study UID) and ZPS (pacsim: the exact scheduled step)."""
    step = order.step
    values = {
        "step_id": step.step_id, "station_ae": step.station_ae,
        "station_name": step.station_name, "modality": step.modality,
        "scheduled_start": hl7_timestamp(step.start), "step_description": step.description,
        "performing_physician": step.performing_physician, "step_status": step.status,
        "requested_procedure_id": order.requested_procedure_id, "priority": order.priority,
        "body_part": order.procedure.body_part,
    }
    zps = _segment("ZPS", version, {n: escape(values[key]) for n, key in ZPS_FIELDS.items()})
    zds = _segment("ZDS", version, {1: f"{escape(order.study_uid)}^PACSIM^Application^DICOM"})
    return [zds, zps]


__all__ = [
    "DEFAULT_VERSION", "Endpoints", "ORDER_CONTROLS", "ZPS_FIELDS", "HL7_PRIORITY",
    "DICOM_PRIORITY", "adt", "orm_o01", "omg_o19", "oru_r01", "ack", "parse",
    "patient_from_message", "order_fields", "order_from_message", "merged_patient_id",
    "components",
]
