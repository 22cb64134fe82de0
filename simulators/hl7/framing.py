"""MLLP framing without any I/O: bytes in, whole frames out.

MLLP (HL7 v2 Minimal Lower Layer Protocol) wraps each message as
``<VT> message <FS><CR>``. TCP gives no message boundaries, so a frame can arrive
split over many reads and several frames can arrive in one read. Keeping the
decoder free of sockets lets the asyncio server, the blocking client and the unit
tests share exactly one implementation of those rules:

* bytes outside a frame are discarded and counted (never buffered: memory stays
  bounded against a peer that streams garbage);
* a new ``<VT>`` inside an unfinished frame means the old one was truncated: it is
  dropped and the new one starts;
* a frame that grows past ``max_frame`` is dropped and reported once (the caller
  closes the connection); its remaining bytes are skipped without buffering;
* the ``<CR>`` after ``<FS>`` is expected but tolerated when missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"  # <VT>
END_BLOCK = b"\x1c"  # <FS>
CARRIAGE_RETURN = b"\x0d"  # <CR>


def encode_frame(message: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Wrap one message as an MLLP frame, with segment separators normalized to CR."""
    payload = normalize_segments(message).encode(encoding, errors)
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


def normalize_segments(text: str) -> str:
    """Use CR as the only segment separator (senders and files often use LF or CRLF).

    A trailing separator is dropped: HL7 allows it, and dropping it makes frames from
    different senders compare equal.
    """
    return text.replace("\r\n", "\r").replace("\n", "\r").rstrip("\r")


def decode_frame(frame: bytes, encoding: str = "utf-8") -> str:
    """Frame payload to text with CR separators.

    A payload that is not valid ``encoding`` is read as ISO-8859-1 (which never
    fails and is what most non-UTF-8 HL7 feeds use) instead of being dropped.
    """
    try:
        return normalize_segments(frame.decode(encoding))
    except UnicodeDecodeError:
        log.warning("MLLP frame is not valid %s; reading it as ISO-8859-1", encoding)
        return normalize_segments(frame.decode("latin-1"))


@dataclass(slots=True)
class DecodeResult:
    """What one ``feed`` produced: complete frames plus what had to be thrown away."""

    frames: list[bytes]
    discarded: int = 0  # bytes outside any frame (garbage, stray CR/LF)
    truncated: int = 0  # frames abandoned because a new <VT> started before <FS>
    oversize: bool = False  # a frame passed max_frame: the caller should close


class FrameDecoder:
    """Incremental MLLP decoder; one instance per connection."""

    def __init__(self, max_frame: int = 1_048_576) -> None:
        if max_frame <= 0:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._in_frame = False
        self._skipping = False  # inside an oversize frame: drop bytes until <FS>
        self._swallow_cr = False  # a frame just ended at <FS>; its <CR> may come next

    @property
    def in_frame(self) -> bool:
        """True while a frame has started but not ended (a read timeout applies)."""
        return self._in_frame or self._skipping

    @property
    def pending(self) -> int:
        """Bytes of the unfinished frame held in memory (never more than max_frame)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> DecodeResult:
        """Consume ``data``; return every frame it completed (payload without VT/FS/CR)."""
        result = DecodeResult(frames=[])
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            if self._swallow_cr:
                self._swallow_cr = False
                if view[pos] == CARRIAGE_RETURN[0]:
                    pos += 1
                    continue
            if self._skipping:
                stop = data.find(END_BLOCK, pos)
                if stop < 0:
                    return result
                self._skipping = False
                self._swallow_cr = True
                pos = stop + 1
            elif not self._in_frame:
                start = data.find(START_BLOCK, pos)
                if start < 0:
                    result.discarded += end - pos
                    return result
                result.discarded += start - pos
                self._in_frame = True
                pos = start + 1
            else:
                pos = self._consume_frame_bytes(data, pos, result)
        return result

    def _consume_frame_bytes(self, data: bytes, pos: int, result: DecodeResult) -> int:
        """Inside a frame: append up to the next <FS> or <VT>; return the new position."""
        stop = data.find(END_BLOCK, pos)
        restart = data.find(START_BLOCK, pos)
        if restart >= 0 and (stop < 0 or restart < stop):
            # A new frame began before this one ended: the old one was cut off.
            result.truncated += 1
            self._buffer.clear()
            return restart + 1  # still in_frame, now for the new frame
        chunk_end = stop if stop >= 0 else len(data)
        if len(self._buffer) + (chunk_end - pos) > self.max_frame:
            result.oversize = True
            self._buffer.clear()
            self._in_frame = False
            if stop >= 0:
                self._swallow_cr = True
                return stop + 1
            self._skipping = True
            return len(data)
        self._buffer += data[pos:chunk_end]
        if stop < 0:
            return len(data)
        result.frames.append(bytes(self._buffer))
        self._buffer.clear()
        self._in_frame = False
        self._swallow_cr = True
        return stop + 1


__all__ = [
    "START_BLOCK", "END_BLOCK", "CARRIAGE_RETURN", "encode_frame", "decode_frame",
    "normalize_segments",
    "DecodeResult", "FrameDecoder",
]
