"""A raw-socket DICOM injector: valid PDUs from pynetdicom, sent in invalid ways.

Association-level faults (abort half-way, a PDU over the negotiated maximum, one
association too many, an idle association) cannot be produced through a correct
client, so this sends PDUs by hand over a blocking socket. Every PDU and DIMSE
message is still *encoded* by pynetdicom (through the fast client's helpers): only
the order, the timing and the length fields are wrong on purpose. Reads are bounded
in size and time, so a peer that misbehaves in return cannot hang a probe.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from typing import Sequence

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from simulators.dicom.fast import codec, dimse
from simulators.dicom.fast.files import encode_dataset
from simulators.dicom.fast.negotiation import (
    AcceptedContext, ContextRequest, accepted_contexts, associate_rq_bytes, build_contexts,
)
from simulators.tls import TlsSettings

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
_HEADER = struct.Struct(">BxI")
#: A reply PDU longer than this is not read (probes never need more).
READ_LIMIT = 4 << 20


@dataclass(slots=True)
class AssociateAnswer:
    """How the peer answered an A-ASSOCIATE-RQ."""

    kind: str  # accepted | rejected | aborted | closed | timeout | other
    reject: tuple[int, int, int] | None = None
    contexts: list[AcceptedContext] = field(default_factory=list)
    peer_max_pdu: int = 0

    def describe(self) -> str:
        if self.kind == "rejected" and self.reject:
            return "A-ASSOCIATE-RJ %d/%d/%d" % self.reject
        if self.kind == "accepted":
            return "A-ASSOCIATE-AC"
        return self.kind


class RawAssociation:
    """One TCP connection speaking hand-sequenced PDUs (a context manager)."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0,
                 tls: TlsSettings | None = None) -> None:
        """Connect (over TLS with ``tls``: a refused handshake raises ``ssl.SSLError``)."""
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                self.sock = tls.client_context().wrap_socket(
                    self.sock, server_hostname=host if tls.check_hostname else None)
            except (ssl.SSLError, OSError):
                self.sock.close()
                raise
        self.contexts: list[AcceptedContext] = []
        self.peer_max_pdu = 0
        self._message_id = 0

    # -- negotiation ------------------------------------------------------------
    def associate(self, calling_ae: str, called_ae: str, contexts: Sequence[ContextRequest],
                  max_pdu: int = 16_384) -> AssociateAnswer:
        proposed = build_contexts(contexts)
        self.send(associate_rq_bytes(calling_ae, called_ae, proposed, max_pdu))
        pdu = self.read_pdu()
        if pdu is None:
            return AssociateAnswer("closed")
        pdu_type, raw = pdu
        if pdu_type == codec.A_ASSOCIATE_RJ_TYPE:
            rj = codec.decode_pdu(pdu_type, raw)
            return AssociateAnswer("rejected", (int(rj.result), int(rj.source),  # type: ignore[attr-defined]
                                                int(rj.reason_diagnostic)))  # type: ignore[attr-defined]
        if pdu_type == codec.A_ABORT_TYPE:
            return AssociateAnswer("aborted")
        if pdu_type != codec.A_ASSOCIATE_AC_TYPE:
            return AssociateAnswer("other")
        ac = codec.decode_pdu(pdu_type, raw)
        self.contexts, self.peer_max_pdu = accepted_contexts(proposed, ac)  # type: ignore[arg-type]
        return AssociateAnswer("accepted", contexts=self.contexts, peer_max_pdu=self.peer_max_pdu)

    def context_id(self, abstract_syntax: str) -> int:
        for context in self.contexts:
            if context.abstract_syntax == abstract_syntax and context.accepted:
                return context.context_id
        raise LookupError(f"no accepted context for {abstract_syntax}")

    def transfer_syntax(self, context_id: int) -> str:
        return next(c.transfer_syntax for c in self.contexts if c.context_id == context_id)

    # -- sending --------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_id(self) -> int:
        self._message_id += 1
        return self._message_id

    def message_pdus(self, message: DIMSEMessage, context_id: int) -> list[bytes]:
        return codec.message_pdus(message, context_id, self.peer_max_pdu or 16_384)

    def send_message(self, message: DIMSEMessage, context_id: int) -> None:
        for pdu in self.message_pdus(message, context_id):
            self.send(pdu)

    def encode(self, ds: Dataset, context_id: int) -> bytes:
        return encode_dataset(ds, self.transfer_syntax(context_id))

    def abort(self) -> None:
        try:
            self.send(codec.abort_bytes())
        except OSError:
            pass

    def release(self) -> None:
        try:
            self.send(codec.release_rq_bytes())
            self.read_pdu(timeout=2.0)
        except OSError:
            pass

    # -- reading --------------------------------------------------------------------
    def read_pdu(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """The next whole PDU, or None when the peer closed or ``timeout`` passed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        header = self._read_exactly(6, deadline)
        if header is None:
            return None
        pdu_type, length = _HEADER.unpack(header)
        if length > READ_LIMIT:
            return None
        body = self._read_exactly(length, deadline)
        return None if body is None else (pdu_type, header + body)

    def read_message(self, timeout: float | None = None) -> DIMSEMessage | str:
        """The next DIMSE message, or ``"aborted"``/``"closed"``/``"released"``."""
        assembler = codec.MessageAssembler(READ_LIMIT)
        for _ in range(10_000):
            pdu = self.read_pdu(timeout)
            if pdu is None:
                return "closed"
            pdu_type, raw = pdu
            if pdu_type == codec.A_ABORT_TYPE:
                return "aborted"
            if pdu_type == codec.A_RELEASE_RQ_TYPE:
                return "released"
            if pdu_type == codec.P_DATA_TYPE:
                message = assembler.feed(raw)
                if message is not None:
                    return message
        return "closed"

    def wait_closed(self, timeout: float) -> str:
        """Wait up to ``timeout`` for the peer to end the association: how it did it."""
        deadline = time.monotonic() + timeout
        for _ in range(10_000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "open"
            pdu = self.read_pdu(remaining)
            if pdu is None:
                return "closed" if time.monotonic() < deadline else "open"
            if pdu[0] == codec.A_ABORT_TYPE:
                return "aborted"
            if pdu[0] == codec.A_RELEASE_RQ_TYPE:
                return "released"
        return "open"

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(min(65536, size - len(chunks)))
            except (TimeoutError, socket.timeout):
                return None
            except OSError:
                return None
            if not data:
                return None
            chunks += data
        return bytes(chunks)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawAssociation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def status_of(message: DIMSEMessage | str) -> int | None:
    """The Status of a response message (None for aborted/closed answers)."""
    if isinstance(message, str):
        return None
    value = dimse.command_value(message, "Status")
    return None if value is None else int(value)  # type: ignore[call-overload]


def oversized_pdata(context_id: int, body_size: int) -> bytes:
    """A P-DATA-TF carrying one PDV of ``body_size`` zero bytes (a valid PDU shape)."""
    primitive = P_DATA()
    primitive.presentation_data_value_list = [[context_id, b"\x00" + b"\x00" * body_size]]
    return P_DATA_TF(primitive).encode()


__all__ = ["RawAssociation", "AssociateAnswer", "status_of", "oversized_pdata",
           "EXPLICIT_LE", "IMPLICIT_LE"]
