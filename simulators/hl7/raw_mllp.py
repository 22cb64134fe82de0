"""A raw-socket MLLP injector: broken framing on purpose, bounded reads of the answers.

The MLLP client always frames correctly; framing faults (no start block, no end
block, a frame cut off half-way, an oversized frame, frames split or coalesced across
TCP writes) need the bytes written by hand. Answers are read with the project's one
frame decoder (:class:`~simulators.hl7.framing.FrameDecoder`), bounded in size and time.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Sequence

from simulators.hl7.framing import CARRIAGE_RETURN, END_BLOCK, START_BLOCK, FrameDecoder, \
    decode_frame, encode_frame

#: Fault id -> how the message's frame is written (used by the EHR hook and the probes).
FRAMINGS = ("mllp.no-start-block", "mllp.no-end-block", "mllp.oversize", "mllp.split")
OVERSIZE_BYTES = 2 * 1024 * 1024


@dataclass(slots=True)
class MllpAnswer:
    """Replies read back (frame texts, in order) and whether the peer closed."""

    replies: list[str] = field(default_factory=list)
    closed: bool = False
    error: str = ""


def broken_frame(fault_id: str, message: str, encoding: str = "utf-8") -> list[bytes]:
    """The writes that send ``message`` with ``fault_id``'s framing (one bytes per write)."""
    payload = message.replace("\n", "\r").encode(encoding)
    if fault_id == "mllp.no-start-block":
        return [payload + END_BLOCK + CARRIAGE_RETURN]
    if fault_id == "mllp.no-end-block":
        return [START_BLOCK + payload]
    if fault_id == "mllp.oversize":
        filler = b"X" * max(0, OVERSIZE_BYTES - len(payload))
        return [START_BLOCK + payload + b"\rNTE|1||" + filler + END_BLOCK + CARRIAGE_RETURN]
    if fault_id == "mllp.split":
        frame = encode_frame(message, encoding)
        third = max(1, len(frame) // 3)
        return [frame[:third], frame[third:2 * third], frame[2 * third:]]
    return [encode_frame(message, encoding)]


def exchange(host: str, port: int, writes: Sequence[bytes], *, expect: int,
             wait: float = 2.0, pause: float = 0.05, encoding: str = "utf-8",
             max_frame: int = 4 * 1024 * 1024) -> MllpAnswer:
    """Write ``writes`` (pausing between them so TCP cannot merge them), then read
    until ``expect`` replies arrived, the peer closed, or ``wait`` seconds passed."""
    answer = MllpAnswer()
    decoder = FrameDecoder(max_frame)
    try:
        sock = socket.create_connection((host, port), timeout=wait)
    except OSError as exc:
        answer.error = f"connect failed: {exc}"
        return answer
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for index, data in enumerate(writes):
                if index and pause:
                    time.sleep(pause)
                sock.sendall(data)
        except OSError as exc:
            answer.closed = True
            answer.error = f"peer closed while sending: {exc}"
            return answer
        deadline = time.monotonic() + wait
        for _ in range(10_000):
            if len(answer.replies) >= expect:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except (TimeoutError, socket.timeout):
                break
            except OSError:
                answer.closed = True
                break
            if not data:
                answer.closed = True
                break
            answer.replies += [decode_frame(frame, encoding) for frame in decoder.feed(data).frames]
    return answer


def stays_open(host: str, port: int, data: bytes, wait: float) -> bool:
    """Send ``data`` (a frame cut off half-way) and report whether the peer still has
    the connection open after ``wait`` seconds (False = it closed it: a read timeout)."""
    with socket.create_connection((host, port), timeout=wait + 1) as sock:
        sock.sendall(data)
        sock.settimeout(wait)
        try:
            received = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return True
        except OSError:
            return False
        return bool(received)


__all__ = ["MllpAnswer", "broken_frame", "exchange", "stays_open", "FRAMINGS", "OVERSIZE_BYTES"]
