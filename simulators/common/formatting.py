"""How reports show values: bounded one-line text, and a JSON fallback.

Why shared: the scenario reports, the migration validation report and the fault matrix
write the same kinds of values (dates, dataclasses, UID sets, bytes); one rule for each
keeps their JSON files readable by the same tools.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any


def show(value: Any, limit: int = 200) -> str:
    """A value as a report shows it: strings bare, everything else compact and bounded."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain(value: Any, limit: int = 200) -> str:
    """A value in plain words for a person (expected vs seen), not a Python repr.

    ``None`` reads "nothing", booleans as the YAML an author wrote (true/false), mappings
    as ``key: value`` pairs, sequences as a comma list, strings bare."""
    text = _plain(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "(empty)"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_plain(item)}" for key, item in value.items()) or "(none)"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(_plain(item) for item in items) or "(none)"
    return str(value)


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback: dates as ISO text, dataclasses as dicts, others as text."""
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


__all__ = ["show", "plain", "jsonable"]
