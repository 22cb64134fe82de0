"""JSON for the control API: datasets, world dataclasses and events, both ways.

Why a typed decoder instead of pickle or tagged objects: the control API is a network
service, so the receiver must never let the sender pick which class to build. Every
operation declares the Python type of each argument and of its result; :func:`decode`
builds exactly that type (nested dataclasses, dates, tuples, DICOM datasets) from plain
JSON and refuses anything else with a ConfigError. DICOM datasets travel as DICOM JSON
(PS3.18 F.2, pydicom's ``to_json_dict``/``from_json``), so a worklist item keeps its
VRs and sequences exactly.

Which types travel is declared once, with the actors' operations
(:mod:`simulators.actors.operations`, turned into wire types by
:mod:`simulators.runtime.operations`). Errors travel as pacsim's one HTTP error body
(:mod:`simulators.http.problem`) and come back as the same PacsimError subclass.
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

from simulators.errors import ConfigError
from simulators.events import Exchange


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


def check_carryable(hint: Any, where: str = "value") -> None:
    """ConfigError unless :func:`decode` can build ``hint``: checked when an actor's
    declared operations become the control API's table, so a declaration with a type
    the wire cannot carry fails at once instead of on the first remote call."""
    _check(hint, where, set())


def _check(hint: Any, where: str, seen: set[Any]) -> None:
    if hint is Any or hint is type(None) or hint in _SCALARS:
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset, dict):
        for arg in args:
            if arg is not Ellipsis:
                _check(arg, where, seen)
        return
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in seen:
            return
        seen.add(hint)
        for name, field_hint in _hints(hint).items():
            if name in {f.name for f in dataclasses.fields(hint) if f.init}:
                _check(field_hint, f"{where}.{name}", seen)
        return
    raise ConfigError(f"{where}: the control API cannot carry {hint!r}")


#: Types :func:`decode` builds directly.
_SCALARS = (bool, int, float, str, Dataset, dt.datetime, dt.date, Path, PurePath)


# ---------------------------------------------------------------------- events
def decode_event(payload: dict[str, Any]) -> Exchange:
    return decode(Exchange, payload, "event")


__all__ = ["encode", "decode", "decode_event", "check_carryable"]
