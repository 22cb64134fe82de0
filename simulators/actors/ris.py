"""The simulated RIS (IHE Department System Scheduler / Order Filler).

One actor, three fronts on one order book (:class:`~simulators.actors.ris_orders.OrderBook`):

* HL7 over MLLP (RAD-1/2/12): ADT and ORM/OMG in, ACKs out
  (:mod:`simulators.actors.ris_hl7`); optionally Procedure Scheduled / Update
  (RAD-4/13) forwarded as ORM^O01 to a target;
* DICOM on one port: Modality Worklist C-FIND (RAD-5), MPPS N-CREATE/N-SET
  (RAD-6/7) and Verification, each exchange one event on the bus;
* Python operations for scenarios and tests: ``schedule``, ``orders``, ``order``,
  ``worklist_items``, ``mpps_instances``.

The DICOM side runs on the asyncio acceptor
(:class:`~simulators.dicom.fast.server.FastServer`), like the archive: one event
loop serves every association, so 200 modalities polling at once cost 200 sockets,
not 200 threads each taking the GIL in turn (pynetdicom's acceptor answered 200
concurrent worklist queries with a p50 of 12 s or more; benchmarks/worklist_load.py
``--ris``). The work that takes locks or burns CPU (reading the order book,
matching, encoding, the MPPS state machine and its order-book callbacks) runs in
the acceptor's thread pool; the MLLP server has its own threads, so all state
lives behind the order book's and MPPS manager's locks.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pydicom.dataset import Dataset
from pynetdicom import DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep, ModalityWorklistInformationFind, Verification,
)

from simulators.actors.base import Actor
from simulators.actors.ris_hl7 import RisHl7Handler
from simulators.actors.ris_orders import MppsLink, OrderBook
from simulators.dicom.ae import DEFAULT_MAX_PDU
from simulators.dicom.fast.server import (
    DimseRequest, FastServer, Reply, ServerSettings, SupportedContext,
)
from simulators.dicom.mpps import MppsInstance, MppsManager
from simulators.dicom.mwl_index import AnswerMemo
from simulators.dicom.worklist import (
    MWL_FIND, combined_datetime_for, mwl_extended_answer, serve_mwl_find,
)
from simulators.errors import ConfigError, PacsimError
from simulators.events import EventBus
from simulators.tls import TlsSettings
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
    #: Simultaneous DICOM associations; more are refused with A-ASSOCIATE-RJ
    #: (transient, service provider, local limit exceeded). 256: a department's 200
    #: modalities polling at once are served, none refused (issue 19; at 50 the RIS
    #: refused 150 of 200). Connections still negotiating have their own cap and
    #: ARTIM (ServerSettings.max_unassociated / artim_timeout), so idle sockets
    #: cannot take these slots.
    max_associations: int = 256
    #: Threads for the DICOM side's blocking work (order book, matching, MPPS).
    workers: int = 4
    #: PN matching: False = case-insensitive (PS3.4 C.2.2.2.1 allows it; see matching.py).
    pn_case_sensitive: bool = False
    #: Match SPS start date and time as one instant range (C.2.2.2.5.1) when the SCU
    #: sends no SOP Class Extended Negotiation; an SCU that does decides per association.
    combined_datetime_matching: bool = False
    #: Upper bound of items one MWL query returns (None: all).
    max_results: int | None = None
    #: Seconds an idle association is kept before the RIS aborts it (PS3.8 ARTIM/idle).
    network_timeout: float = 60.0
    #: Seconds an HL7 frame may take to complete before the connection is closed.
    hl7_read_timeout: float = 30.0
    #: Largest MLLP frame accepted (bytes); larger frames close the connection.
    hl7_max_frame: int = 1_048_576
    #: Seconds an HL7 connection may sit between messages before it is closed; None
    #: (default) keeps it, as senders hold persistent connections. Idle connections
    #: take no handler thread, so they never block other senders either way.
    hl7_idle_timeout: float | None = None
    #: DICOM TLS on ``dicom_port`` (MWL, MPPS); None = plain TCP.
    tls: TlsSettings | None = None
    #: MLLP over TLS on ``hl7_port``; None = plain TCP (often the same files as ``tls``).
    hl7_tls: TlsSettings | None = None
    #: MLLP over TLS to ``forward_hl7``; None = plain TCP.
    forward_hl7_tls: TlsSettings | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("the RIS needs a name")
        for label, port in (("dicom_port", self.dicom_port), ("hl7_port", self.hl7_port)):
            if not 0 <= port <= 65535:
                raise ConfigError(f"{label} must be 0..65535", **{label: port})
        if self.max_results is not None and self.max_results < 1:
            raise ConfigError("max_results must be at least 1", max_results=self.max_results)
        if self.max_associations < 1 or self.workers < 1:
            raise ConfigError("max_associations and workers must be at least 1",
                              max_associations=self.max_associations, workers=self.workers)
        if self.network_timeout <= 0 or self.hl7_read_timeout <= 0 or self.hl7_max_frame <= 0:
            raise ConfigError("network_timeout, hl7_read_timeout and hl7_max_frame must be "
                              "positive")
        if self.hl7_idle_timeout is not None and self.hl7_idle_timeout <= 0:
            raise ConfigError("hl7_idle_timeout must be positive or None",
                              hl7_idle_timeout=self.hl7_idle_timeout)


class Ris(Actor):
    """Order filler with MWL and MPPS SCPs and an HL7 listener."""

    kind = "ris"

    def __init__(self, config: RisConfig | None = None, events: EventBus | None = None) -> None:
        self.config = config or RisConfig()
        super().__init__(self.config.name, events)
        self.book = OrderBook()
        self.mpps = MppsManager(on_in_progress=self._on_mpps, on_completed=self._on_mpps,
                                on_discontinued=self._on_mpps, on_updated=self._on_mpps)
        self.settings = ServerSettings(
            ae_title=self.config.ae_title, host=self.config.host, port=self.config.dicom_port,
            contexts=_supported_contexts(self.config), max_pdu=DEFAULT_MAX_PDU,
            max_associations=self.config.max_associations,
            allowed_calling=frozenset(self.config.allowed_calling),
            idle_timeout=self.config.network_timeout, workers=self.config.workers,
            tls=self.config.tls, extended_negotiation=mwl_extended_answer)
        self.hl7_handler = RisHl7Handler(
            self.book, stations=self.config.stations,
            default_station=self.config.default_station, on_order=self._forward,
            application=self.config.ae_title)
        #: Answers of recent identical MWL queries, per worklist version (mwl_index).
        self._answers = AnswerMemo()
        self._server: FastServer | None = None
        self._mllp: MllpServer | None = None
        self._forwarder: ThreadPoolExecutor | None = None
        self._forward_client: MllpClient | None = None

    # --------------------------------------------------------------- lifecycle
    def _start(self) -> None:
        cfg = self.config
        server = FastServer(self.settings, events=self.events, actor=self.name)
        if cfg.mwl:
            server.handle("C-FIND", self._on_find)
        if cfg.mpps:
            server.handle("N-CREATE", self._on_n_create)
            server.handle("N-SET", self._on_n_set)
        server.start()
        self._server = server
        try:
            if cfg.hl7:
                self._mllp = MllpServer(self.hl7_handler, cfg.host, cfg.hl7_port,
                                        name=f"{self.name}-hl7", events=self.events,
                                        max_frame=cfg.hl7_max_frame,
                                        read_timeout=cfg.hl7_read_timeout,
                                        idle_timeout=cfg.hl7_idle_timeout, tls=cfg.hl7_tls)
                self._mllp.start()
            if cfg.forward_hl7 is not None:
                self._forwarder = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-rad4")
        except PacsimError:
            self._stop()
            raise

    def _stop(self) -> None:
        if self._server is not None:
            # stop() also aborts live associations, so no stalled peer keeps the
            # loop thread alive until its idle timeout.
            self._server.stop()
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
        return self.config.host, int(self._server.port)

    @property
    def hl7_address(self) -> tuple[str, int]:
        if self._mllp is None:
            raise ConfigError("the RIS HL7 listener is not started", name=self.name)
        return self._mllp.address

    def describe(self) -> str:
        parts = [self.name, f"AE {self.config.ae_title}"]
        if self._server is not None:
            parts.append("DICOM %s:%d" % self.dicom_address
                         + (f" ({self.config.tls.describe()})" if self.config.tls else ""))
        if self._mllp is not None:
            parts.append("HL7 %s:%d" % self.hl7_address
                         + (f" ({self.config.hl7_tls.describe()})" if self.config.hl7_tls else ""))
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

    @property
    def active_associations(self) -> int:
        """DICOM associations the RIS holds right now (load tests watch this)."""
        return self._server.active_associations if self._server is not None else 0

    # ------------------------------------------------------------- DICOM glue
    # The acceptor opens one exchange event per request ("dicom.c-echo",
    # "dicom.c-find", "dicom.n-create", "dicom.n-set", actor = our name) and
    # records the final status; the handlers add the detail.
    async def _on_find(self, request: DimseRequest) -> Reply | int:
        cfg = self.config
        request.event.detail["sop_class"] = "MWL"
        if request.context.abstract_syntax != ModalityWorklistInformationFind:
            return STATUS_SOP_CLASS_NOT_SUPPORTED
        return await serve_mwl_find(
            request, self.book.worklist_snapshot, memo=self._answers,
            pn_case_sensitive=cfg.pn_case_sensitive,
            combined_datetime=self._combined_datetime(request), max_results=cfg.max_results)

    def _combined_datetime(self, request: DimseRequest) -> bool:
        """The SCU's extended negotiation decides (PS3.4 C.2.2.2.5.1); else the setting."""
        negotiated = request.association.negotiated
        agreed = negotiated.extended.get(MWL_FIND) if negotiated is not None else None
        return combined_datetime_for(agreed, self.config.combined_datetime_matching)

    async def _on_n_create(self, request: DimseRequest) -> Reply | int:
        return await self._on_mpps_request(request, self.mpps.serve_n_create)

    async def _on_n_set(self, request: DimseRequest) -> Reply | int:
        return await self._on_mpps_request(request, self.mpps.serve_n_set)

    @staticmethod
    async def _on_mpps_request(request: DimseRequest,
                               serve: Callable[[DimseRequest], Awaitable[Reply]]) -> Reply | int:
        request.event.detail["sop_class"] = "MPPS"
        if request.context.abstract_syntax != ModalityPerformedProcedureStep:
            return STATUS_NO_SUCH_SOP_CLASS
        reply: Reply = await serve(request)
        if reply.status != 0:
            request.event.outcome = "failed"
            request.event.detail["comment"] = str(reply.fields.get("ErrorComment", "") or "")
        return reply

    def _on_mpps(self, instance: MppsInstance) -> None:
        """Every MPPS transition: move exactly the referenced steps, nothing else."""
        link = self.book.apply_mpps(instance)
        self.mpps.mark_scheduled(instance.sop_instance_uid, bool(link.accessions))
        self.log.info("MPPS %s %s from %s: %s", instance.status or "?",
                      instance.sop_instance_uid, instance.calling_ae or "?",
                      "order(s) " + ", ".join(link.accessions) if link.accessions
                      else "unscheduled (no order matched)")
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
                                                  name=f"{self.name}-rad4",
                                                  tls=self.config.forward_hl7_tls)
            self._forward_client.send(messages.orm_o01(order, control, endpoints=messages.Endpoints(
                self.config.ae_title, "PACSIM", "TARGET", "PACSIM")))
        except PacsimError as exc:
            self.log.warning("RAD-4 forward of %s to %s:%d failed: %s", order.accession,
                             host, port, exc)


def _supported_contexts(config: RisConfig) -> tuple[SupportedContext, ...]:
    """Verification always; MWL and MPPS as configured; pynetdicom's default syntaxes."""
    syntaxes = tuple(str(uid) for uid in DEFAULT_TRANSFER_SYNTAXES)
    wanted = [Verification] + ([ModalityWorklistInformationFind] if config.mwl else []) \
        + ([ModalityPerformedProcedureStep] if config.mpps else [])
    return tuple(SupportedContext(str(uid), syntaxes) for uid in wanted)


#: PS3.7 C.5.x: a C-FIND on a context that is not MWL (0122), an N-service on one
#: that is not MPPS (0118). Neither can happen with a conformant peer.
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
STATUS_NO_SUCH_SOP_CLASS = 0x0118


__all__ = ["Ris", "RisConfig"]
