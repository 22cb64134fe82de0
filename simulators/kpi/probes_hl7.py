"""HL7 probes: order-to-worklist latency and order-to-report turnaround.

Order to worklist: the probe plays the EHR. It sends a canary ORM^O01 (or OMG^O19)
with a fresh accession to the order filler over MLLP and polls the worklist until
the accession is listed: what a technologist waits for between "ordered" and "I
can pick it on the scanner". The order is cancelled (ORC-1 CA) afterwards so the
canary does not stay on the canary station's worklist.

Order to report: only a reporting peer can answer (a RIS/reporting system sending
ORU^R01 to the probe's own MLLP listener). Without a configured listener the
probe says "not measured" rather than inventing a figure.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from simulators.errors import ConfigError, NotMeasured, ProbeTimeout, ProtocolError, StatusError
from simulators.events import EventBus
from simulators.hl7 import messages
from simulators.hl7.ack import ack
from simulators.hl7.er7 import ack_code, msa_text
from simulators.hl7.mllp import MllpServer
from simulators.hl7.mllp_client import MllpClient
from simulators.hl7.parsing import field, parse
from simulators.kpi.canary import CanaryCycle
from simulators.kpi.probes_dicom import wait_for_worklist_item
from simulators.kpi.target import ProbeTarget
from simulators.world.models import Order

ENDPOINTS = messages.Endpoints(sending_application="PACSIM_PROBE")
ORDER_MESSAGES = ("orm", "omg")
#: Reports for accessions nobody waits for are acknowledged and forgotten; at most
#: this many arrivals are remembered (a chatty reporting peer cannot grow memory).
MAX_REMEMBERED = 256


def send_order(target: ProbeTarget, order: Order, control: str = "NW", *, kind: str = "orm",
               events: EventBus | None = None) -> None:
    """Send one canary order message; StatusError (ProtocolError without an MSA)
    unless the ACK is AA/CA."""
    if target.hl7 is None:
        raise NotMeasured("not measured: no order filler configured (--hl7 HOST:PORT)")
    if kind not in ORDER_MESSAGES:
        raise ConfigError("order message must be orm or omg", kind=kind)
    build = messages.orm_o01 if kind == "orm" else messages.omg_o19
    text = build(order, control, endpoints=ENDPOINTS) if kind == "orm" else \
        build(order, control, endpoints=ENDPOINTS, version="2.5.1")
    host, port = target.hl7
    with MllpClient(host, port, timeout=target.timeout, events=events, name="probe") as client:
        reply = client.send(text)
    code = ack_code(reply)
    if code not in ("AA", "CA"):
        message = f"order {control} answered {code or 'no MSA'}: {msa_text(reply)}"
        if not code:
            raise ProtocolError(message, peer=f"{host}:{port}", accession=order.accession)
        raise StatusError(message, status=code, peer=f"{host}:{port}", accession=order.accession)


def order_to_worklist(target: ProbeTarget, cycle: CanaryCycle, *, kind: str = "orm",
                      events: EventBus | None = None,
                      on_accepted: Callable[[float], None] | None = None
                      ) -> tuple[float, dict[str, float]]:
    """From the order's first byte sent to the first worklist answer listing it.

    ``on_accepted(sent_at)`` is called once the order filler acknowledged the order
    (the report turnaround starts from the same instant).
    """
    if target.worklist is None:
        raise NotMeasured("not measured: no worklist peer configured (--worklist AE@HOST:PORT)")
    started = time.perf_counter()
    send_order(target, cycle.order, kind=kind, events=events)
    if on_accepted is not None:
        on_accepted(started)
    acked = time.perf_counter() - started
    polls = wait_for_worklist_item(target, cycle.accession, events)
    return time.perf_counter() - started, {"ack_seconds": acked, "polls": float(polls)}


class ReportListener:
    """The probe's own MLLP listener for ORU^R01: records when each report arrived.

    A report is matched to a canary order by accession (OBR-18). Every well-formed
    message is acknowledged AA (the reporting peer must not retry forever); an
    unreadable one gets the AE/AR the MLLP server derives from the parse error.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 events: EventBus | None = None) -> None:
        self._arrived: dict[str, float] = {}
        self._changed = threading.Condition()
        self._server = MllpServer(self._on_message, host, port, name="probe-reports",
                                  events=events)

    def _on_message(self, text: str) -> str:
        accession = field(parse(text), "OBR", 18)  # Hl7Error -> the server's AE/AR ACK
        with self._changed:
            if accession:
                self._arrived[accession] = time.perf_counter()
                while len(self._arrived) > MAX_REMEMBERED:
                    self._arrived.pop(next(iter(self._arrived)))
            self._changed.notify_all()
        return ack(text, "AA")

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    def start(self) -> "ReportListener":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def wait(self, accession: str, deadline: float) -> float:
        """perf_counter time the report for ``accession`` arrived; ProbeTimeout at deadline."""
        with self._changed:
            while accession not in self._arrived:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise ProbeTimeout(f"no report (ORU) for accession {accession} in time")
                self._changed.wait(remaining)
            return self._arrived.pop(accession)


def order_to_report(listener: ReportListener | None, accession: str, ordered_at: float | None,
                    timeout: float) -> tuple[float, dict[str, float]]:
    """Seconds from sending the order (``ordered_at``, perf_counter) to its ORU arriving."""
    if listener is None:
        raise NotMeasured("not measured: no reporting peer configured (--report-listen)")
    if ordered_at is None:
        raise NotMeasured("not measured: the canary order was not placed this cycle")
    arrived = listener.wait(accession, ordered_at + timeout)
    return arrived - ordered_at, {}


__all__ = ["send_order", "order_to_worklist", "order_to_report", "ReportListener",
           "ORDER_MESSAGES"]
