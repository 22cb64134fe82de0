"""Small value types as users write them: durations, rates, percentages, ports, AE titles.

Why here, at the bottom: site files, scenarios, load profiles, go-live probe reports
and CLI options all read ``30s``, ``2/h`` and ``0.5%`` the same way, and one parser
gives one answer to the same typo wherever it is made.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"


def parse_duration(value: Any) -> float:
    """``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a number of seconds -> seconds.

    Scenario authors write durations the way they say them; a bare number means
    seconds. Negative or malformed values are refused rather than guessed.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 500ms, 2m")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write e.g. 30s, 500ms, 2m or 1h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as the short text a report shows (``12ms``, ``3.40s``, ``2m05s``)."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


_DURATION_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": DURATION_PATTERN}],
                    "description": "seconds, or text like 30s, 500ms, 2m, 1h"}

#: Seconds, written as 30s / 500ms / 2m / 1h or a plain number.
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]

#: A TCP port; 0 asks the system for a free one (never hard-code ports in tests).
Port = Annotated[int, Field(ge=0, le=65535)]

#: A DICOM AE title: 1-16 characters, no backslash or control characters (PS3.5 6.2 AE VR).
AeTitle = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[^\\\x00-\x1f]*[^\\\s][^\\\x00-\x1f]*$")]


def ae_title_problem(value: object) -> str | None:
    """Why ``value`` is not a PS3.5 AE title (1-16 characters, not only spaces, no
    backslash, no control characters), or None when it is one. A backslash is the VR
    value separator: a peer reading ``A\\B`` sees two values."""
    if not isinstance(value, str) or not value.strip() or len(value) > 16:
        return f"AE title must be 1 to 16 characters, got {value!r}"
    if "\\" in value:
        return f"AE title must not contain a backslash (PS3.5 AE VR), got {value!r}"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return f"AE title must not contain control characters (PS3.5 AE VR), got {value!r}"
    return None


#: Names of actors and saved variables: what ``by:`` and ``$name`` refer to.
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")]

#: A runtime reference to a saved variable, e.g. ``$acc`` (what ``save:`` writes to).
VarRef = Annotated[str, Field(pattern=r"^\$[A-Za-z_][A-Za-z0-9_]*$")]

#: Rates as load profiles write them (per second, per minute, per hour).
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h|min|hour|second)\s*$")
_RATE_UNITS = {"s": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_rate(value: Any) -> float:
    """``"2/h"``, ``"30/m"``, ``"1.5/s"`` or a number (per second) -> events per second."""
    if isinstance(value, bool):
        raise ValueError("a rate is text like 2/h, 30/m or 1/s")
    if isinstance(value, (int, float)):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE.match(value)):
        rate = float(match.group(1)) / _RATE_UNITS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a rate: write e.g. 2/h, 30/m or 1/s")
    if rate <= 0:
        raise ValueError("a rate must be positive")
    return rate


def parse_fraction(value: Any) -> float:
    """``"1%"`` -> 0.01; a bare number is a fraction (0.01) - never a percent."""
    if isinstance(value, bool):
        raise ValueError("write a percentage like 1% or a fraction like 0.01")
    if isinstance(value, str) and (match := _PERCENT.match(value)):
        fraction = float(match.group(1)) / 100
    elif isinstance(value, (int, float)):
        fraction = float(value)
    elif isinstance(value, str) and _NUMBER.match(value):
        fraction = float(value)  # "0.005" on a command line is the fraction, as 0.005 is
    else:
        raise ValueError(f"{value!r} is not a percentage: write e.g. 0%, 0.5% or 0.005")
    if not 0 <= fraction <= 1:
        raise ValueError("a percentage must be between 0% and 100%")
    return fraction


Rate = Annotated[float, BeforeValidator(parse_rate), WithJsonSchema(
    {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
               {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*/\s*(s|m|h|min|hour|second)\s*$"}],
     "description": "per second, or text like 2/h, 30/m, 1/s"})]
Fraction = Annotated[float, BeforeValidator(parse_fraction), WithJsonSchema(
    {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
               {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"}],
     "description": "a percentage like 1%, or a fraction like 0.01"})]

__all__ = ["ae_title_problem", "Rate", "Fraction", "parse_rate", "parse_fraction", "Duration", "Port", "AeTitle", "Identifier", "VarRef", "parse_duration",
           "format_duration", "DURATION_PATTERN"]
