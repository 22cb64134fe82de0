"""The one YAML reader that remembers where every key and item was written.

Why not ``yaml.safe_load``: a user who mistypes a field deserves
``site.yaml:12: steps[3].expect.ack: ...``, not a Python traceback. Scenarios, site
files, actor configs and ingestion rules all read YAML through here, so every one of
them can name the file and line of a mistake; duplicate keys, which ``safe_load``
silently lets the last one win, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

import yaml


class MarkedYamlError(ValueError):
    """A YAML document is malformed; ``file``, ``line`` and ``field`` say where."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.file, self.line, self.field = file, line, field


class ErrorFactory(Protocol):
    """What :func:`parse_marked_yaml` raises: any exception built from message and place."""

    def __call__(self, message: str, *, file: str | None = ..., line: int | None = ...,
                 field: str | None = ...) -> Exception: ...


@dataclass(frozen=True, slots=True)
class Mark:
    """Where something was written: file and 1-based line."""

    file: str
    line: int


class MarkedDict(dict):
    """A YAML mapping that remembers where it and each of its keys were written."""

    def __init__(self, *args: Any, mark: Mark, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}


class MarkedList(list):
    """A YAML sequence that remembers where it and each item were written."""

    def __init__(self, *args: Any, mark: Mark) -> None:
        super().__init__(*args)
        self.mark = mark
        self.item_marks: list[Mark] = []


def format_path(path: Iterable[str | int]) -> str:
    """``('steps', 2, 'expect', 'ack')`` -> ``steps[2].expect.ack``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --------------------------------------------------------------------------- parsing
class _MarkingLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences record file/line and refuse duplicate keys."""

    source_name = "<yaml>"
    error: ErrorFactory = MarkedYamlError


def _construct_mapping(loader: _MarkingLoader, node: yaml.MappingNode):  # type: ignore[no-untyped-def]
    data = MarkedDict(mark=Mark(loader.source_name, node.start_mark.line + 1))
    yield data
    loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key_mark = Mark(loader.source_name, key_node.start_mark.line + 1)
        try:
            duplicate = key in data
        except TypeError:
            raise loader.error("a mapping key must be a plain value, not a list or mapping",
                                file=key_mark.file, line=key_mark.line) from None
        if duplicate:
            raise loader.error(f"duplicate key {key!r} (first written on line "
                                f"{data.key_marks[key].line})", file=key_mark.file,
                                line=key_mark.line, field=str(key))
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_marks[key] = key_mark


def _construct_sequence(loader: _MarkingLoader, node: yaml.SequenceNode):  # type: ignore[no-untyped-def]
    data = MarkedList(mark=Mark(loader.source_name, node.start_mark.line + 1))
    yield data
    for item_node in node.value:
        data.append(loader.construct_object(item_node, deep=True))
        data.item_marks.append(Mark(loader.source_name, item_node.start_mark.line + 1))


_MarkingLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_MarkingLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def parse_marked_yaml(text: str, source: str, *, error: ErrorFactory = MarkedYamlError,
                      empty: str = "the file is empty",
                      not_mapping: str = "expected a mapping of key: value at the top level",
                      allow_empty: bool = False) -> MarkedDict:
    """Parse one YAML document that must be a mapping; errors carry file and line.

    ``error`` builds the exception (``error(message, file=..., line=..., field=...)``):
    scenarios raise ScenarioError, actor configs ConfigError, and this module stays free
    of pacsim's own types. With ``allow_empty`` an empty file is an empty mapping."""
    try:
        loader = _MarkingLoader(text)  # the reader checks for unprintable characters here
    except yaml.reader.ReaderError as exc:  # found by tests/property: escaped as a traceback
        line = text[:exc.position].count("\n") + 1 if isinstance(text, str) else None
        raise error(f"invalid YAML: character {exc.character!r} is not allowed "
                    "(a control character; is this a text file?)", file=source,
                    line=line) from exc
    loader.source_name = source
    loader.error = error
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "cannot parse"
        mark = exc.problem_mark or exc.context_mark
        if exc.context and exc.context_mark and (mark is None or "end of stream" in problem
                                                or "<stream end>" in problem):
            # an unterminated quote or bracket: where it *started* is what the author fixes
            problem, mark = f"{problem} ({exc.context} that starts here)", exc.context_mark
        raise error(f"invalid YAML: {problem}", file=source,
                            line=mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", file=source) from exc
    finally:
        loader.dispose()
    if data is None:
        if allow_empty:
            return MarkedDict(mark=Mark(source, 1))
        raise error(empty, file=source, line=1)
    if not isinstance(data, MarkedDict):
        raise error(not_mapping, file=source, line=1)
    return data



__all__ = ["Mark", "MarkedDict", "MarkedList", "MarkedYamlError", "format_path",
           "parse_marked_yaml"]
