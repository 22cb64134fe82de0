"""``ServerAssociation``: one accepted connection of the fast acceptor, from RQ to close.

Two tasks per association. The *reader* owns the socket's input: it reads whole
PDUs (claimed lengths above our announced maximum are refused before anything is
allocated), assembles DIMSE messages, routes responses to requests we sent on this
association (C-GET's C-STORE sub-operations, a commitment N-EVENT-REPORT), marks
the running request cancelled on C-CANCEL, and queues peer requests. The *worker*
runs the queued requests one at a time through the registered handlers, so
responses leave in order and a release is answered only after the work before it.

The PS3.8 state machine, reduced to what an acceptor must get right:

* before negotiation, only an A-ASSOCIATE-RQ is valid; anything else, a broken
  RQ or an oversized PDU gets an A-ABORT and the connection is closed; an RQ not
  complete within ARTIM (silence, or one trickled byte by byte) closes it;
* the association slot (``max_associations``) is taken only once the RQ would be
  accepted, so connections still negotiating never hold one;
* refusals (policy, association limit) answer A-ASSOCIATE-RJ and wait (at most
  ARTIM) for the peer to close, so the peer reads the RJ instead of a TCP reset;
* on an established association: garbage or an unexpected PDU -> A-ABORT; no PDU
  for ``idle_timeout`` while nothing is running -> A-ABORT; A-RELEASE-RQ ->
  A-RELEASE-RP after the queued work; A-ABORT or a dropped socket end it at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Sequence

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as msgs

from simulators.dicom.fast import codec, dimse
from simulators.dicom.fast.acceptance import REJECT_LOCAL_LIMIT, Negotiated, Rejection, negotiate
from simulators.dicom.fast.acceptance import associate_rj_bytes
from simulators.dicom.fast.negotiation import AcceptedContext
from simulators.dicom.fast.service import (
    COMMANDS, STATUS_PROCESSING_FAILURE, STATUS_UNRECOGNIZED_OPERATION, DimseRequest, Reply,
)
from simulators.errors import AssociationClosed, DicomTimeout

if TYPE_CHECKING:
    from simulators.dicom.fast.server import FastServer

log = logging.getLogger(__name__)

_RELEASE = object()  # queued after the requests that precede an A-RELEASE-RQ
#: Requests a peer may queue before we stop reading (async-ops window is 1 by default).
_QUEUE_LIMIT = 16


class ServerAssociation:
    """The acceptor side of one association (see the module docstring)."""

    def __init__(self, server: "FastServer", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.settings = server.settings
        self._reader, self._writer = reader, writer
        host, port = (writer.get_extra_info("peername") or ("?", 0))[:2]
        self.peer = f"{host}:{port}"
        self.calling_ae = self.called_ae = ""
        self.negotiated: Negotiated | None = None
        self._assembler = codec.MessageAssembler(self.settings.max_message)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_LIMIT)
        self._current: DimseRequest | None = None
        self._waiting: dict[int, asyncio.Future[msgs.DIMSEMessage]] = {}
        self._message_id = 0
        self._closed = False
        self._worker: asyncio.Task[None] | None = None
        #: True once the server gave us an association slot (``FastServer.admit``).
        self.admitted = False

    @property
    def is_established(self) -> bool:
        return self.negotiated is not None and not self._closed

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection to its end; never raises for anything the peer does."""
        try:
            negotiated = await self._negotiate()
            if negotiated is not None:
                self.negotiated = negotiated
                await self._serve()
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:  # noqa: BLE001 - a bug must end this association, not the server
            log.exception("association with %s failed", self.peer)
            self.abort()
        finally:
            await self._close()

    async def _negotiate(self) -> Negotiated | None:
        artim = self.settings.artim_timeout
        try:
            # one deadline for the whole RQ: a peer trickling bytes cannot stretch it
            async with asyncio.timeout(artim):
                pdu = await self._read(artim, established=False)
        except TimeoutError:
            pdu = None
            self._artim_expired()
        if pdu is None:
            return None
        pdu_type, raw = pdu
        if pdu_type != codec.A_ASSOCIATE_RQ_TYPE:
            reason = (codec.ABORT_UNEXPECTED_PDU if pdu_type in codec.PDU_CLASSES
                      else codec.ABORT_UNRECOGNISED_PDU)
            self._abort(reason)
            return None
        try:
            rq = codec.decode_pdu(pdu_type, raw)
            outcome = negotiate(rq, self.server.policy, self.server.supported)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - pynetdicom raises many types on bad PDUs
            log.info("malformed A-ASSOCIATE-RQ from %s: %s", self.peer, exc)
            self._abort(codec.ABORT_INVALID_PARAMETER)
            return None
        self.calling_ae, self.called_ae = outcome.calling_ae, outcome.called_ae
        if isinstance(outcome, Negotiated) and not self.server.admit():
            outcome = Rejection(*REJECT_LOCAL_LIMIT, associate_rj_bytes(*REJECT_LOCAL_LIMIT),
                                outcome.calling_ae, outcome.called_ae)
        if isinstance(outcome, Rejection):
            log.info("rejected %s (%s -> %s): result %d source %d reason %d", self.peer,
                     outcome.calling_ae, outcome.called_ae, outcome.result, outcome.source,
                     outcome.reason)
            self._writer.write(outcome.rj_bytes)
            await self._linger(self.settings.artim_timeout)
            return None
        self.admitted = True
        self._writer.write(outcome.ac_bytes)
        return outcome

    def _artim_expired(self) -> None:
        """No whole A-ASSOCIATE-RQ within ARTIM: say so, then the caller closes (9.1.5)."""
        log.info("%s: no A-ASSOCIATE-RQ from %s within ARTIM (%.1f s): closing",
                 self.server.actor, self.peer, self.settings.artim_timeout)
        self.server.report_closed(self.peer, "dicom.artim-expired",
                                  artim_timeout=self.settings.artim_timeout)

    async def _serve(self) -> None:
        self._worker = asyncio.create_task(self._work(), name=f"dimse-{self.peer}")
        try:
            while not self._closed:
                pdu = await self._read(self.settings.idle_timeout, established=True)
                if pdu is None:
                    return
                pdu_type, raw = pdu
                if pdu_type == codec.P_DATA_TYPE:
                    if not await self._on_pdata(raw):
                        return
                elif pdu_type == codec.A_RELEASE_RQ_TYPE:
                    # the requestor may not release with operations outstanding, so
                    # waiting for the worker (which then sends the RP) is bounded
                    await self._queue.put(_RELEASE)
                    try:
                        await asyncio.wait_for(asyncio.shield(self._worker),
                                               self.settings.dimse_timeout)
                    except TimeoutError:
                        self._abort(0)
                        return
                    await self._linger(self.settings.acse_timeout)
                    return
                elif pdu_type == codec.A_ABORT_TYPE:
                    return
                else:
                    self._abort(codec.ABORT_UNEXPECTED_PDU if pdu_type in codec.PDU_CLASSES
                                else codec.ABORT_UNRECOGNISED_PDU)
                    return
        finally:
            if self._worker is not None and not self._worker.done():
                self._worker.cancel()
                try:
                    await self._worker
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass

    async def _read(self, timeout: float, *, established: bool) -> tuple[int, bytes] | None:
        """One PDU, or None when the association has to end (the reason handled here)."""
        for _ in range(1_000_000):  # bounded: each turn waits ``timeout`` or gets a PDU
            try:
                return await codec.read_pdu(self._reader, self.settings.max_pdu, timeout,
                                            self.settings.dimse_timeout)
            except codec.PduIdle:
                if not established:
                    self._artim_expired()
                    return None  # close the transport (PS3.8 9.1.5)
                if self._current is not None or not self._queue.empty():
                    continue  # a handler is working; the peer is waiting for us
                log.info("association with %s idle for %.0f s: aborting", self.peer, timeout)
                self._abort(0)
                return None
            except codec.PduTooLarge as exc:
                log.info("PDU from %s over the limit: %s", self.peer, exc)
                self._abort(codec.ABORT_INVALID_PARAMETER)
                return None
            except TimeoutError:
                self._abort(0)
                return None
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                return None
        return None

    async def _on_pdata(self, raw: bytes) -> bool:
        try:
            message = self._assembler.feed(raw)
        except codec.PduTooLarge:
            self._abort(codec.ABORT_INVALID_PARAMETER)
            return False
        except Exception as exc:  # noqa: BLE001 - malformed PDV or command set
            log.info("malformed DIMSE message from %s: %s", self.peer, exc)
            self._abort(codec.ABORT_INVALID_PARAMETER)
            return False
        if message is None:
            return True
        if int(message.context_id or 0) not in self.negotiated.contexts:  # type: ignore[union-attr]
            log.info("%s used presentation context %s that was not accepted", self.peer,
                     message.context_id)
            self._abort(codec.ABORT_INVALID_PARAMETER)
            return False
        if isinstance(message, msgs.C_CANCEL_RQ):
            current = self._current
            answered = dimse.command_value(message, "MessageIDBeingRespondedTo")
            if current is not None and current.get("MessageID") == answered:
                current.cancel()
            return True
        if type(message) in COMMANDS:
            await self._queue.put(message)
            return True
        waiter = self._waiting.get(int(dimse.command_value(message, "MessageIDBeingRespondedTo", -1)))  # type: ignore[arg-type]
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
        else:
            log.info("%s sent an unexpected %s", self.peer, type(message).__name__)
        return True

    # -- the worker ----------------------------------------------------------------------
    async def _work(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _RELEASE:
                    self._write(codec.release_rp_bytes())
                    return
                await self._dispatch(item)
        except AssociationClosed:
            pass  # the peer went away mid-operation; the reader ends the association

    async def _dispatch(self, message: msgs.DIMSEMessage) -> None:
        name = COMMANDS[type(message)]
        context = self.negotiated.contexts[int(message.context_id or 0)]  # type: ignore[union-attr]
        handler = self.server.handlers.get(name)
        with self.server.events.exchange(f"dicom.{name.lower()}", self.server.actor, self.peer,
                                         calling_ae=self.calling_ae) as event:
            request = DimseRequest(self, message, context, event)
            if handler is None:
                reply: Reply | int = STATUS_UNRECOGNIZED_OPERATION
            else:
                self._current = request
                try:
                    reply = await handler(request)
                except (AssociationClosed, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001 - a handler bug answers, not kills
                    log.exception("%s handler failed for %s", name, self.peer)
                    event.detail["error"] = str(exc)
                    reply = Reply(STATUS_PROCESSING_FAILURE, fields={"ErrorComment": "processing failure"})
                finally:
                    self._current = None
            if isinstance(reply, int):
                reply = Reply(reply)
            event.status = f"0x{reply.status:04X}"
            if event.outcome == "ok":
                event.outcome = dimse.outcome_of(reply.status)
            await self.respond(request, reply.status, reply.dataset, reply.fields)

    async def respond(self, request: DimseRequest, status: int, dataset: Dataset | bytes | None,
                      fields: dict[str, Any]) -> None:
        """Send one response to ``request`` (pending or final)."""
        if isinstance(dataset, Dataset):
            dataset = request.encode(dataset)
        comment = fields.get("ErrorComment")
        if isinstance(comment, str):
            fields = {**fields, "ErrorComment": comment[:64]}
        context_id, peer_max = request.context.context_id, self._peer_max()
        command = dimse.response_command(request.message, status, bool(dataset), **fields)
        parts = codec.encoded_command_pdus(command, context_id, peer_max)
        if dataset:
            parts.extend(codec.dataset_pdus(dataset, context_id, peer_max))
        self._write(parts)
        await self._drain()

    async def respond_encoded(self, request: DimseRequest, status: int,
                              datasets: Sequence[bytes | memoryview]) -> None:
        """Send one response per already encoded data set, all with ``status``, in one write.

        Why: a broad worklist query answers 250 pending responses whose command sets
        are identical; the command is encoded once and the PDUs of all of them go
        out in one write and one drain, not 250 (issue 19).
        """
        if not datasets:
            return
        context_id, peer_max = request.context.context_id, self._peer_max()
        command = dimse.response_command(request.message, status, True)
        head = codec.encoded_command_pdus(command, context_id, peer_max)
        parts: list[bytes | memoryview] = []
        for dataset in datasets:
            parts.extend(head)
            parts.extend(codec.dataset_pdus(dataset, context_id, peer_max))
        self._write(parts)
        await self._drain()

    # -- requests we send on this association ----------------------------------------------
    def context_for(self, abstract_syntax: str, transfer_syntax: str | None = None,
                    *, as_scu: bool = False) -> AcceptedContext | None:
        if self.negotiated is None:
            return None
        return self.negotiated.context_for(abstract_syntax, transfer_syntax, as_scu=as_scu)

    def next_message_id(self) -> int:
        self._message_id = self._message_id % 0xFFFF + 1
        return self._message_id

    async def request(self, message: msgs.DIMSEMessage, context: AcceptedContext,
                      dataset: bytes | memoryview | None = None,
                      timeout: float | None = None) -> msgs.DIMSEMessage:
        """Send a request to the peer and await its response (e.g. C-GET's C-STORE).

        ``message`` carries its own Message ID (from :meth:`next_message_id`); a
        C-STORE's data set is passed as ``dataset`` and sent without copying.
        Raises :class:`AssociationClosed` if the association ends first and
        :class:`DicomTimeout` when the peer does not answer in time.
        """
        if self._closed:
            raise AssociationClosed("association is closed", peer=self.peer)
        message_id = int(message.command_set.MessageID)
        waiter: asyncio.Future[msgs.DIMSEMessage] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = waiter
        try:
            if dataset is None:
                parts = codec.message_pdus(message, context.context_id, self._peer_max())
            else:
                parts = codec.command_pdus(message, context.context_id, self._peer_max())
                parts.extend(codec.dataset_pdus(dataset, context.context_id, self._peer_max()))
            self._write(parts)
            await self._drain()
            try:
                return await asyncio.wait_for(waiter, timeout or self.settings.dimse_timeout)
            except TimeoutError:
                raise DicomTimeout("no response from the peer in time", peer=self.peer,
                                   message_id=message_id) from None
        finally:
            self._waiting.pop(message_id, None)

    # -- socket helpers ------------------------------------------------------------------
    def _peer_max(self) -> int:
        return self.negotiated.peer_max_pdu if self.negotiated else 0

    def _write(self, parts: list[bytes | memoryview] | bytes) -> None:
        if self._closed:
            raise AssociationClosed("association is closed", peer=self.peer)
        self._writer.write(parts if isinstance(parts, bytes) else b"".join(parts))

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise AssociationClosed("connection lost while sending", peer=self.peer) from exc

    def _abort(self, provider_reason: int) -> None:
        """A-ABORT from the provider (reason 0 = not specified) - the socket closes next."""
        if not self._closed:
            try:
                self._writer.write(codec.abort_bytes(provider_reason))
            except (OSError, RuntimeError):
                pass

    def abort(self) -> None:
        """A-ABORT (service provider) and close; used by ``FastServer.stop``."""
        self._abort(0)
        self._closed = True
        self._writer.close()

    async def _linger(self, timeout: float) -> None:
        """After RJ or RP: let the peer close first (bounded by ``timeout``), PS3.8 9.1.5.

        Whatever still arrives is read and dropped, so closing never finds unread
        data in the socket (which would make the kernel send a reset).
        """
        try:
            async with asyncio.timeout(timeout):
                for _ in range(10_000):
                    if not await self._reader.read(1 << 16):
                        return
        except (TimeoutError, ConnectionError, OSError):
            pass

    async def _close(self) -> None:
        self._closed = True
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(AssociationClosed("association ended", peer=self.peer))
        self._waiting.clear()
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (TimeoutError, ConnectionError, OSError):
            pass


__all__ = ["ServerAssociation"]
