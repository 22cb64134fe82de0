"""The RIS's HL7 front: ADT and orders in (RAD-1, RAD-2, RAD-12), ACKs out.

Why a module of its own: deciding what an incoming message *means* for the order book
(and which ACK/ERR it earns) is the order filler's business logic; the MLLP server
only moves frames. Messages are processed one at a time, in arrival order, the way
an order filler's interface engine does, so an A08 never races the NW it follows.

ACK policy (HL7 v2.5.1 chapter 2, table 0357), original acknowledgment mode:

* AA: accepted and applied;
* AE 101 required field missing (no PID-3, no OBR-18...), AE 102 bad date,
  AE 103 table value not found (sex ``Q``, order control ``ZZ``), AE 204 unknown
  key (cancel or change, CA/XO, for an order the RIS never had), AE 205
  duplicate key (NW for an accession that is already being performed);
* AR 200 unsupported message type, AR 201 unsupported trigger event;
* a repeated MSH-10 from the same sender gets the *identical* ACK again and has no
  second effect (senders retry after a lost ACK; a retry must not double-book);
* AR 205 (duplicate key, at MSH-10) for a *different* message under an MSH-10 the
  same sender already used: replaying the first ACK would tell the sender a message
  we never processed was accepted (issue 13). "The same message" means the same
  decoded text with MSH-7 (date/time of message) ignored, because a retry may be
  restamped; every other byte, other MSH fields included, must match. AR, not AE:
  the envelope is wrong, the content was never looked at. The AR is not remembered,
  so the original retransmission keeps getting its own ACK.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, Mapping

from hl7apy.core import Message
from pydicom.uid import generate_uid

from simulators.actors.ris_orders import OrderBook
from simulators.errors import Hl7Error, WorldError
from simulators.hl7.ack import ack
from simulators.hl7.er7 import Header, is_health_check, read_header
from simulators.hl7.framing import normalize_segments
from simulators.hl7.parsing import (
    merged_patient_id, order_fields, order_from_message, parse, patient_from_message,
)
from simulators.world.models import Order

log = logging.getLogger(__name__)

ADT_REGISTER_EVENTS = frozenset({"A01", "A04", "A05", "A08"})
ORDER_TRIGGERS = {"ORM": "O01", "OMG": "O19"}
#: How many (sender, control ID) answers are remembered for duplicate detection.
CONTROL_ID_MEMORY = 10_000

Station = tuple[str, str]
OrderListener = Callable[[Order, str], None]


def fill_order_gaps(order: Order, stations: Mapping[str, Station],
                    default_station: Station | None) -> Order:
    """Give an order from a foreign placer what the filler must assign itself.

    IHE leaves the Study Instance UID, requested procedure ID, step ID and station to
    the order filler when the placer does not send them. The study UID is derived
    from the accession (same accession, same UID) so a resent order stays stable.
    """
    step = order.step
    modality = step.modality or order.procedure.modality
    if not modality:
        raise Hl7Error("modality missing (OBR-24)", hl7_code=101, location="OBR^1^24")
    routed = stations.get(modality) or default_station
    station_ae = step.station_ae or (routed[0] if routed else "")
    station_name = step.station_name or (routed[1] if routed and not step.station_ae
                                         else station_ae)
    step = replace(step, modality=modality, station_ae=station_ae, station_name=station_name,
                   step_id=step.step_id or f"{order.accession}-1",
                   description=step.description or order.procedure.meaning)
    return order.with_changes(
        step=step,
        requested_procedure_id=order.requested_procedure_id or order.accession,
        study_uid=order.study_uid or generate_uid(entropy_srcs=["pacsim-ris", order.accession]),
        filler_number=order.filler_number or order.accession,
    )


def message_fingerprint(text: str) -> str:
    """A digest of the message with MSH-7 blanked: equal for a true retransmission.

    Senders retrying after a lost ACK sometimes restamp MSH-7 (date/time of message)
    and nothing else; any other difference makes it a different message.
    """
    lines = normalize_segments(text.lstrip()).split("\r")
    first = lines[0]
    if first.startswith("MSH") and len(first) > 3:
        fields = first.split(first[3])
        if len(fields) > 6:  # fields[6] is MSH-7 (fields[1] is MSH-2)
            fields[6] = ""
        lines[0] = first[3].join(fields)
    return hashlib.sha256("\r".join(lines).encode("utf-8", "surrogatepass")).hexdigest()


class RisHl7Handler:
    """Callable for :class:`~simulators.hl7.mllp.MllpServer`: message text in, ACK out."""

    def __init__(self, book: OrderBook, *, stations: Mapping[str, Station] | None = None,
                 default_station: Station | None = None,
                 on_order: OrderListener | None = None, application: str = "PACSIM_RIS") -> None:
        self.book = book
        self.stations = dict(stations or {})
        self.default_station = default_station
        self.on_order = on_order
        self.application = application
        self._lock = threading.Lock()
        #: (sender, MSH-10) -> (fingerprint of the message, the ACK it got)
        self._answers: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()

    def __call__(self, text: str) -> str:
        header = read_header(text)  # no MSH at all: Hl7Error 100, the server NACKs it
        key = (header.sending_application, header.control_id)
        fingerprint = message_fingerprint(text)
        with self._lock:
            if header.control_id and key in self._answers:
                seen, answer = self._answers[key]
                if seen == fingerprint:
                    log.info("duplicate control ID %s from %s: same ACK, no effect",
                             header.control_id, header.sending_application or "?")
                    return answer
                log.warning("control ID %s from %s reused for a different message: AR 205",
                            header.control_id, header.sending_application or "?")
                return ack(text, "AR", error_code=205, error_location="MSH^1^10",
                           error_text=f"message control ID {header.control_id} already "
                                      "used for a different message",
                           sending_application=self.application)
            try:
                self._dispatch(parse(text), header)
                reply = ack(text, "AA", sending_application=self.application)
            except Hl7Error as exc:
                if is_health_check(header):  # answered, not worth a line at INFO
                    log.debug("health check from %s answered", header.sending_application)
                else:
                    log.info("HL7 %s^%s refused: %s", header.message_type,
                             header.trigger_event, exc)
                reply = ack(text, exc.ack_code, error_code=exc.hl7_code, error_text=exc.message,
                            error_location=exc.location, sending_application=self.application)
            if header.control_id:
                self._answers[key] = (fingerprint, reply)
                while len(self._answers) > CONTROL_ID_MEMORY:
                    self._answers.popitem(last=False)
            return reply

    # ----------------------------------------------------------------- dispatch
    def _dispatch(self, msg: Message, header: Header) -> None:
        kind, event = header.message_type, header.trigger_event
        if kind == "ADT":
            self._adt(msg, event)
        elif kind in ORDER_TRIGGERS:
            if event != ORDER_TRIGGERS[kind]:
                raise Hl7Error(f"{kind}^{event} is not supported", hl7_code=201,
                               location="MSH^1^9^2")
            self._order(msg)
        else:
            raise Hl7Error(f"message type {kind or '?'} is not supported", hl7_code=200,
                           location="MSH^1^9")

    def _adt(self, msg: Message, event: str) -> None:
        if event in ADT_REGISTER_EVENTS:
            changed = self.book.register_patient(patient_from_message(msg))
            log.info("ADT^%s applied; %d order(s) updated", event, changed)
        elif event == "A40":
            surviving = patient_from_message(msg)
            merged = merged_patient_id(msg)
            moved = self.book.merge(surviving, merged)
            log.info("ADT^A40: %s merged into %s; %d order(s) moved", merged,
                     surviving.patient_id, moved)
        else:
            raise Hl7Error(f"ADT^{event} is not supported", hl7_code=201, location="MSH^1^9^2")

    def _order(self, msg: Message) -> None:
        fields = order_fields(msg)
        control = fields["control"]
        if control == "CA":
            existing = self._existing_order(fields, "cancel")
            cancelled = self.book.cancel(existing.accession)
            if cancelled is not None:
                log.info("cancelled order %s for patient %s", cancelled.accession,
                         cancelled.patient.patient_id)
                self._notify(cancelled, "CA")
            return
        if control == "XO":
            # A change names an order we must already hold: booking it as new would
            # schedule an exam nobody ordered (issue 13). Refused exactly like CA.
            self._existing_order(fields, "change")
        order = fill_order_gaps(order_from_message(msg), self.stations, self.default_station)
        try:
            scheduled = self.book.schedule(order)
        except WorldError as exc:
            raise Hl7Error(exc.message, hl7_code=205, location="OBR^1^18") from exc
        log.info("accepted order %s (%s) for patient %s: %s on %s", scheduled.accession,
                 control, scheduled.patient.patient_id, scheduled.procedure.meaning,
                 scheduled.step.station_ae or "?")
        self._notify(scheduled, control)

    def _existing_order(self, fields: Mapping[str, object], action: str) -> Order:
        """The order a CA/XO refers to (by accession, else placer number).

        Raises :class:`Hl7Error` 204 (unknown key, AE) at ORC-2 when the RIS never had
        it: CA and XO share this so both refuse an unknown order the same way.
        """
        accession, placer = str(fields["accession"] or ""), str(fields["placer"] or "")
        existing = (self.book.order(accession) if accession else None) \
            or (self.book.find_by_placer(placer) if placer else None)
        if existing is None:
            raise Hl7Error(f"no such order to {action}", hl7_code=204, location="ORC^1^2")
        return existing

    def _notify(self, order: Order, control: str) -> None:
        if self.on_order is None:
            return
        try:
            self.on_order(order, control)
        except Exception:  # noqa: BLE001 - forwarding trouble never changes our ACK
            log.exception("order listener failed for %s", order.accession)


__all__ = ["RisHl7Handler", "fill_order_gaps", "message_fingerprint", "ADT_REGISTER_EVENTS", "ORDER_TRIGGERS"]
