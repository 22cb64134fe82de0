"""Actor settings from layers: dataclass defaults < YAML file < PACSIM_* env < CLI flags.

Every actor takes a frozen-or-plain config dataclass. This module turns a YAML file
and overrides into one, converting types the dataclass declares (tuples, frozensets,
paths, ints, and value types with a ``from_config`` classmethod that parse their own
spellings, such as a peer's ``AE@HOST:PORT``) and refusing unknown keys with the file
and line, because a typo in a site's config that is silently ignored is how a test
environment drifts from the site it mirrors.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from simulators.common.fields import ae_title_problem
from simulators.common.marked_yaml import MarkedDict, parse_marked_yaml
from simulators.errors import ConfigError

C = TypeVar("C")


def read_yaml_mapping(path: Path) -> MarkedDict:
    """Load a YAML file that must hold a mapping; keys remember their lines
    (``data.key_marks[key].line``) so an unknown setting can be named with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=str(path)) from exc
    return parse_marked_yaml(text, str(path), error=ConfigError, allow_empty=True,
                             not_mapping="config file must be a mapping of setting: value")


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML/env value to the type a dataclass field declares."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, where)
            except (ConfigError, TypeError, ValueError):
                continue
        raise ConfigError(f"{where}: cannot use {value!r} as {hint}")
    if isinstance(hint, type) and callable(getattr(hint, "from_config", None)):
        # A value type that parses its own spellings (AeAddress: ``AE@HOST:PORT``...);
        # this module sits below the types it converts, so it asks them by name.
        return hint.from_config(value, where)
    try:
        if hint is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            return bool(value)
        if hint in (int, float, str):
            return hint(value)
        if hint is Path:
            return Path(value)
        if origin in (frozenset, set):
            items = value.split(",") if isinstance(value, str) else list(value or [])
            return frozenset(str(item).strip() for item in items if str(item).strip())
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(item, args[0], where) for item in items)
            if len(items) != len(args):
                raise ValueError(f"expected {len(args)} items")
            return tuple(_convert(item, arg, where) for item, arg in zip(items, args))
        if origin is dict:
            if not isinstance(value, Mapping):
                raise TypeError("expected a mapping")
            key_type, value_type = args or (str, Any)
            return {_convert(k, key_type, where): _convert(v, value_type, where)
                    for k, v in value.items()}
        if origin in (list,):
            return [_convert(item, args[0], where) for item in value] if args else list(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot use {value!r} as {getattr(hint, '__name__', hint)}"
                          f" ({exc})") from exc
    return value


def build_config(cls: type[C], *, file: Path | None = None, env_prefix: str = "PACSIM_",
                 overrides: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> C:
    """Build ``cls`` from defaults, then ``file``, then ``env_prefix``+FIELD env, then overrides."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    if file is not None:
        data = read_yaml_mapping(file)
        for key, value in data.items():
            mark = data.key_marks.get(key)
            line = mark.line if mark else None
            where = f"{file}:{line or '?'}: {key}"
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise ConfigError(f"{where}: unknown setting (known: {known})")
            values[key] = _convert(value, hints[key], where)
    env = os.environ if environ is None else environ
    for name in fields:
        raw = env.get(f"{env_prefix}{name.upper()}")
        if raw is not None:
            values[name] = _convert(raw, hints[name], f"${env_prefix}{name.upper()}")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r} for {cls.__name__}")
        values[key] = _convert(value, hints[key], f"--{key.replace('_', '-')}")
    problem = ae_title_problem(values["ae_title"]) if "ae_title" in values else None
    if problem:  # every actor's own AE title, from file, environment or --ae-title
        raise ConfigError(problem, field="ae_title")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"incomplete settings for {cls.__name__}: {exc}") from exc


__all__ = ["build_config", "read_yaml_mapping"]
