"""Storage Commitment Push Model (PS3.4 Annex J): the archive's SCP and a small SCU.

The SCU asks with N-ACTION (action type 1, a Transaction UID and the Referenced SOP
Sequence); the SCP answers the N-ACTION at once and reports the outcome later with
N-EVENT-REPORT - event type 1 when every instance is safely stored, 2 when some are
not, listing them in the Failed SOP Sequence with a Failure Reason (0x0112 no such
object instance, 0x0119 SOP class does not match the stored instance).

Sites differ in *where* that report travels (FAULTS.md ``stgcmt.same-vs-new-assoc``),
so the SCP has three reply modes: ``same`` (on the requesting association, which the
SCU must keep open), ``new`` (a new association to the requestor's AE, the SCP
proposing the SCP role through role selection, PS3.4 J.3.3), and ``auto`` (same if
still open, else new). The SCU side (:func:`request_commitment`,
:class:`CommitmentListener`) asks and waits the way a modality does; its listener
is a ``FastServer`` like every other pacsim acceptor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Sequence

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.presentation import build_context, build_role
from pynetdicom.sop_class import StorageCommitmentPushModel

from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.fast.dimse import n_event_report_rq
from simulators.dicom.fast.files import encode_dataset
from simulators.dicom.fast.acceptance import SupportedContext
from simulators.dicom.fast.server import FastServer, ServerSettings
from simulators.dicom.fast.service import DimseRequest, Reply
from simulators.dicom.store import DicomStore
from simulators.errors import AssociationError, ProtocolError, StatusError
from simulators.events import EventBus
from simulators.tls import TlsSettings

if TYPE_CHECKING:
    from simulators.dicom.fast.channel import ServerAssociation

log = logging.getLogger(__name__)

#: Well-known SOP Instance UID of the Storage Commitment Push Model (PS3.4 J.3.5).
COMMITMENT_INSTANCE_UID = "1.2.840.10008.1.20.1.1"
EVENT_ALL_COMMITTED = 1
EVENT_SOME_FAILED = 2
REASON_NO_SUCH_INSTANCE = 0x0112
REASON_CLASS_INSTANCE_CONFLICT = 0x0119
STATUS_NO_SUCH_ACTION = 0x0123
STATUS_MISSING_ATTRIBUTE = 0x0120

ReplyMode = Literal["same", "new", "auto"]
Reference = tuple[str, str]  # (SOP Class UID, SOP Instance UID)


@dataclass(slots=True)
class CommitmentResult:
    """One N-EVENT-REPORT as the SCU saw it; ``via`` says which association carried it."""

    transaction_uid: str
    event_type: int
    committed: list[Reference] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)  # class, instance, reason
    via: str = ""  # "same" or "new"

    @property
    def all_committed(self) -> bool:
        return self.event_type == EVENT_ALL_COMMITTED and not self.failed


# ---------------------------------------------------------------------------- SCP side
def evaluate(store: DicomStore, transaction_uid: str,
             references: Sequence[Reference]) -> tuple[int, Dataset]:
    """Check each reference against the index: the event type and Event Information."""
    stored = store.lookup([uid for _, uid in references])
    info = Dataset()
    info.TransactionUID = transaction_uid
    committed, failed = [], []
    for sop_class, sop_uid in references:
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_uid
        held = stored.get(sop_uid)
        if held is None or not held.path.exists():
            item.FailureReason = REASON_NO_SUCH_INSTANCE
            failed.append(item)
        elif held.sop_class_uid != sop_class:
            item.FailureReason = REASON_CLASS_INSTANCE_CONFLICT
            failed.append(item)
        else:
            committed.append(item)
    if committed:
        info.ReferencedSOPSequence = committed
    if failed:
        info.FailedSOPSequence = failed
    return (EVENT_SOME_FAILED if failed else EVENT_ALL_COMMITTED), info


def _references(action: Dataset) -> list[Reference]:
    return [(str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", "")))
            for item in action.get("ReferencedSOPSequence", [])]


class CommitmentScp:
    """N-ACTION handler for the fast acceptor, plus delivery of the N-EVENT-REPORT.

    ``same`` reports go back on the requesting association as a request of our own
    (the reader task routes its N-EVENT-REPORT-RSP back to us); ``new`` reports use
    a pynetdicom association proposing the SCP role (rare, and pynetdicom's role
    selection is the reference behaviour), run in the server's thread pool.
    """

    def __init__(self, store: DicomStore, *, ae_title: str, reply_mode: ReplyMode,
                 destinations: dict[str, tuple[str, int]], events: EventBus,
                 actor: str, timeout: float = 10.0,
                 destination_tls: TlsSettings | None = None) -> None:
        self.store, self.ae_title, self.reply_mode = store, ae_title, reply_mode
        self.destination_tls = destination_tls
        self.destinations, self.events, self.actor = destinations, events, actor
        self.timeout = timeout
        self._deliveries: set[asyncio.Task[None]] = set()

    async def handle_n_action(self, request: DimseRequest) -> Reply | int:
        """N-ACTION: validate, answer at once, and report from a separate task.

        The report must follow the N-ACTION response; the acceptor sends that
        response as soon as this returns, before the delivery task first runs.
        """
        if request.get("ActionTypeID") != 1:
            return STATUS_NO_SUCH_ACTION
        try:
            action = request.dataset() or Dataset()
            transaction_uid = str(action.get("TransactionUID", "") or "")
            references = _references(action)
        except Exception:  # noqa: BLE001 - undecodable action information
            return Reply(STATUS_MISSING_ATTRIBUTE, fields={"ErrorComment": "action information unreadable"})
        if not transaction_uid or not references or not all(all(r) for r in references):
            return STATUS_MISSING_ATTRIBUTE
        request.event.detail["instances"] = len(references)
        task = asyncio.create_task(self._deliver(request, transaction_uid, references),
                                   name=f"stgcmt-{transaction_uid[-8:]}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
        return 0x0000

    async def _deliver(self, request: DimseRequest, transaction_uid: str,
                       references: list[Reference]) -> None:
        try:
            event_type, info = await request.run_blocking(evaluate, self.store, transaction_uid,
                                                          references)
            association = request.association
            if self.reply_mode in ("same", "auto") and association.is_established:
                if await self._report_same(association, event_type, info):
                    return
            if self.reply_mode == "same":
                log.error("storage commitment %s: requesting association closed before the "
                          "report could be sent (reply mode 'same')", transaction_uid)
                return
            await request.run_blocking(self._report_new, request.calling_ae, transaction_uid,
                                       event_type, info)
        except Exception:  # noqa: BLE001 - a failed delivery is logged, never raised into the loop
            log.exception("storage commitment %s: delivery failed", transaction_uid)

    async def _report_same(self, association: "ServerAssociation", event_type: int,
                           info: Dataset) -> bool:
        with self.events.exchange("dicom.n-event-report", self.actor, association.peer,
                                  via="same", event_type=event_type) as exchange:
            context = association.context_for(StorageCommitmentPushModel)
            if context is None:
                exchange.outcome, exchange.detail["error"] = "error", "no commitment context"
                return False
            message = n_event_report_rq(association.next_message_id(), StorageCommitmentPushModel,
                                        COMMITMENT_INSTANCE_UID, event_type,
                                        encode_dataset(info, context.transfer_syntax))
            try:
                response = await association.request(message, context, timeout=self.timeout)
            except AssociationError as exc:
                exchange.outcome, exchange.detail["error"] = "error", str(exc)
                return False
            code = int(response.command_set.get("Status", -1))
            exchange.status = f"0x{code:04X}" if code >= 0 else "none"
            exchange.outcome = "ok" if code == 0 else "failed"
            return code == 0

    def _report_new(self, requestor_ae: str, transaction_uid: str, event_type: int,
                    info: Dataset) -> None:
        """Blocking: a new association to the requestor, proposing the SCP role (J.3.3)."""
        address = self.destinations.get(requestor_ae.strip())
        if address is None:
            log.error("storage commitment %s: requestor %s is not a known destination",
                      transaction_uid, requestor_ae)
            return
        ae = make_ae(AeSettings(ae_title=self.ae_title))
        try:
            reply = associate(ae, address[0], address[1], requestor_ae.strip(),
                              tls=self.destination_tls, contexts=[build_context(StorageCommitmentPushModel)],
                              ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)])
        except AssociationError as exc:
            log.error("storage commitment %s: %s", transaction_uid, exc)
            return
        try:
            peer = f"{address[0]}:{address[1]}"
            with self.events.exchange("dicom.n-event-report", self.actor, peer, via="new",
                                      event_type=event_type) as exchange:
                try:
                    status, _ = reply.send_n_event_report(info, event_type,
                                                          StorageCommitmentPushModel,
                                                          COMMITMENT_INSTANCE_UID)
                except (RuntimeError, ValueError) as exc:  # association gone / no context
                    exchange.outcome, exchange.detail["error"] = "error", str(exc)
                    return
                code = int(status.get("Status", -1)) if status else -1
                exchange.status = f"0x{code:04X}" if code >= 0 else "none"
                exchange.outcome = "ok" if code == 0 else "failed"
        finally:
            if reply.is_established:
                reply.release()

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for pending deliveries (the archive calls this before it stops)."""
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=timeout)


# ---------------------------------------------------------------------------- SCU side
class CommitmentWaiter:
    """Collects N-EVENT-REPORTs by Transaction UID, whichever association brings them."""

    def __init__(self) -> None:
        self._results: dict[str, CommitmentResult] = {}
        self._arrived = threading.Condition()

    def handle_event_report(self, event: evt.Event) -> tuple[int, Dataset | None]:
        """EVT_N_EVENT_REPORT handler for pynetdicom requestor associations (``same``)."""
        self._record(event.event_information, int(event.request.EventTypeID),
                     "new" if event.assoc.is_acceptor else "same")
        return 0x0000, None

    async def handle_n_event_report(self, request: DimseRequest) -> int:
        """N-EVENT-REPORT handler for a :class:`FastServer` listener (``new``).

        Raising on an undecodable report is deliberate: the acceptor answers
        0x0110 Processing Failure, as pynetdicom did for a failing handler.
        """
        self._record(request.dataset() or Dataset(), int(request.get("EventTypeID")), "new")
        return 0x0000

    def _record(self, info: Dataset, event_type: int, via: str) -> None:
        result = CommitmentResult(
            transaction_uid=str(info.get("TransactionUID", "")),
            event_type=event_type,
            committed=[(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
                       for i in info.get("ReferencedSOPSequence", [])],
            failed=[(str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID),
                     int(i.FailureReason)) for i in info.get("FailedSOPSequence", [])],
            via=via)
        with self._arrived:
            self._results[result.transaction_uid] = result
            self._arrived.notify_all()

    @property
    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [(evt.EVT_N_EVENT_REPORT, self.handle_event_report)]

    def wait(self, transaction_uid: str, timeout: float) -> CommitmentResult | None:
        with self._arrived:
            self._arrived.wait_for(lambda: transaction_uid in self._results, timeout)
            return self._results.get(transaction_uid)


class CommitmentListener:
    """An acceptor that takes N-EVENT-REPORTs on new associations (SCU side).

    Accepts the SCP role the archive proposes for Storage Commitment (and a
    reporter that proposes no role selection); use as a context manager; ``port``
    is the real port once started. Listens from construction, as before, so a
    caller can hand ``port`` to the SCP before entering the ``with`` block.
    """

    def __init__(self, ae_title: str, waiter: CommitmentWaiter, host: str = "127.0.0.1",
                 port: int = 0, *, events: EventBus | None = None) -> None:
        self.host, self.waiter = host, waiter
        contexts = (SupportedContext(StorageCommitmentPushModel,
                                     tuple(DEFAULT_TRANSFER_SYNTAXES), True, True),)
        settings = ServerSettings.for_ae(AeSettings(ae_title=ae_title), contexts,
                                         host=host, port=port, workers=1)
        self._server = FastServer(settings, events=events, actor=f"commitment-{ae_title}")
        self._server.handle("N-EVENT-REPORT", waiter.handle_n_event_report)
        self._server.start()
        self.port: int = self._server.port

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> "CommitmentListener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_commitment(ae: AE, host: str, port: int, called_ae: str,
                       references: Iterable[Reference], *, waiter: CommitmentWaiter | None = None,
                       transaction_uid: str | None = None, keep_open: bool = True,
                       timeout: float = 10.0) -> CommitmentResult | None:
    """Ask ``called_ae`` to commit ``references``; returns its report or None on timeout.

    ``keep_open`` keeps the association until the report arrives (or ``timeout``),
    which is what an SCP in ``same`` mode needs; with ``keep_open=False`` the
    association is released after the N-ACTION response and the report is awaited
    on ``waiter`` (bind it to a :class:`CommitmentListener`). Raises
    :class:`ProtocolError` when the N-ACTION itself fails.
    """
    waiter = waiter or CommitmentWaiter()
    transaction_uid = transaction_uid or generate_uid()
    action = Dataset()
    action.TransactionUID = transaction_uid
    items = []
    for sop_class, sop_uid in references:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
        items.append(item)
    action.ReferencedSOPSequence = items
    assoc = associate(ae, host, port, called_ae, handlers=waiter.handlers,
                      contexts=[build_context(StorageCommitmentPushModel)])
    try:
        status, _ = assoc.send_n_action(action, 1, StorageCommitmentPushModel,
                                        COMMITMENT_INSTANCE_UID)
        code = int(status.get("Status", -1)) if status else -1
        if code > 0:
            raise StatusError("storage commitment request refused", status=code,
                              peer=f"{host}:{port}", called_ae=called_ae)
        if code < 0:  # no response at all: pynetdicom ended the association
            raise ProtocolError("storage commitment request refused", peer=f"{host}:{port}",
                                called_ae=called_ae, status="none")
        if keep_open:
            return waiter.wait(transaction_uid, timeout)
    finally:
        if assoc.is_established:
            assoc.release()
    return waiter.wait(transaction_uid, timeout)


__all__ = ["CommitmentScp", "CommitmentResult", "CommitmentWaiter", "CommitmentListener",
           "request_commitment", "evaluate", "COMMITMENT_INSTANCE_UID", "EVENT_ALL_COMMITTED",
           "EVENT_SOME_FAILED", "REASON_NO_SUCH_INSTANCE", "REASON_CLASS_INSTANCE_CONFLICT"]
