"""Is this value valid for its VR, and do these bytes match the declared character set?

Why on raw bytes: a legacy archive's worst values are exactly the ones pydicom
"helpfully" converts (an IS of ``'12a'`` warns and becomes something else, Latin-1
bytes under ``ISO_IR 192`` decode with replacement characters). The validator reads
each element's bytes as stored, so what it reports is what the target will receive.
Rules are PS3.5 6.2 (value representations) and PS3.5 6.1 (character repertoires).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: VRs whose values this module validates (the ones legacy systems most often break).
CHECKED_VRS = frozenset({"DA", "TM", "DT", "UI", "IS", "DS", "AS"})
#: VRs whose bytes are subject to Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^([01]\d|2[0-3])([0-5]\d)?([0-5]\d|60)?(\.\d{1,6})?$")
_DT = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")
_UI = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*))*$")
_IS = re.compile(r"^[+-]?\d+$")
_DS = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_AS = re.compile(r"^\d{3}[DWMY]$")
_MAX_LEN = {"DA": 8, "TM": 14, "DT": 26, "UI": 64, "IS": 12, "DS": 16, "AS": 4}


def _valid_date(text: str) -> bool:
    match = _DA.match(text)
    if not match:
        return False
    try:
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def _valid_is(text: str) -> bool:
    return bool(_IS.match(text)) and -(2**31) <= int(text) <= 2**31 - 1


_VALIDATORS = {
    "DA": _valid_date,
    "TM": lambda text: bool(_TM.match(text)),
    "DT": lambda text: bool(_DT.match(text)),
    "UI": lambda text: bool(_UI.match(text)),
    "IS": _valid_is,
    "DS": lambda text: bool(_DS.match(text)),
    "AS": lambda text: bool(_AS.match(text)),
}


def invalid_value(vr: str, raw: bytes | str) -> str | None:
    """The first invalid component of a (possibly multi-valued) value, or None if valid.

    Padding is stripped as PS3.5 allows (trailing NUL for UI, spaces elsewhere); an
    empty value is valid (Type 2). Unchecked VRs always pass.
    """
    check = _VALIDATORS.get(vr)
    if check is None:
        return None
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\x00 ") if vr == "UI" else text.strip(" ")
    if not text:
        return None
    for part in text.split("\\"):
        part = part.strip(" \x00") if vr != "UI" else part
        if not part and vr != "UI":
            continue  # an empty component of a multi-value is allowed
        if len(part) > _MAX_LEN[vr] or not check(part):
            return part
    return None


def charset_mismatch(terms: tuple[str, ...], raw: bytes) -> str | None:
    """Why ``raw`` does not fit the declared Specific Character Set, or None.

    Checked for single-byte or UTF-8 declarations only (ISO 2022 code extensions are
    judged by the term check): non-ASCII bytes under the default repertoire, bytes that
    are not UTF-8 under ``ISO_IR 192``, and UTF-8 multi-byte sequences under
    ``ISO_IR 100`` (Latin-1 text almost never forms valid UTF-8, so this is mojibake).
    """
    if raw.isascii() or len(terms) > 1:
        return None
    term = terms[0] if terms else ""
    if term in ("", "ISO_IR 6"):
        return "non-ASCII bytes under the default character repertoire"
    if term == "ISO_IR 192":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes are not UTF-8 although ISO_IR 192 is declared"
        return None
    if term == "ISO_IR 100":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "UTF-8 bytes declared as ISO_IR 100 (Latin-1)"
    return None


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """pydicom warns and logs about exactly the invalid values and charsets injected
    here, once per element; that is the point, not news."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


__all__ = ["CHECKED_VRS", "TEXT_VRS", "invalid_value", "charset_mismatch", "quiet_pydicom"]
