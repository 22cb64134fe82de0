"""The EHR actor: IHE ADT and Order Placer, and the receiver of report results.

It sends ADT^A01/A04/A08/A40 and ORM^O01 or OMG^O19 (new and cancel) to the RIS
over one kept MLLP connection and records every ACK it gets back, so scenario
expectations ("the RIS accepted the order", "the merge was rejected with 201")
read ``ehr.acks`` instead of the wire. It also listens for ORU^R01 reports and
keeps them in ``ehr.results``, answering AA; any other message type gets AR with
ERR 200/201 as HL7 v2.5.1 chapter 2 requires.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from simulators.actors.base import Actor
from simulators.errors import ConfigError, Hl7Error
from simulators.events import EventBus
from simulators.tls import TlsSettings
from simulators.injection import mutations
from simulators.hl7 import raw_mllp
from simulators.injection.profile import EHR_FAULTS, FaultInjector, parse_faults
from simulators.hl7.ack import ack
from simulators.hl7.er7 import ack_code, err_code, msa_field, msa_text, read_header
from simulators.hl7.messages import Endpoints, adt, omg_o19, orm_o01
from simulators.hl7.mllp import MllpClient, MllpServer
from simulators.hl7.parsing import field, parse, report_text
from simulators.world.models import Order, Patient

ORDER_STYLES = ("ORM", "OMG")


@dataclass(frozen=True, slots=True)
class EhrConfig:
    """Where the EHR listens for results and where it sends ADT and orders."""

    name: str = "ehr"
    host: str = "127.0.0.1"
    port: int = 0  # ORU^R01 listener; 0 picks a free port
    ris_host: str = "127.0.0.1"
    ris_port: int = 0  # must be set before sending
    sending_application: str = "PACSIM_EHR"
    sending_facility: str = "PACSIM"
    receiving_application: str = "PACSIM_RIS"
    receiving_facility: str = "PACSIM"
    timeout: float = 10.0
    #: MSH-12 of every message the EHR builds; "2.3.1" for most existing sites
    #: (OMG^O19 then raises ConfigError: it needs v2.5+).
    hl7_version: str = "2.5.1"
    #: Fault profile (``simulators.injection.profile``): HL7 content and MLLP framing faults
    #: applied to outgoing messages (ids, profile names or {id, rate, nth, every, seed}).
    faults: tuple[Any, ...] = ()
    #: MLLP over TLS on our ORU listener (``port``); None = plain TCP.
    tls: TlsSettings | None = None
    #: MLLP over TLS to the RIS (``ris_host:ris_port``); None = plain TCP.
    ris_tls: TlsSettings | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", parse_faults(self.faults, allowed=EHR_FAULTS,
                                                        actor="ehr"))

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.sending_application, self.sending_facility,
                         self.receiving_application, self.receiving_facility)


@dataclass(frozen=True, slots=True)
class AckResult:
    """What the RIS answered to one message: MSA-1, our MSH-10, ERR code and text."""

    code: str
    control_id: str
    error_code: int | None = None
    text: str = ""
    message_type: str = ""

    @property
    def accepted(self) -> bool:
        return self.code in {"AA", "CA"}


@dataclass(frozen=True, slots=True)
class ReceivedResult:
    """One ORU^R01 report as the EHR stored it."""

    control_id: str
    patient_id: str
    placer: str
    filler: str
    accession: str
    status: str
    text: str


class Ehr(Actor):
    """Simulated EHR: sends ADT and orders, receives results."""

    kind = "ehr"

    def __init__(self, config: EhrConfig | None = None, events: EventBus | None = None) -> None:
        self.config = config or EhrConfig()
        super().__init__(self.config.name, events)
        self.acks: list[AckResult] = []
        self.results: list[ReceivedResult] = []
        self._send_lock = threading.Lock()  # one connection, one message at a time
        self._client: MllpClient | None = None
        self._listener: MllpServer | None = None
        self.faults = FaultInjector(self.config.faults)

    # -- lifecycle -----------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """Where the ORU listener is bound (the real port after start())."""
        if self._listener is None:
            raise ConfigError("EHR is not started", actor=self.name)
        return self._listener.address

    def describe(self) -> str:
        listening = f"{self.address[0]}:{self.address[1]}" if self._listener else "not listening"
        return (f"{self.name}: ORU listener {listening}, sends to "
                f"{self.config.ris_host}:{self.config.ris_port}")

    def _start(self) -> None:
        listener = MllpServer(self._on_message, self.config.host, self.config.port,
                              name=self.name, events=self.events, tls=self.config.tls)
        listener.start()
        self._listener = listener

    def _stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        with self._send_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def forget_logs(self, keep: int) -> None:
        """Keep only the newest ``keep`` ACKs and results: a sandbox runs all day,
        and these lists would otherwise grow with every message."""
        keep = max(0, int(keep))
        del self.acks[:len(self.acks) - keep]
        del self.results[:len(self.results) - keep]

    # -- operations (RAD-1, RAD-12, RAD-2) --------------------------------------
    def admit(self, patient: Patient) -> AckResult:
        """ADT^A01: inpatient admission."""
        return self._send(adt("A01", patient, **self._adt_options()))

    def register(self, patient: Patient) -> AckResult:
        """ADT^A04: outpatient registration."""
        return self._send(adt("A04", patient, **self._adt_options()))

    def update(self, patient: Patient) -> AckResult:
        """ADT^A08: demographics changed."""
        return self._send(adt("A08", patient, **self._adt_options()))

    def merge(self, surviving: Patient, merged: Patient) -> AckResult:
        """ADT^A40: ``merged`` is folded into ``surviving``."""
        return self._send(adt("A40", surviving, merged=merged, **self._adt_options()))

    def place_order(self, order: Order, style: str = "ORM") -> AckResult:
        """New order (NW) as ORM^O01 or OMG^O19."""
        return self._send(self._order_message(order, "NW", style))

    def cancel_order(self, order: Order, style: str = "ORM") -> AckResult:
        """Cancel request (CA) as ORM^O01 or OMG^O19."""
        return self._send(self._order_message(order, "CA", style))

    def _adt_options(self) -> dict[str, object]:
        return {"endpoints": self.config.endpoints, "version": self.config.hl7_version}

    def _order_message(self, order: Order, control: str, style: str) -> str:
        if style == "ORM":
            return orm_o01(order, control, endpoints=self.config.endpoints,
                           version=self.config.hl7_version)
        if style == "OMG":
            # The configured version, like every other message: omg_o19 refuses one
            # that has no OMG^O19 instead of the EHR sending 2.5.1 behind its back.
            return omg_o19(order, control, endpoints=self.config.endpoints,
                           version=self.config.hl7_version)
        raise ConfigError(f"unknown order style {style!r}", supported=ORDER_STYLES)

    def _send(self, message: str) -> AckResult:
        if not self.config.ris_port:
            raise ConfigError("EHR has no RIS port to send to", actor=self.name)
        header = read_header(message)
        content, framing = self.faults.pick("ehr.hl7"), self.faults.pick("mllp.frame")
        message = mutations.apply(mutations.HL7, content + framing, message)
        broken = [f for f in framing if f in raw_mllp.FRAMINGS]
        with self._send_lock:
            if broken:
                # Framing faults need raw bytes on a connection of their own.
                answer = raw_mllp.exchange(self.config.ris_host, self.config.ris_port,
                                           raw_mllp.broken_frame(broken[0], message),
                                           expect=1, wait=min(self.config.timeout, 3.0))
                if not answer.replies:
                    result = AckResult(code="", control_id=header.control_id,
                                       text=f"no ACK ({broken[0]})",
                                       message_type=f"{header.message_type}^{header.trigger_event}")
                    self.acks.append(result)
                    return result
                reply = answer.replies[0]
            else:
                if self._client is None:
                    self._client = MllpClient(self.config.ris_host, self.config.ris_port,
                                              timeout=self.config.timeout, events=self.events,
                                              name=self.name, tls=self.config.ris_tls)
                reply = self._client.send(message)
                if "hl7.duplicate-control-id" in content:
                    reply = self._client.send(message)  # the retry; its ACK is the one kept
        result = AckResult(code=ack_code(reply), control_id=header.control_id,
                           error_code=err_code(reply), text=msa_text(reply),
                           message_type=f"{header.message_type}^{header.trigger_event}")
        if msa_field(reply, 2) != header.control_id:
            self.log.warning("ACK for %s acknowledges control ID %r", header.control_id,
                             msa_field(reply, 2))
        self.acks.append(result)
        self.log.info("%s %s -> %s", result.message_type, result.control_id, result.code)
        return result

    # -- ORU^R01 listener --------------------------------------------------------
    def _on_message(self, text: str) -> str:
        header = read_header(text)
        if header.message_type != "ORU":
            raise Hl7Error(f"EHR accepts ORU only, not {header.message_type}", hl7_code=200,
                           location="MSH^1^9")
        if header.trigger_event != "R01":
            raise Hl7Error(f"EHR accepts ORU^R01 only, not {header.trigger_event}",
                           hl7_code=201, location="MSH^1^9")
        msg = parse(text)
        patient_id = field(msg, "PID", 3)
        if not patient_id:
            raise Hl7Error("patient ID missing (PID-3)", hl7_code=101, location="PID^1^3")
        self.results.append(ReceivedResult(
            control_id=header.control_id, patient_id=patient_id,
            placer=field(msg, "OBR", 2), filler=field(msg, "OBR", 3),
            accession=field(msg, "OBR", 18), status=field(msg, "OBR", 25),
            text=report_text(msg)))
        return ack(text, "AA")


__all__ = ["EhrConfig", "Ehr", "AckResult", "ReceivedResult", "ORDER_STYLES"]
