"""JSON for the control API: datasets, world dataclasses, errors and events, both ways.

Why a typed decoder instead of pickle or tagged objects: the control API is a network
service, so the receiver must never let the sender pick which class to build. Every
operation declares the Python type of each argument and of its result; :func:`decode`
builds exactly that type (nested dataclasses, dates, tuples, DICOM datasets) from plain
JSON and refuses anything else with a ConfigError. DICOM datasets travel as DICOM JSON
(PS3.18 F.2, pydicom's ``to_json_dict``/``from_json``), so a worklist item keeps its
VRs and sequences exactly.

Errors travel as ``{"type", "message", "context", "attributes"}`` and come back as the
same :class:`~simulators.errors.PacsimError` subclass with the same context and typed
attributes, so a step sees ``StatusError(status=0xC310)`` whether the modality ran
in-process or in a container.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import types
import typing
from pathlib import Path, PurePath
from typing import Any

from pydicom.dataset import Dataset

from simulators import errors
from simulators.errors import ConfigError, PacsimError
from simulators.events import Exchange

#: Error classes a reply may name; anything else comes back as the root PacsimError.
ERROR_TYPES: dict[str, type[PacsimError]] = {
    name: getattr(errors, name) for name in errors.__all__}


# ---------------------------------------------------------------------- encode
def encode(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses as dicts, datasets as DICOM JSON,
    dates as ISO text, tuples and sets as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Dataset):
        return value.to_json_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [encode(item) for item in items]
    if type(value).__name__ == "MultiValue":
        return [encode(item) for item in value]
    return str(value)  # pydicom PersonName, UID...: their text is their value


# ---------------------------------------------------------------------- decode
@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fail(where: str, hint: Any, value: Any) -> ConfigError:
    shown = repr(value)
    return ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got "
                       f"{shown[:60]}{'...' if len(shown) > 60 else ''}")


def decode(hint: Any, value: Any, where: str = "value") -> Any:
    """Build a ``hint`` from JSON data (the inverse of :func:`encode`); ConfigError
    naming the path (``order.patient.birth_date``) when the data does not fit."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return decode(arg, value, where)
            except (ConfigError, TypeError, ValueError):
                continue
        raise _fail(where, hint, value)
    if hint is type(None):
        if value is not None:
            raise _fail(where, hint, value)
        return None
    try:
        return _decode_concrete(hint, origin, args, value, where)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _decode_concrete(hint: Any, origin: Any, args: tuple[Any, ...], value: Any,
                     where: str) -> Any:
    if hint is Dataset:
        if not isinstance(value, dict):
            raise _fail(where, hint, value)
        return Dataset.from_json(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _fail(where, hint, value)
        fields = {f.name: f for f in dataclasses.fields(hint) if f.init}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} for "
                              f"{hint.__name__}")
        hints = _hints(hint)
        return hint(**{name: decode(hints[name], item, f"{where}.{name}")
                       for name, item in value.items()})
    if hint is bool:
        if not isinstance(value, bool):
            raise _fail(where, hint, value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, hint, value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, hint, value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _fail(where, hint, value)
        return value
    if hint is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if hint is dt.date:
        return dt.date.fromisoformat(value)
    if hint in (Path, PurePath):
        return Path(value)
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, list):
            raise _fail(where, hint, value)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(decode(a, v, f"{where}[{i}]")
                         for i, (a, v) in enumerate(zip(args, value)))
        item_hint = args[0] if args else Any
        items = [decode(item_hint, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else origin(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, hint, value)
        key_hint, value_hint = args or (str, Any)
        return {decode(key_hint, k, where): decode(value_hint, v, f"{where}.{k}")
                for k, v in value.items()}
    raise ConfigError(f"{where}: the control API cannot carry {hint!r}")


# ---------------------------------------------------------------------- errors and events
def encode_error(exc: BaseException) -> dict[str, Any]:
    """A PacsimError (or any exception, as the root type) as JSON."""
    if isinstance(exc, PacsimError):
        payload: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message,
                                   "context": encode(exc.context)}
        if exc.attributes:  # StatusError.status as the int, ScenarioError's file and line...
            payload["attributes"] = encode({name: getattr(exc, name) for name in exc.attributes})
        return payload
    return {"type": "PacsimError", "message": f"{type(exc).__name__}: {exc}", "context": {}}


def decode_error(payload: Any) -> PacsimError:
    """The exception an error reply describes (unknown types become PacsimError)."""
    if not isinstance(payload, dict):
        return PacsimError(f"malformed error reply: {str(payload)[:200]}")
    cls = ERROR_TYPES.get(str(payload.get("type")), PacsimError)
    message = str(payload.get("message", "remote error"))
    context = payload.get("context") if isinstance(payload.get("context"), dict) else {}
    given = payload.get("attributes") if isinstance(payload.get("attributes"), dict) else {}
    attributes = {k: v for k, v in given.items() if k in cls.attributes}
    try:
        return cls(message, **{k: v for k, v in context.items() if k not in attributes},
                   **attributes)
    except TypeError:  # a reply naming a class but not the attributes it requires
        return PacsimError(message, **context)


def decode_event(payload: dict[str, Any]) -> Exchange:
    return decode(Exchange, payload, "event")


__all__ = ["encode", "decode", "encode_error", "decode_error", "decode_event", "ERROR_TYPES"]
