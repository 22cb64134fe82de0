"""Small value types shared by scenario models: durations, ports, AE titles, $references.

They live apart from the models so step modules (added one file per step type) can
import them without pulling in the whole scenario model.
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

#: Names of actors and saved variables: what ``by:`` and ``$name`` refer to.
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")]

#: A runtime reference to a saved variable, e.g. ``$acc`` (what ``save:`` writes to).
VarRef = Annotated[str, Field(pattern=r"^\$[A-Za-z_][A-Za-z0-9_]*$")]

__all__ = ["Duration", "Port", "AeTitle", "Identifier", "VarRef", "parse_duration",
           "format_duration", "DURATION_PATTERN"]
