"""Plain-text helpers for HL7 v2 ER7 (the ``|^~\\&`` encoding) that must never fail.

hl7apy builds and parses full messages, but the MLLP layer has to answer even a
message hl7apy rejects (a NACK needs the sender's control ID and applications), and
it must read an ACK code cheaply on every exchange of a load run. These helpers read
MSH and MSA by splitting strings, so they work on anything that starts like HL7.
The same module holds escaping (hl7apy assigns values verbatim, so a name with
``^`` or ``&`` would otherwise break its field) and the sender's control-ID source.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from dataclasses import dataclass

from simulators.errors import Hl7Error  # defined with the other errors; imported from here too
from simulators.hl7.framing import normalize_segments

DEFAULT_ENCODING_CHARS = "^~\\&"

#: HL7 table 0357 (message error condition codes) used by pacsim, v2.5.1 chapter 2.
ERROR_CODES: dict[int, str] = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}

#: Conditions about the message as a whole (not its content) are rejected with AR;
#: content errors get AE (HL7 v2.5.1 section 2.9.2, original acknowledgment mode).
REJECT_CODES = Hl7Error.REJECT_CODES


@dataclass(frozen=True, slots=True)
class Header:
    """The MSH fields an acknowledgment or a router needs, read without hl7apy."""

    encoding_chars: str = DEFAULT_ENCODING_CHARS
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_type: str = ""
    trigger_event: str = ""
    structure: str = ""
    control_id: str = ""
    processing_id: str = "P"
    version: str = ""
    charset: str = ""


def segments(text: str) -> list[str]:
    """The segments of a message, whatever separator the sender used."""
    return [s for s in normalize_segments(text.lstrip()).split("\r") if s]


#: Sending application (MSH-3) of pacsim's own liveness query (the image's
#: HEALTHCHECK, a site's readiness wait): a QRY^Q01 no listener acts on.
HEALTH_CHECK_SENDER = "PACSIM_PROBE"


def is_health_check(header: Header) -> bool:
    """True for pacsim's liveness query: listeners answer it (any ACK proves they are
    up) but never log it as a refusal, or a 2-second healthcheck floods the log."""
    return header.sending_application == HEALTH_CHECK_SENDER and header.message_type == "QRY"


def read_header(text: str) -> Header:
    """Read MSH by splitting; raises :class:`Hl7Error` (code 100) if there is no MSH."""
    parts = segments(text)
    first = parts[0] if parts else ""
    if not first.startswith("MSH") or len(first) < 8:
        raise Hl7Error("message does not start with an MSH segment", hl7_code=100,
                       location="MSH^1")
    sep = first[3]
    fields = first.split(sep)
    # fields[0] is "MSH", fields[1] the encoding characters: MSH-n is fields[n - 1].

    def msh(n: int) -> str:
        return fields[n - 1] if len(fields) >= n else ""

    encoding_chars = msh(2) or DEFAULT_ENCODING_CHARS
    component = encoding_chars[0]
    msg_type = msh(9).split(component)
    return Header(
        encoding_chars=encoding_chars,
        sending_application=msh(3), sending_facility=msh(4),
        receiving_application=msh(5), receiving_facility=msh(6),
        message_type=msg_type[0], trigger_event=msg_type[1] if len(msg_type) > 1 else "",
        structure=msg_type[2] if len(msg_type) > 2 else "",
        control_id=msh(10), processing_id=msh(11).split(component)[0] or "P",
        version=msh(12).split(component)[0], charset=msh(18),
    )


def message_label(text: str) -> str:
    """``ADT^A01`` for events and logs; ``?`` when the text has no readable MSH."""
    try:
        header = read_header(text)
    except Hl7Error:
        return "?"
    return f"{header.message_type}^{header.trigger_event}".rstrip("^") or "?"


def msa_field(reply: str, number: int) -> str:
    """MSA-``number`` of an acknowledgment as sent (not unescaped), "" if absent."""
    for segment in segments(reply):
        if segment.startswith("MSA") and len(segment) > 4:
            fields = segment.split(segment[3])
            return fields[number] if len(fields) > number else ""
    return ""


def ack_code(reply: str) -> str:
    """MSA-1 of an acknowledgment ("AA", "AE", "AR", "CA"...), or "" if there is none."""
    return msa_field(reply, 1)


def err_code(reply: str) -> int | None:
    """The table 0357 code of the first ERR: ERR-3.1 (v2.5+) or ERR-1.4.1 (v2.3.1)."""
    for segment in segments(reply):
        fields = segment.split(segment[3]) if len(segment) > 3 else [segment]
        if fields[0] != "ERR":
            continue
        candidates = []
        if len(fields) > 3:
            candidates.append(fields[3].split("^")[0])
        if len(fields) > 1:
            eld = fields[1].split("~")[0].split("^")
            candidates.append(eld[3].split("&")[0] if len(eld) > 3 else "")
        for candidate in candidates:
            if candidate.isdigit():
                return int(candidate)
    return None


def msa_text(reply: str) -> str:
    """MSA-3 (text message) or the first ERR user message (ERR-8), for reports."""
    msa3 = ""
    for segment in segments(reply):
        fields = segment.split(segment[3]) if len(segment) > 3 else [segment]
        if fields[0] == "MSA" and len(fields) > 3 and fields[3]:
            msa3 = fields[3]
        if fields[0] == "ERR" and len(fields) > 8 and fields[8]:
            return unescape(fields[8])
    return unescape(msa3)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.5.1"`` -> ``(2, 5, 1)`` for comparing HL7 versions."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def escape(value: str) -> str:
    """Escape the default delimiters in a data value (HL7 v2.5.1 section 2.7)."""
    for raw, escaped in _ESCAPES:
        value = value.replace(raw, escaped)
    return value


def unescape(value: str) -> str:
    """Undo :func:`escape` (the escape character last, so ``\\E\\F\\`` stays literal)."""
    for raw, escaped in reversed(_ESCAPES):
        value = value.replace(escaped, raw)
    return value


# Control IDs: a per-process prefix (start time, base 36) plus a counter, so they are
# unique per sender across restarts and fit MSH-10 (20 characters in v2.5.1).
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _ALPHABET[rest] + digits
        if number == 0:
            return digits


_PREFIX = _base36(time.time_ns() // 1_000_000)
_COUNTER = itertools.count(1)  # next() on itertools.count is atomic under the GIL


def new_control_id() -> str:
    """A message control ID (MSH-10) never repeated by this process or a restarted one."""
    return f"{_PREFIX}{next(_COUNTER):08d}"[:20]


def hl7_timestamp(moment: dt.date | None = None) -> str:
    """``YYYYMMDDHHMMSS`` for a datetime (now if None), ``YYYYMMDD`` for a date."""
    if moment is None:
        moment = dt.datetime.now()
    if isinstance(moment, dt.datetime):
        return moment.strftime("%Y%m%d%H%M%S")
    if isinstance(moment, dt.date):
        return moment.strftime("%Y%m%d")
    raise TypeError(f"not a date or datetime: {moment!r}")


__all__ = [
    "DEFAULT_ENCODING_CHARS", "ERROR_CODES", "REJECT_CODES", "Header",
    "segments", "read_header", "message_label", "msa_field", "ack_code", "err_code", "msa_text", "escape", "unescape",
    "new_control_id", "hl7_timestamp", "version_tuple", "HEALTH_CHECK_SENDER", "is_health_check",
]
