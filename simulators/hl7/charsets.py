"""HL7 v2 character sets (MSH-18, table 0211) to Python codecs, and decoding by them.

Why: a frame is bytes, and only MSH-18 says which character set they are in. Reading
every frame as UTF-8 with a latin-1 fallback turned ISO-8859-2 ``Dvořák`` into
``Dvoøák`` and acknowledged it AA (issue 13). MSH itself is ASCII in every
ASCII-compatible set this module accepts, so MSH-18 can be read before the rest is
decoded. Policy:

* MSH-18 empty: the listener's default encoding, with the old latin-1 fallback
  (senders that do not fill MSH-18 are the common case and must keep working);
* MSH-18 a known table 0211 value: decoded strictly in it; bytes that are not valid
  in the declared set are refused (102 at MSH-18), never guessed;
* MSH-18 anything else: refused, 103 (table value not found) at MSH-18.

UTF-16/32 are not accepted: their bytes can contain the MLLP block characters, so
they cannot travel in a plain MLLP frame. The first repetition of MSH-18 is the
message's default set; later repetitions (ISO 2022 code extensions) are not
supported and ignored.
"""

from __future__ import annotations

from simulators.errors import Hl7Error
from simulators.hl7.er7 import read_header
from simulators.hl7.framing import decode_frame, normalize_segments

#: Table 0211 values (v2.3.1 and v2.5.1 spellings) -> Python codec names.
HL7_CODECS: dict[str, str] = {
    "ASCII": "ascii",
    **{f"8859/{n}": f"iso8859_{n}" for n in range(1, 10)},
    "8859/15": "iso8859_15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",  # v2.3.1's only Unicode value; UTF-8 is what sites send with it
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "KS X 1001": "euc_kr",
}

#: Spellings seen in the field for the same values (normalised before lookup).
_ALIASES = {"UNICODE/UTF-8": "UNICODE UTF-8", "UTF-8": "UNICODE UTF-8",
            "UTF8": "UNICODE UTF-8", "UNICODE UTF8": "UNICODE UTF-8",
            "ISO-8859-1": "8859/1", "ISO 8859/1": "8859/1"}


def codec_for(charset: str) -> str | None:
    """The Python codec for an MSH-18 value; None when MSH-18 is empty.

    Raises :class:`Hl7Error` 103 at MSH-18 for a value outside table 0211 (or one
    pacsim cannot carry over MLLP): guessing would store wrong names silently.
    """
    value = charset.split("~")[0].strip().upper()
    if not value:
        return None
    value = _ALIASES.get(value, value)
    codec = HL7_CODECS.get(value)
    if codec is None:
        raise Hl7Error(f"character set {charset!r} (MSH-18) not supported", hl7_code=103,
                       location="MSH^1^18")
    return codec


def decode_message(frame: bytes, default: str = "utf-8") -> str:
    """Frame payload to text in the character set its MSH-18 declares.

    Raises :class:`Hl7Error`: 103 for an unknown MSH-18, 102 for bytes that are not
    valid in the declared set. Without MSH-18 (or without a readable MSH) this is
    :func:`~simulators.hl7.framing.decode_frame` with ``default``.
    """
    try:
        charset = read_header(frame.decode("latin-1")).charset  # MSH is ASCII
    except Hl7Error:
        return decode_frame(frame, default)
    codec = codec_for(charset)
    if codec is None:
        return decode_frame(frame, default)
    try:
        return normalize_segments(frame.decode(codec))
    except UnicodeDecodeError as exc:
        raise Hl7Error(f"message bytes are not valid {charset} (MSH-18): {exc.reason}",
                       hl7_code=102, location="MSH^1^18") from exc


def reply_codec(incoming: str, default: str = "utf-8") -> str:
    """The codec to encode the answer to ``incoming`` in: its MSH-18's, else ``default``.

    Why: an ACK goes back to the sender, who reads it in the set it declared; an ACK
    in UTF-8 to an ``8859/2`` sender turns any non-ASCII text in it (MSA-3, ERR-8)
    into mojibake. An unknown or unreadable MSH-18 (the message was refused for it)
    falls back to ``default``.
    """
    try:
        return codec_for(read_header(incoming).charset) or default
    except Hl7Error:
        return default


def reply_charset(incoming: str) -> str:
    """The MSH-18 an answer to ``incoming`` declares: the sender's, when we can use it."""
    try:
        charset = read_header(incoming).charset.split("~")[0].strip()
        return charset if codec_for(charset) else ""
    except Hl7Error:
        return ""


def encode_reply(reply: str, incoming: str, default: str = "utf-8") -> bytes:
    """``reply`` as bytes in :func:`reply_codec`; a character the set lacks becomes ``?``."""
    return reply.encode(reply_codec(incoming, default), errors="replace")


__all__ = ["HL7_CODECS", "codec_for", "decode_message", "reply_codec", "reply_charset",
           "encode_reply"]
