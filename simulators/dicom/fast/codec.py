"""PDU framing and DIMSE message (de)fragmentation for the asyncio client.

Encoding and decoding of every PDU and DIMSE command set is pynetdicom's
(``pynetdicom.pdu``, ``pynetdicom.dimse_messages``); this module only adds what an
asyncio socket needs around them:

* ``read_pdu``: reads one PDU with a timeout and refuses a claimed length above our
  limit *before* allocating it (pynetdicom reads whatever length a peer claims).
* ``dataset_pdus``: the one hot path written here. pynetdicom's ``encode_msg`` slices,
  prefixes and concatenates each fragment (four copies of a 0.5 MB slice); we emit
  a 12-byte header plus a ``memoryview`` slice per PDU so the transport writes the
  file's bytes as they are. ``tests/unit/test_fast_codec.py`` checks it byte for
  byte against pynetdicom's own P-DATA-TF encoding.
"""

from __future__ import annotations

import asyncio
import struct
from io import BytesIO
from typing import Iterator, Sequence

from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu import (
    A_ABORT_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ, A_RELEASE_RP, A_RELEASE_RQ,
    P_DATA_TF,
)
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE

from simulators.errors import (  # PduTooLarge: imported from here too
    AssociationError, PduTooLarge, ProtocolError,
)

#: PDU type bytes (PS3.8 9.3.1).
A_ASSOCIATE_RQ_TYPE, A_ASSOCIATE_AC_TYPE, A_ASSOCIATE_RJ_TYPE = 0x01, 0x02, 0x03
P_DATA_TYPE, A_RELEASE_RQ_TYPE, A_RELEASE_RP_TYPE, A_ABORT_TYPE = 0x04, 0x05, 0x06, 0x07

PDU_CLASSES = {
    A_ASSOCIATE_RQ_TYPE: A_ASSOCIATE_RQ, A_ASSOCIATE_AC_TYPE: A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ_TYPE: A_ASSOCIATE_RJ, P_DATA_TYPE: P_DATA_TF,
    A_RELEASE_RQ_TYPE: A_RELEASE_RQ, A_RELEASE_RP_TYPE: A_RELEASE_RP, A_ABORT_TYPE: A_ABORT_RQ,
}

#: Limit for non-P-DATA PDUs (association negotiation): generous, but bounded.
CONTROL_PDU_LIMIT = 1 << 20
#: When we announce "no limit" (max_pdu 0) we still refuse PDUs above this.
HARD_PDU_LIMIT = 64 << 20

#: A-P-ABORT reasons (PS3.8 9.3.8).
ABORT_UNRECOGNISED_PDU, ABORT_UNEXPECTED_PDU, ABORT_INVALID_PARAMETER = 1, 2, 6

_HEADER = struct.Struct(">BxI")
_PDATA_HEADER = struct.Struct(">BxIIBB")  # PDU type, length, PDV length, context, control


def pdu_limit(pdu_type: int, max_pdu: int) -> int:
    """Longest body accepted for ``pdu_type`` when we announced ``max_pdu``."""
    if pdu_type == P_DATA_TYPE:
        return max_pdu if max_pdu > 0 else HARD_PDU_LIMIT
    return CONTROL_PDU_LIMIT


class PduIdle(TimeoutError):
    """No PDU started to arrive in time; nothing was consumed, the stream is intact."""


async def read_pdu(reader: asyncio.StreamReader, max_pdu: int, timeout: float | None,
                   body_timeout: float | None = None) -> tuple[int, bytes]:
    """Read one whole PDU; returns ``(pdu_type, raw bytes including the header)``.

    ``PduIdle`` when no header arrived in ``timeout`` (``readexactly`` consumes
    nothing until all six bytes are there, so the caller may simply retry);
    ``TimeoutError`` when the body stalls for ``body_timeout`` (default: ``timeout``);
    ``PduTooLarge`` for a claimed length above the limit (nothing is allocated for
    it); ``asyncio.IncompleteReadError`` when the peer closes mid-PDU.
    """
    if _buffered(reader) >= 6:
        header = await reader.readexactly(6)  # cannot wait: no timer needed
    else:
        try:
            async with asyncio.timeout(timeout):
                header = await reader.readexactly(6)
        except TimeoutError:
            raise PduIdle("no PDU arrived in time") from None
    pdu_type, length = _HEADER.unpack(header)
    if length > pdu_limit(pdu_type, max_pdu):
        raise PduTooLarge("peer sent a PDU longer than the negotiated maximum",
                          pdu_type=f"0x{pdu_type:02X}", length=length,
                          limit=pdu_limit(pdu_type, max_pdu))
    if _buffered(reader) >= length:
        body = await reader.readexactly(length)
    else:
        async with asyncio.timeout(body_timeout if body_timeout is not None else timeout):
            body = await reader.readexactly(length)
    return pdu_type, header + body


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes the reader already holds (0 if the stream hides them).

    A timeout costs two timer-heap operations (about 15 us); a peer answering 250
    C-FIND matches sends 500 PDUs that mostly sit in the buffer already, so reads
    that cannot wait skip the timer. ``_buffer`` is StreamReader's internal buffer
    (stable since Python 3.4); without it every read simply keeps its timeout.
    """
    buffer = getattr(reader, "_buffer", None)
    return len(buffer) if isinstance(buffer, (bytearray, bytes)) else 0


def decode_pdu(pdu_type: int, raw: bytes) -> object:
    """Decode raw PDU bytes with pynetdicom's PDU class for ``pdu_type``.

    Raises :class:`AssociationError` for bytes that are not a valid PDU of that type.
    Why the broad catch: pynetdicom's decoders raise KeyError, ValueError, struct.error
    and more on damaged input (found by the property tests, issue 13); a caller must
    be able to refuse a bad PDU without guessing which.
    """
    cls = PDU_CLASSES.get(pdu_type)
    if cls is None:
        raise AssociationError("peer sent an unknown PDU type", pdu_type=f"0x{pdu_type:02X}")
    pdu = cls()
    try:
        pdu.decode(raw)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise AssociationError("malformed PDU", pdu_type=f"0x{pdu_type:02X}",
                               reason=f"{type(exc).__name__}: {exc}"[:200]) from exc
    return pdu


def release_rq_bytes() -> bytes:
    return A_RELEASE_RQ(A_RELEASE()).encode()


def release_rp_bytes() -> bytes:
    primitive = A_RELEASE()
    primitive.result = "affirmative"
    return A_RELEASE_RP(primitive).encode()


def abort_bytes(provider_reason: int | None = None) -> bytes:
    """A-ABORT-RQ: by the service user (``None``) or the provider with a PS3.8 reason."""
    primitive: A_ABORT | A_P_ABORT
    if provider_reason is None:
        primitive = A_ABORT()
        primitive.abort_source = 0x00
    else:
        primitive = A_P_ABORT()
        primitive.provider_reason = provider_reason
    return A_ABORT_RQ(primitive).encode()


def message_pdus(message: DIMSEMessage, context_id: int, max_pdu: int) -> list[bytes]:
    """Encode a DIMSE message (command and any small dataset) as P-DATA-TF PDUs.

    Uses pynetdicom's ``encode_msg`` fragmentation, so the peer's maximum PDU
    length is honoured exactly as pynetdicom would honour it.
    """
    return [P_DATA_TF(primitive).encode() for primitive in message.encode_msg(context_id, max_pdu)]


def command_pdus(message: DIMSEMessage, context_id: int, max_pdu: int) -> list[bytes]:
    """Only the command-set PDUs of ``message`` (its dataset is sent separately)."""
    dataset, message.data_set = message.data_set, None
    try:
        return message_pdus(message, context_id, max_pdu)
    finally:
        message.data_set = dataset


def dataset_pdus(dataset: bytes | memoryview | Sequence[bytes | memoryview], context_id: int,
                 max_pdu: int) -> Iterator[bytes | memoryview]:
    """Yield header/fragment pairs of P-DATA-TF PDUs carrying one encoded dataset.

    Fragmentation matches pynetdicom's ``encode_msg``: one PDV per PDU, each PDU's
    length field at most ``max_pdu`` (the peer's Maximum Length, PS3.8 D.1), the
    last fragment flagged ``0x02``. Fragments are zero-copy ``memoryview`` slices.
    ``dataset`` may come in pieces (a header and a shared Pixel Data element): the
    PDUs are the same as for the joined bytes, a fragment spanning two pieces is
    yielded as two slices after its header, and nothing is joined here.
    """
    if isinstance(dataset, (bytes, bytearray, memoryview)):
        return _fragments(dataset, context_id, max_pdu, 0x00)
    return _piece_fragments(dataset, context_id, max_pdu)


def encoded_command_pdus(command: bytes, context_id: int, max_pdu: int) -> list[bytes | memoryview]:
    """P-DATA-TF PDUs for an already encoded command set (PDV flags 0x01/0x03)."""
    return list(_fragments(command, context_id, max_pdu, 0x01))


def _fragments(payload: bytes | memoryview, context_id: int, max_pdu: int,
               command_bit: int) -> Iterator[bytes | memoryview]:
    view = memoryview(payload)
    total = len(view)
    chunk = total if max_pdu == 0 else max_pdu - 6
    if chunk <= 0:
        raise ValueError("max_pdu must be 0 or larger than 6")
    offset = 0
    while True:
        end = min(offset + chunk, total)
        size = end - offset
        control = (0x02 if end >= total else 0x00) | command_bit
        yield _PDATA_HEADER.pack(P_DATA_TYPE, size + 6, size + 2, context_id, control)
        yield view[offset:end]
        offset = end
        if end >= total:
            return


def _piece_fragments(pieces: Sequence[bytes | memoryview], context_id: int,
                     max_pdu: int) -> Iterator[bytes | memoryview]:
    views = [memoryview(piece) for piece in pieces if len(piece)]
    total = sum(len(view) for view in views)
    if not views:
        yield from _fragments(b"", context_id, max_pdu, 0x00)
        return
    chunk = total if max_pdu == 0 else max_pdu - 6
    if chunk <= 0:
        raise ValueError("max_pdu must be 0 or larger than 6")
    index = start = sent = 0
    while sent < total:  # bounded: every PDU carries at least one byte
        size = min(chunk, total - sent)
        sent += size
        yield _PDATA_HEADER.pack(P_DATA_TYPE, size + 6, size + 2, context_id,
                                 0x02 if sent >= total else 0x00)
        while size:
            view = views[index]
            take = min(size, len(view) - start)
            yield view[start:start + take]
            size -= take
            start += take
            if start == len(view):
                index, start = index + 1, 0


class MessageAssembler:
    """Collects P-DATA-TF PDUs into one DIMSE message, with a size bound.

    pynetdicom's ``DIMSEMessage.decode_msg`` does the work; this only guards the
    total size so a peer cannot make us buffer an unbounded message.
    """

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._message = DIMSEMessage()
        self._size = 0

    def feed(self, raw_pdata: bytes) -> DIMSEMessage | None:
        """Add one raw P-DATA-TF PDU; returns the message once it is complete."""
        self._size += len(raw_pdata)
        if self._size > self.max_message:
            raise PduTooLarge("DIMSE message exceeds the size limit", limit=self.max_message)
        pdu = P_DATA_TF()
        try:
            pdu.decode(raw_pdata)
            complete = self._message.decode_msg(pdu.to_primitive())
        except Exception as exc:  # noqa: BLE001 - pynetdicom raises many types (decode_pdu)
            self._message, self._size = DIMSEMessage(), 0
            raise ProtocolError("malformed P-DATA-TF or DIMSE command set",
                                reason=f"{type(exc).__name__}: {exc}"[:200]) from exc
        if not complete:
            return None
        done, self._message, self._size = self._message, DIMSEMessage(), 0
        return done


def dataset_stream(message: DIMSEMessage) -> BytesIO | None:
    """The message's encoded dataset, or ``None`` when it carries none."""
    data = message.data_set
    if data is None or not data.getvalue():
        return None
    return data


__all__ = [
    "PduIdle", "read_pdu", "decode_pdu", "pdu_limit", "release_rq_bytes",
    "release_rp_bytes", "abort_bytes", "message_pdus", "command_pdus", "dataset_pdus",
    "encoded_command_pdus",
    "MessageAssembler", "dataset_stream", "P_DATA_TYPE", "A_ABORT_TYPE",
    "A_ASSOCIATE_AC_TYPE", "A_ASSOCIATE_RJ_TYPE", "A_RELEASE_RQ_TYPE", "A_RELEASE_RP_TYPE",
    "ABORT_UNRECOGNISED_PDU", "ABORT_UNEXPECTED_PDU", "ABORT_INVALID_PARAMETER",
    "CONTROL_PDU_LIMIT", "HARD_PDU_LIMIT",
]
