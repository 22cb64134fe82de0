"""The simulated RIS (IHE Department System Scheduler / Order Filler).

One actor, three fronts on one order book (:class:`~simulators.actors.ris_orders.OrderBook`):

* HL7 over MLLP (RAD-1/2/12): ADT and ORM/OMG in, ACKs out
  (:mod:`simulators.actors.ris_hl7`); optionally Procedure Scheduled / Update
  (RAD-4/13) forwarded as ORM^O01 to a target;
* DICOM on one port: Modality Worklist C-FIND (RAD-5), MPPS N-CREATE/N-SET
  (RAD-6/7) and Verification, each exchange one event on the bus;
* Python operations for scenarios and tests: ``schedule``, ``orders``, ``order``,
  ``worklist_items``, ``mpps_instances``.

pynetdicom runs one thread per association and the MLLP server a thread pool, so
all state lives behind the order book's and MPPS manager's locks.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep, ModalityWorklistInformationFind, Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from simulators.actors.base import Actor
from simulators.actors.ris_hl7 import RisHl7Handler
from simulators.actors.ris_orders import MppsLink, OrderBook
from simulators.dicom.ae import AeSettings, make_ae, start_server
from simulators.dicom.mpps import MppsInstance, MppsManager
from simulators.dicom.worklist import handle_mwl_find
from simulators.errors import ConfigError, PacsimError
from simulators.events import EventBus
from simulators.hl7 import messages
from simulators.hl7.mllp import MllpClient, MllpServer
from simulators.world.models import Order


@dataclass(frozen=True, slots=True)
class RisConfig:
    """How the simulated RIS listens and schedules. Ports 0 pick free ports."""

    name: str = "ris"
    host: str = "127.0.0.1"
    dicom_port: int = 0
    hl7_port: int = 0
    ae_title: str = "PACSIM_RIS"
    #: Calling AE titles allowed on the DICOM port; empty means any.
    allowed_calling: frozenset[str] = frozenset()
    mwl: bool = True
    mpps: bool = True
    hl7: bool = True
    #: RAD-4/RAD-13: forward scheduled and cancelled orders as ORM^O01 to (host, port).
    forward_hl7: tuple[str, int] | None = None
    #: Station for orders that name none: modality -> (station AE title, station name).
    stations: dict[str, tuple[str, str]] = field(default_factory=dict)
    default_station: tuple[str, str] | None = None
    max_associations: int = 50
    #: PN matching: False = case-insensitive (PS3.4 C.2.2.2.1 allows it; see matching.py).
    pn_case_sensitive: bool = False
    #: Match SPS start date and time as one instant range (C.2.2.2.5.1).
    combined_datetime_matching: bool = False
    #: Upper bound of items one MWL query returns (None: all).
    max_results: int | None = None
    #: Seconds an idle association is kept before the RIS aborts it (PS3.8 ARTIM/idle).
    network_timeout: float = 60.0
    #: Seconds an HL7 frame may take to complete before the connection is closed.
    hl7_read_timeout: float = 30.0
    #: Largest MLLP frame accepted (bytes); larger frames close the connection.
    hl7_max_frame: int = 1_048_576

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("the RIS needs a name")
        for label, port in (("dicom_port", self.dicom_port), ("hl7_port", self.hl7_port)):
            if not 0 <= port <= 65535:
                raise ConfigError(f"{label} must be 0..65535", **{label: port})
        if self.max_results is not None and self.max_results < 1:
            raise ConfigError("max_results must be at least 1", max_results=self.max_results)
        if self.network_timeout <= 0 or self.hl7_read_timeout <= 0 or self.hl7_max_frame <= 0:
            raise ConfigError("network_timeout, hl7_read_timeout and hl7_max_frame must be "
                              "positive")


class Ris(Actor):
    """Order filler with MWL and MPPS SCPs and an HL7 listener."""

    kind = "ris"

    def __init__(self, config: RisConfig | None = None, events: EventBus | None = None) -> None:
        self.config = config or RisConfig()
        super().__init__(self.config.name, events)
        self.book = OrderBook()
        self.mpps = MppsManager(on_in_progress=self._on_mpps, on_completed=self._on_mpps,
                                on_discontinued=self._on_mpps, on_updated=self._on_mpps)
        self.settings = AeSettings(ae_title=self.config.ae_title,
                                   allowed_calling=frozenset(self.config.allowed_calling),
                                   maximum_associations=self.config.max_associations,
                                   network_timeout=self.config.network_timeout)
        self.hl7_handler = RisHl7Handler(
            self.book, stations=self.config.stations,
            default_station=self.config.default_station, on_order=self._forward,
            application=self.config.ae_title)
        self._server: ThreadedAssociationServer | None = None
        self._mllp: MllpServer | None = None
        self._forwarder: ThreadPoolExecutor | None = None
        self._forward_client: MllpClient | None = None

    # --------------------------------------------------------------- lifecycle
    def _start(self) -> None:
        cfg = self.config
        ae = make_ae(self.settings)
        ae.add_supported_context(Verification)
        handlers: list[tuple[Any, Any]] = [(evt.EVT_C_ECHO, self._on_echo),
                                           (evt.EVT_DATA_RECV, self._enforce_max_pdu)]
        if cfg.mwl:
            ae.add_supported_context(ModalityWorklistInformationFind)
            handlers.append((evt.EVT_C_FIND, self._on_find))
        if cfg.mpps:
            ae.add_supported_context(ModalityPerformedProcedureStep)
            handlers += [(evt.EVT_N_CREATE, self._on_n_create), (evt.EVT_N_SET, self._on_n_set)]
        self._server = start_server(ae, cfg.host, cfg.dicom_port, handlers)
        try:
            if cfg.hl7:
                self._mllp = MllpServer(self.hl7_handler, cfg.host, cfg.hl7_port,
                                        name=f"{self.name}-hl7", events=self.events,
                                        max_frame=cfg.hl7_max_frame,
                                        read_timeout=cfg.hl7_read_timeout)
                self._mllp.start()
            if cfg.forward_hl7 is not None:
                self._forwarder = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-rad4")
        except PacsimError:
            self._stop()
            raise

    def _stop(self) -> None:
        if self._server is not None:
            # AE.shutdown also aborts live associations, so stop() never leaves a
            # stalled peer's thread behind until its network timeout.
            self._server.ae.shutdown()
            self._server = None
        if self._mllp is not None:
            self._mllp.stop()
            self._mllp = None
        if self._forwarder is not None:
            self._forwarder.shutdown(wait=True, cancel_futures=False)
            self._forwarder = None
        if self._forward_client is not None:
            self._forward_client.close()
            self._forward_client = None

    @property
    def dicom_address(self) -> tuple[str, int]:
        if self._server is None:
            raise ConfigError("the RIS is not started", name=self.name)
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def hl7_address(self) -> tuple[str, int]:
        if self._mllp is None:
            raise ConfigError("the RIS HL7 listener is not started", name=self.name)
        return self._mllp.address

    def describe(self) -> str:
        parts = [self.name, f"AE {self.config.ae_title}"]
        if self._server is not None:
            parts.append("DICOM %s:%d" % self.dicom_address)
        if self._mllp is not None:
            parts.append("HL7 %s:%d" % self.hl7_address)
        return ", ".join(parts)

    # -------------------------------------------------------------- operations
    def schedule(self, order: Order) -> Order:
        """Put an order on the worklist directly (no HL7); returns the stored order."""
        stored = self.book.schedule(order)
        self._forward(stored, "NW")
        return stored

    def cancel(self, accession: str) -> Order | None:
        cancelled = self.book.cancel(accession)
        if cancelled is not None:
            self._forward(cancelled, "CA")
        return cancelled

    def orders(self) -> list[Order]:
        return self.book.orders()

    def order(self, accession: str) -> Order | None:
        return self.book.order(accession)

    def worklist_items(self) -> list[Dataset]:
        """Copies of the visible MWL items (callers may modify them freely)."""
        return [copy.deepcopy(item) for item in self.book.worklist_items()]

    def mpps_instances(self) -> list[MppsInstance]:
        return self.mpps.instances()

    def mpps_link(self, sop_instance_uid: str) -> MppsLink | None:
        """Which orders an MPPS changed; empty accessions = unscheduled/unmatched."""
        return self.book.mpps_link(sop_instance_uid)

    # ------------------------------------------------------------- DICOM glue
    @staticmethod
    def _peer(event: Any) -> str:
        requestor = event.assoc.requestor
        return f"{requestor.address}:{requestor.port}"

    def _enforce_max_pdu(self, event: Any) -> None:
        """A P-DATA-TF longer than the Maximum Length we announced is a protocol
        error (PS3.8 Annex D.1): A-ABORT instead of processing it. pynetdicom itself
        accepts any length, so the check runs on its raw-PDU notification."""
        data = event.data
        limit = self.settings.max_pdu
        if limit and len(data) >= 6 and data[0] == 0x04 and len(data) - 6 > limit:
            self.log.warning("P-DATA of %d bytes exceeds our maximum %d from %s: A-ABORT",
                             len(data) - 6, limit, self._peer(event))
            event.assoc.abort()

    def _on_echo(self, event: Any) -> int:
        with self.events.exchange("dicom.c-echo", self.name, self._peer(event)) as exchange:
            exchange.status = "0x0000"
        return 0x0000

    def _on_find(self, event: Any) -> Iterator[tuple[Any, Dataset | None]]:
        cfg = self.config
        with self.events.exchange("dicom.c-find", self.name, self._peer(event),
                                  sop_class="MWL") as exchange:
            exchange.status = "0x0000"
            matches, final = 0, False
            answers = handle_mwl_find(
                event, self.book.worklist_items(), pn_case_sensitive=cfg.pn_case_sensitive,
                combined_datetime=cfg.combined_datetime_matching, max_results=cfg.max_results)
            try:
                for status, identifier in answers:
                    code = status if isinstance(status, int) else int(status.Status)
                    if code == 0xFF00:
                        matches += 1
                    else:
                        # pynetdicom stops iterating after a final status: record it first.
                        final = True
                        exchange.status = f"0x{code:04X}"
                        exchange.outcome = "cancelled" if code == 0xFE00 else "failed"
                    exchange.detail["matches"] = matches
                    yield status, identifier
            except GeneratorExit:
                # pynetdicom dropped us: normal after a final status, else the peer left.
                if not final:
                    exchange.outcome = "aborted"
                return

    def _on_n_create(self, event: Any) -> tuple[Dataset, Dataset | None]:
        with self.events.exchange("dicom.n-create", self.name, self._peer(event),
                                  sop_class="MPPS") as exchange:
            status, reply = self.mpps.handle_n_create(event)
            _record_status(exchange, status)
            return status, reply

    def _on_n_set(self, event: Any) -> tuple[Dataset, Dataset | None]:
        with self.events.exchange("dicom.n-set", self.name, self._peer(event),
                                  sop_class="MPPS") as exchange:
            status, reply = self.mpps.handle_n_set(event)
            _record_status(exchange, status)
            return status, reply

    def _on_mpps(self, instance: MppsInstance) -> None:
        """Every MPPS transition: move exactly the referenced steps, nothing else."""
        link = self.book.apply_mpps(instance)
        self.mpps.mark_scheduled(instance.sop_instance_uid, bool(link.accessions))
        if link.unmatched:
            self.log.warning("MPPS %s references no known scheduled step: %s",
                             instance.sop_instance_uid, link.unmatched)

    # --------------------------------------------------------------- RAD-4/13
    def _forward(self, order: Order, control: str) -> None:
        """Queue Procedure Scheduled (NW) / Update (CA, XO) for the configured target."""
        if self._forwarder is None or self.config.forward_hl7 is None:
            return
        self._forwarder.submit(self._send_forward, order, control)

    def _send_forward(self, order: Order, control: str) -> None:
        host, port = self.config.forward_hl7 or ("", 0)
        try:
            if self._forward_client is None:
                self._forward_client = MllpClient(host, port, events=self.events,
                                                  name=f"{self.name}-rad4")
            self._forward_client.send(messages.orm_o01(order, control, endpoints=messages.Endpoints(
                self.config.ae_title, "PACSIM", "TARGET", "PACSIM")))
        except PacsimError as exc:
            self.log.warning("RAD-4 forward of %s to %s:%d failed: %s", order.accession,
                             host, port, exc)


def _record_status(exchange: Any, status: Dataset) -> None:
    code = int(status.Status)
    exchange.status = f"0x{code:04X}"
    if code != 0:
        exchange.outcome = "failed"
        exchange.detail["comment"] = str(status.get("ErrorComment", ""))


__all__ = ["Ris", "RisConfig"]
