"""``FastAssociation``: one DICOM association as an asyncio stream, no reactor threads.

pynetdicom's SCU spends its time in a polling reactor (1 ms sleeps, thread
hand-offs; BASELINES.md), not in encoding. Here each request is written straight
to the socket and each response read with ``readexactly``, so hundreds of
associations can share one event loop (the load engine) and one C-STORE costs
roughly its encoding plus one round trip. PDU and DIMSE encoding stay pynetdicom's
(see ``codec`` and ``dimse``) except on the hot paths: C-STORE and C-FIND request
command sets are built by hand (compared byte for byte with pynetdicom's in the
tests) and responses are read as raw command values (``raw``), decoded with
pynetdicom only where a Dataset is wanted. C-FIND lives in ``queries``.

Safety rules on the wire: every read has a timeout; a PDU longer than our announced
maximum is refused before it is read (A-ABORT, memory bounded); what we send never
exceeds the peer's maximum; an N-EVENT-REPORT-RQ arriving while we wait for another
answer is acknowledged and queued for ``wait_event_report``. One association serves
one operation at a time.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from io import BytesIO
from typing import Any, Iterable, Sequence

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as msgs

from simulators.dicom.ae import DEFAULT_MAX_PDU, describe_rejection
from simulators.dicom.fast import codec, dimse, raw
from simulators.dicom.fast.files import EncodedInstance, decode_dataset, encode_dataset
from simulators.dicom.fast.queries import MAX_MATCHES, FindServices, status_of
from simulators.dicom.fast.negotiation import (
    AcceptedContext, ContextRequest, accepted_contexts, associate_rq_bytes, build_contexts,
)
from simulators.errors import (
    AssociationAborted, AssociationError, AssociationRejected, ConfigError, DicomTimeout,
    DicomTlsError, DicomUnreachable, ProtocolError,
)
from simulators.events import EventBus, Exchange, bus as default_bus
from simulators.tls import TlsSettings, describe_tls_failure

STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
#: Command elements read from raw responses (group 0000, PS3.7 E.1-1).
AFFECTED_SOP_INSTANCE, ERROR_COMMENT = 0x1000, 0x0902


class FastAssociation(FindServices):
    """An association requestor on asyncio streams (use ``async with`` or ``release``)."""

    def __init__(self, *, actor: str = "fast-client", events: EventBus | None = None,
                 max_pdu: int = DEFAULT_MAX_PDU, dimse_timeout: float = 30.0,
                 max_message: int = 64 << 20) -> None:
        self.actor = actor
        self.events = events or default_bus
        self.max_pdu = max_pdu
        self.dimse_timeout = dimse_timeout
        self.max_message = max_message
        self.peer = ""
        self.calling_ae = self.called_ae = ""
        self.peer_max_pdu = 0
        self.contexts: list[AcceptedContext] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._by_syntax: dict[tuple[str, str], AcceptedContext] = {}
        self._by_abstract: dict[str, AcceptedContext] = {}
        self._by_id: dict[int, AcceptedContext] = {}
        self._assembler = raw.RawAssembler(max_message)
        self._received: deque[raw.RawMessage] = deque()
        self._message_id = 0
        self._event_reports: deque[dimse.EventReport] = deque()

    # -- association lifecycle -------------------------------------------------------
    @property
    def is_established(self) -> bool:
        return self._writer is not None

    async def connect(self, host: str, port: int, calling_ae: str, called_ae: str,
                      contexts: Iterable[ContextRequest], max_pdu: int | None = None,
                      timeout: float = 30.0,
                      tls: TlsSettings | None = None) -> list[AcceptedContext]:
        """Open the association; returns every proposed context with its result.

        ``tls``: connect over TLS with these settings (the peer's ``AeAddress.tls``);
        the handshake must finish within ``timeout``. A failed handshake (unknown CA,
        expired certificate, no common protocol version or suite, our certificate
        refused) is a :class:`DicomTlsError` naming OpenSSL's reason.

        Raises :class:`DicomUnreachable` (connect refused, no route, unknown host),
        :class:`DicomTimeout` (no TCP connection or no answer within ``timeout``),
        :class:`AssociationRejected` (with the RJ's fields), :class:`AssociationAborted`,
        and ``AssociationError`` when the peer accepted none of the contexts.
        """
        if self._writer is not None:
            raise ConfigError("association already established", peer=self.peer)
        if max_pdu is not None:
            self.max_pdu = max_pdu
            self._assembler = raw.RawAssembler(self.max_message)
        self.peer, self.calling_ae, self.called_ae = f"{host}:{port}", calling_ae, called_ae
        proposed = build_contexts(contexts)
        context = tls.client_context() if tls is not None else None
        secure: dict[str, Any] = {} if context is None else dict(
            ssl=context, ssl_handshake_timeout=timeout + 1.0,  # the outer timeout decides
            server_hostname=host if tls is not None and tls.check_hostname else "")
        with self.events.exchange("dicom.associate", self.actor, self.peer,
                                  called_ae=called_ae,
                                  **({"tls": tls.profile} if tls else {})) as event:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(host, port, **secure)
            except ssl.SSLError as exc:
                reason = describe_tls_failure(exc)
                event.detail["tls_failure"] = reason
                raise self._error(f"TLS handshake failed: {reason}", kind=DicomTlsError,
                                  reason=reason) from exc
            except ConnectionResetError as exc:
                if context is None:
                    raise self._error(f"peer unreachable: {exc}", kind=DicomUnreachable) from exc
                # the server dropped us mid-handshake (it refused our certificate or version)
                reason = f"connection reset during the TLS handshake: {exc}"
                event.detail["tls_failure"] = reason
                raise self._error(f"TLS handshake failed: {reason}", kind=DicomTlsError,
                                  reason=reason) from exc
            except TimeoutError as exc:  # no SYN-ACK in time: a timeout (httpx's ConnectTimeout)
                raise self._error(f"peer unreachable: {exc or 'connect timed out'}",
                                  kind=DicomTimeout) from exc
            except OSError as exc:
                raise self._error(f"peer unreachable: {exc}", kind=DicomUnreachable) from exc
            _tune_socket(writer)
            self._reader, self._writer = reader, writer
            writer.write(associate_rq_bytes(calling_ae, called_ae, proposed, self.max_pdu))
            pdu_type, answer = await self._read_pdu(timeout, during="association negotiation")
            if pdu_type == codec.A_ASSOCIATE_RJ_TYPE:
                rj: Any = codec.decode_pdu(pdu_type, answer)
                await self._close()
                fields = int(rj.result), int(rj.source), int(rj.reason_diagnostic)
                reason = describe_rejection(*fields)
                event.status = "rejected"
                event.detail["rejection"] = reason  # load statistics group errors by it
                raise self._error(f"association rejected: {reason}", kind=AssociationRejected,
                                  result=fields[0], source=fields[1], reason=fields[2])
            if pdu_type != codec.A_ASSOCIATE_AC_TYPE:
                await self._fail(codec.ABORT_UNEXPECTED_PDU)
                raise self._error(f"unexpected PDU 0x{pdu_type:02X} during association negotiation")
            ac = codec.decode_pdu(pdu_type, answer)
            self.contexts, self.peer_max_pdu = accepted_contexts(proposed, ac)  # type: ignore[arg-type]
            self._index_contexts()
            if not self._by_id:
                await self.abort()
                results = "; ".join(f"{cx.abstract_syntax}: {cx.result_text}" for cx in self.contexts)
                raise self._error(f"peer accepted no presentation context ({results})")
            event.status = "accepted"
        return self.contexts

    async def release(self, timeout: float | None = None) -> None:
        """A-RELEASE-RQ, wait for A-RELEASE-RP (late P-DATA is ignored), close."""
        if self._writer is None:
            return
        with self.events.exchange("dicom.release", self.actor, self.peer):
            try:
                self._writer.write(codec.release_rq_bytes())
                deadline = time.monotonic() + (timeout or self.dimse_timeout)
                for _ in range(10_000):  # bounded: a peer streaming data cannot keep us here
                    remaining = max(deadline - time.monotonic(), 0.001)
                    pdu_type, _raw = await codec.read_pdu(self._reader, self.max_pdu, remaining)  # type: ignore[arg-type]
                    if pdu_type in (codec.A_RELEASE_RP_TYPE, codec.A_ABORT_TYPE):
                        break
            except (TimeoutError, OSError, asyncio.IncompleteReadError, AssociationError):
                pass  # release is best effort: the socket is closed either way
            finally:
                await self._close()

    async def abort(self) -> None:
        """A-ABORT (service user) and close; safe to call at any time."""
        if self._writer is not None:
            try:
                self._writer.write(codec.abort_bytes())
            except (OSError, RuntimeError):
                pass
            await self._close()

    async def __aenter__(self) -> "FastAssociation":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.release()
        else:
            await self.abort()

    # -- DIMSE services ----------------------------------------------------------------
    async def echo(self) -> int:
        """C-ECHO; returns the status."""
        context = self._context_for("1.2.840.10008.1.1")
        with self.events.exchange("dicom.c-echo", self.actor, self.peer) as event:
            message_id = self._next_id()
            self._send(codec.message_pdus(dimse.c_echo_rq(message_id), context.context_id, self.peer_max_pdu))
            response = await self._await_response(message_id)
            return self._finish(event, response)

    async def store(self, data: Dataset | bytes | Sequence[bytes] | EncodedInstance,
                    sop_class: str | None = None,
                    sop_instance: str | None = None, transfer_syntax: str | None = None,
                    *, priority: int = 2) -> int:
        """C-STORE one instance; returns the status (a failure status does not raise).

        ``data`` may be an ``EncodedInstance`` (from ``read_part10``: sent byte for
        byte), raw dataset bytes, whole or in pieces sent back to back (give the UIDs
        and transfer syntax), or a Dataset (encoded in the accepted transfer syntax
        of its SOP class).
        """
        if isinstance(data, EncodedInstance):
            sop_class = sop_class or data.sop_class
            sop_instance = sop_instance or data.sop_instance
            transfer_syntax = transfer_syntax or data.transfer_syntax
            data = data.data
        elif isinstance(data, Dataset):
            sop_class = sop_class or str(data.SOPClassUID)
            sop_instance = sop_instance or str(data.SOPInstanceUID)
        if not sop_class or not sop_instance:
            raise ConfigError("C-STORE needs the SOP class and instance UIDs")
        context = self._context_for(sop_class, transfer_syntax)
        if isinstance(data, Dataset):
            data = encode_dataset(data, context.transfer_syntax)
        with self.events.exchange("dicom.c-store", self.actor, self.peer) as event:
            message_id = self._next_id()
            command = dimse.c_store_rq_command(message_id, sop_class, sop_instance, priority)
            parts = codec.encoded_command_pdus(command, context.context_id, self.peer_max_pdu)
            parts.extend(codec.dataset_pdus(data, context.context_id, self.peer_max_pdu))
            event.bytes = len(data) if isinstance(data, bytes) else sum(map(len, data))
            self._send(parts)
            response = await self._await_response(message_id)
            return self._finish(event, response)

    async def n_create(self, sop_class: str, instance_uid: str | None,
                       attributes: Dataset) -> dimse.NResult:
        """N-CREATE (e.g. MPPS IN PROGRESS); the result names the created instance."""
        context = self._context_for(sop_class)
        message_id = self._next_id()
        request = dimse.n_create_rq(message_id, sop_class, instance_uid,
                                    encode_dataset(attributes, context.transfer_syntax))
        return await self._n_exchange("dicom.n-create", request, context, message_id, instance_uid or "")

    async def n_set(self, sop_class: str, instance_uid: str, modification: Dataset) -> dimse.NResult:
        """N-SET (e.g. MPPS COMPLETED / DISCONTINUED)."""
        context = self._context_for(sop_class)
        message_id = self._next_id()
        request = dimse.n_set_rq(message_id, sop_class, instance_uid,
                                 encode_dataset(modification, context.transfer_syntax))
        return await self._n_exchange("dicom.n-set", request, context, message_id, instance_uid)

    async def n_action(self, sop_class: str, instance_uid: str, action_type: int,
                       information: Dataset | None = None) -> dimse.NResult:
        """N-ACTION (e.g. storage commitment request, action type 1)."""
        context = self._context_for(sop_class)
        message_id = self._next_id()
        encoded = encode_dataset(information, context.transfer_syntax) if information is not None else None
        request = dimse.n_action_rq(message_id, sop_class, instance_uid, action_type, encoded)
        return await self._n_exchange("dicom.n-action", request, context, message_id, instance_uid)

    async def wait_event_report(self, timeout: float | None = None) -> dimse.EventReport:
        """The next N-EVENT-REPORT from the peer (already answered with Success).

        Raises :class:`DicomTimeout` if none arrives in time; the association stays open.
        """
        limit = timeout if timeout is not None else self.dimse_timeout
        report = await self.poll_event_report(limit)
        if report is None:
            raise self._error("no N-EVENT-REPORT arrived in time", kind=DicomTimeout, timeout=limit)
        return report

    async def poll_event_report(self, timeout: float) -> dimse.EventReport | None:
        """An N-EVENT-REPORT if one starts to arrive within ``timeout``, else ``None``.

        Waiting consumes nothing from the stream, so callers can poll in short slices
        (e.g. while also watching a listener for the same report).
        """
        deadline = time.monotonic() + timeout
        while not self._event_reports:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                message = await self._next_message(remaining, idle_ok=True)
            except codec.PduIdle:
                return None
            if not message.is_event_report:
                await self._fail(codec.ABORT_UNEXPECTED_PDU)
                raise self._error(f"unexpected command 0x{message.command_field or 0:04X} "
                                  "while waiting for N-EVENT-REPORT")
            await self._answer_event_report(message.to_dimse())
        return self._event_reports.popleft()

    def transfer_syntax_for(self, sop_class: str) -> str:
        """The transfer syntax the peer accepted for ``sop_class`` (first such context)."""
        return self._context_for(sop_class).transfer_syntax

    # -- internals -------------------------------------------------------------------------
    def _index_contexts(self) -> None:
        for cx in self.contexts:
            if cx.accepted:
                self._by_id[cx.context_id] = cx
                self._by_syntax.setdefault((cx.abstract_syntax, cx.transfer_syntax), cx)
                self._by_abstract.setdefault(cx.abstract_syntax, cx)

    def _context_for(self, sop_class: str, transfer_syntax: str | None = None) -> AcceptedContext:
        if self._writer is None:
            raise AssociationError("association is not established", peer=self.peer)
        found = (self._by_syntax.get((sop_class, transfer_syntax)) if transfer_syntax
                 else self._by_abstract.get(sop_class))
        if found is None:
            raise ProtocolError("no accepted presentation context for this SOP class and transfer syntax",
                                peer=self.peer, sop_class=sop_class, transfer_syntax=transfer_syntax)
        return found

    def _next_id(self) -> int:
        self._message_id = self._message_id % 0xFFFF + 1
        return self._message_id

    def _send(self, parts: Sequence[bytes | memoryview]) -> None:
        """One write per message: with TCP_NODELAY, one segment stream instead of a
        tiny packet per 6-byte header."""
        if self._writer is None:
            raise AssociationError("association is not established", peer=self.peer)
        self._writer.write(b"".join(parts))

    def _finish(self, event: Exchange, response: raw.RawMessage) -> int:
        status = status_of(response)
        event.status, event.outcome = f"0x{status:04X}", dimse.outcome_of(status)
        return status

    async def _n_exchange(self, kind: str, request: msgs.DIMSEMessage, context: AcceptedContext,
                          message_id: int, instance_uid: str) -> dimse.NResult:
        with self.events.exchange(kind, self.actor, self.peer, sop_instance=instance_uid) as event:
            self._send(codec.message_pdus(request, context.context_id, self.peer_max_pdu))
            response = await self._await_response(message_id)
            status = self._finish(event, response)
            return dimse.NResult(
                status=status,
                instance_uid=response.text(AFFECTED_SOP_INSTANCE) or instance_uid,
                dataset=self._decode(response.data, context),
                comment=response.text(ERROR_COMMENT))

    async def _await_response(self, message_id: int) -> raw.RawMessage:
        """The response to ``message_id``; N-EVENT-REPORTs arriving first are answered."""
        for _ in range(100_000):  # bounded: a peer flooding event reports cannot spin us forever
            message = await self._next_message(self.dimse_timeout)
            if message.is_event_report:
                await self._answer_event_report(message.to_dimse())
                continue
            answered = message.responded_to
            if answered != message_id:
                await self._fail(codec.ABORT_UNEXPECTED_PDU)
                raise self._error(f"unexpected command 0x{message.command_field or 0:04X} "
                                  f"answering message {answered}", message_id=message_id)
            return message
        raise self._error("too many interleaved N-EVENT-REPORTs")

    async def _answer_event_report(self, request: msgs.DIMSEMessage) -> None:
        with self.events.exchange("dicom.n-event-report", self.actor, self.peer) as event:
            context = self._by_id.get(int(request.context_id or 0))
            stream = codec.dataset_stream(request)
            dataset = decode_dataset(stream, context.transfer_syntax) if stream and context else None
            report = dimse.EventReport(str(request.command_set.AffectedSOPClassUID),
                                       str(request.command_set.AffectedSOPInstanceUID),
                                       int(request.command_set.EventTypeID), dataset)
            self._event_reports.append(report)
            self._send(codec.message_pdus(dimse.n_event_report_rsp(request), int(request.context_id or 1),
                                          self.peer_max_pdu))
            event.status = "0x0000"
            event.detail["event_type"] = report.event_type

    async def _next_message(self, timeout: float, idle_ok: bool = False) -> raw.RawMessage:
        """Read PDUs until one DIMSE message is complete; A-ABORT and friends raise.

        With ``idle_ok``, ``PduIdle`` (nothing arrived at all) propagates and the
        association stays usable; once a message has started, stalls abort it.
        A PDU that completes several messages queues the later ones.
        """
        if self._received:
            return self._received.popleft()
        while True:
            pdu_type, pdu = await self._read_pdu(timeout, during="waiting for a DIMSE message",
                                                 idle_ok=idle_ok)
            idle_ok = False
            if pdu_type == codec.P_DATA_TYPE:
                try:
                    messages = self._assembler.feed(pdu)
                except codec.PduTooLarge:
                    await self._fail(codec.ABORT_INVALID_PARAMETER)
                    raise
                except Exception as exc:  # a malformed PDV or command set from the peer
                    await self._fail(codec.ABORT_INVALID_PARAMETER)
                    raise self._error(f"malformed DIMSE message from peer: {exc}") from exc
                if messages:
                    self._received.extend(messages[1:])
                    return messages[0]
            elif pdu_type == codec.A_RELEASE_RQ_TYPE:
                self._writer.write(codec.release_rp_bytes())  # type: ignore[union-attr]
                await self._close()
                raise self._error("peer released the association during an operation",
                                  kind=AssociationAborted)
            else:
                await self._fail(codec.ABORT_UNEXPECTED_PDU)
                raise self._error(f"unexpected PDU 0x{pdu_type:02X} during an operation")

    async def _read_pdu(self, timeout: float, during: str,
                        idle_ok: bool = False) -> tuple[int, bytes]:
        if self._reader is None:
            raise AssociationError("association is not established", peer=self.peer)
        try:
            pdu_type, data = await codec.read_pdu(self._reader, self.max_pdu, timeout,
                                                 self.dimse_timeout)
        except codec.PduIdle:
            if idle_ok:
                raise
            await self.abort()
            raise self._error(f"timed out {during}", kind=DicomTimeout, timeout=timeout) from None
        except codec.PduTooLarge as exc:
            await self._fail(codec.ABORT_INVALID_PARAMETER)
            exc.context.update(peer=self.peer, called_ae=self.called_ae)
            raise
        except TimeoutError as exc:
            await self.abort()
            raise self._error(f"timed out {during}", kind=DicomTimeout, timeout=timeout) from exc
        except ssl.SSLError as exc:
            # TLS 1.3 reports a refused client certificate after our side of the handshake
            # finished: it arrives with the first read, as a TLS alert
            await self._close()
            reason = describe_tls_failure(exc)
            raise self._error(f"TLS failure {during}: {reason}", kind=DicomTlsError,
                              reason=reason) from exc
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            await self._close()
            raise self._error(f"connection closed by peer {during}",
                              kind=AssociationAborted) from exc
        if pdu_type == codec.A_ABORT_TYPE:
            pdu = codec.decode_pdu(pdu_type, data)
            await self._close()
            raise self._error(f"association aborted by peer {during}", kind=AssociationAborted,
                              source=getattr(pdu, "source", None),
                              reason=getattr(pdu, "reason_diagnostic", None))
        return pdu_type, data

    async def _fail(self, provider_reason: int) -> None:
        """A-P-ABORT with a PS3.8 reason, then close."""
        if self._writer is not None:
            try:
                self._writer.write(codec.abort_bytes(provider_reason))
            except (OSError, RuntimeError):
                pass
            await self._close()

    async def _close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._by_id.clear()
        self._by_syntax.clear()
        self._by_abstract.clear()
        if writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(2):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                pass

    @staticmethod
    def _decode(data: bytes | None, context: AcceptedContext) -> Dataset | None:
        return decode_dataset(BytesIO(data), context.transfer_syntax) if data else None

    def _error(self, message: str, kind: type[AssociationError] = AssociationError,
               **context: Any) -> AssociationError:
        """``kind`` (the condition: rejected, aborted, timeout...) naming this association."""
        return kind(message, peer=self.peer, calling_ae=self.calling_ae,
                    called_ae=self.called_ae, **context)


def _tune_socket(writer: asyncio.StreamWriter) -> None:
    """TCP_NODELAY (asyncio sets it too, but it must not depend on that) and a large
    write buffer so a 0.5 MB image is handed to the kernel in one go."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.transport.set_write_buffer_limits(high=4 << 20)


__all__ = ["FastAssociation", "STORAGE_COMMITMENT", "MAX_MATCHES"]
