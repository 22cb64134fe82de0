"""General acknowledgments (ACK) with MSA and ERR, built on hl7apy.

An ACK must be producible for *any* incoming frame, including one hl7apy cannot
parse (that is exactly when a NACK matters), so the incoming header is read with
the forgiving :func:`simulators.hl7.er7.read_header` and only the outgoing ACK is
built with hl7apy. The ACK answers in the sender's HL7 version when hl7apy knows
it, because v2.3.1 receivers expect the old single-field ERR (ERR-1, ELD) while
v2.5+ receivers read ERR-2 (location), ERR-3 (table 0357 code) and ERR-4 (severity).
"""

from __future__ import annotations

from hl7apy import SUPPORTED_LIBRARIES
from hl7apy.core import Message

from simulators.hl7.charsets import reply_charset
from simulators.hl7.er7 import (
    ERROR_CODES, Header, Hl7Error, escape, hl7_timestamp, new_control_id, read_header,
    version_tuple,
)
from simulators.hl7.layout import DEFAULT_VERSION

ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})


def ack(incoming: str, code: str, *, error_code: int | None = None, error_text: str = "",
        error_location: str = "", sending_application: str | None = None,
        sending_facility: str | None = None) -> str:
    """Acknowledge ``incoming`` with ``code`` (AA, AE or AR) and, for errors, an ERR.

    ``error_code`` is from HL7 table 0357 (0, 100-103, 200-207); it defaults to 207
    for AE/AR. ``error_location`` is an ERL such as ``PID^1^3`` (``PID.3`` is
    accepted too). The ACK's sender is the incoming receiver unless overridden.
    Works on unparseable input: the MSA then echoes an empty control ID.
    """
    if code not in ACK_CODES:
        raise ValueError(f"unknown acknowledgment code {code!r}")
    try:
        header = read_header(incoming)
    except Hl7Error:
        header = Header()
    version = header.version if header.version in SUPPORTED_LIBRARIES else DEFAULT_VERSION
    message = Message("ACK", version=version)
    msh = message.msh
    msh.msh_3 = escape(sending_application if sending_application is not None
                       else header.receiving_application)
    msh.msh_4 = escape(sending_facility if sending_facility is not None
                       else header.receiving_facility)
    msh.msh_5 = header.sending_application
    msh.msh_6 = header.sending_facility
    msh.msh_7 = hl7_timestamp()
    msh.msh_9 = f"ACK^{header.trigger_event}^ACK" if header.trigger_event else "ACK"
    msh.msh_10 = new_control_id()
    msh.msh_11 = header.processing_id or "P"
    msh.msh_12 = version
    charset = reply_charset(incoming)
    if charset:  # answered in the sender's set (mllp encodes it so), and says so
        msh.msh_18 = charset
    message.msa.msa_1 = code
    message.msa.msa_2 = header.control_id
    failed = code not in {"AA", "CA"}
    if failed or error_code:
        hl7_code = error_code if error_code is not None else (207 if failed else 0)
        if error_text:
            message.msa.msa_3 = escape(error_text[:80])
        _add_err(message, version, hl7_code, error_text, _as_erl(error_location))
    return message.to_er7()


def _as_erl(location: str) -> str:
    """``PID.3`` -> ``PID^1^3``; an ERL given as such is kept."""
    if location and "^" not in location and "." in location:
        segment, _, field = location.partition(".")
        return f"{segment}^1^{field}"
    return location


def _add_err(message: Message, version: str, hl7_code: int, text: str, location: str) -> None:
    """ERR in the layout of ``version`` (ELD before v2.5, ERL/CWE/severity from v2.5)."""
    meaning = ERROR_CODES.get(hl7_code, "")
    err = message.add_segment("ERR")
    if version_tuple(version) < (2, 5):
        # ERR-1 (ELD): segment^sequence^field^code&text&HL70357
        where = location.split("^") + ["", "", ""]
        err.err_1 = f"{where[0]}^{where[1]}^{where[2]}^{hl7_code}&{meaning}&HL70357"
        return
    if location:
        err.err_2 = location
    err.err_3 = f"{hl7_code}^{meaning}^HL70357"
    err.err_4 = "E" if hl7_code else "I"
    if text:
        err.err_8 = escape(text)


__all__ = ["ack", "ACK_CODES", "DEFAULT_VERSION"]
