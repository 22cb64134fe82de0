"""Read a scenario file into plain data plus the file and line of every key and item.

Why not ``yaml.safe_load``: a QA lead who mistypes a field deserves
``site.yaml:12: steps[3].expect.ack: ...``, not a Python traceback, and the mistake may
sit in an *included* file. So every mapping key and sequence item remembers where it was
written (file and line), and that memory survives includes, ``${vars}`` and ``defaults``.

The pipeline, in order: parse with marks -> merge ``include:`` files (deep merge of
mappings; included files first, the including file wins; lists are replaced, not
concatenated) -> substitute ``${name}`` from ``vars:`` -> apply ``defaults:`` -> flatten to
plain dicts/lists plus a :class:`LineMap`. Runtime references such as ``$jane`` or ``$acc``
(a single ``$`` without braces) are left untouched for the runner.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from simulators.common.marked_yaml import Mark, MarkedDict, MarkedList, format_path, parse_marked_yaml
from simulators.errors import ScenarioError

#: How deep includes may nest before we call it a cycle-in-disguise.
MAX_INCLUDE_DEPTH = 16
_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


Path_ = tuple[str | int, ...]


@dataclass
class LineMap:
    """The file and line of every key and item of a loaded scenario, by data path."""

    marks: dict[Path_, Mark] = field(default_factory=dict)

    def mark_of(self, path: Path_) -> Mark | None:
        """Mark of ``path`` or of its nearest recorded ancestor."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:end]))
            if mark is not None:
                return mark
        return None

    def error(self, message: str, path: Path_, **context: Any) -> ScenarioError:
        """A ScenarioError placed at ``path`` (``file:line: field: message``)."""
        mark = self.mark_of(path)
        return ScenarioError(message, file=mark.file if mark else None,
                             line=mark.line if mark else None,
                             field=format_path(path) or None, **context)


@dataclass
class LoadedDocument:
    """Plain scenario data after includes, vars and defaults, plus its line map."""

    data: dict[str, Any]
    lines: LineMap
    file: str
    included: list[str] = field(default_factory=list)


def parse_yaml(text: str, source: str) -> MarkedDict:
    """Parse one scenario or site document; errors are ScenarioErrors with file and line."""
    return parse_marked_yaml(text, source, error=ScenarioError,
                             empty="the file is empty; a scenario starts with 'pacsim: 1'",
                             not_mapping="a scenario must be a mapping of key: value at the "
                                         "top level")


def _read(path: Path, *, included_from: Mark | None = None, as_written: str = "") -> MarkedDict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if included_from is not None:
            raise ScenarioError(f"included file not found: {as_written} (looked for {path})",
                                file=included_from.file,
                                line=included_from.line, field="include") from None
        raise ScenarioError("scenario file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        where = included_from or Mark(str(path), 1)
        raise ScenarioError(f"cannot read {path}: {exc}", file=where.file, line=where.line) from exc
    return parse_yaml(text, str(path))


# --------------------------------------------------------------------------- includes
def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` onto ``base``: mappings merge key by key, anything else replaces."""
    if not (isinstance(base, MarkedDict) and isinstance(override, MarkedDict)):
        return override
    merged = MarkedDict(base, mark=override.mark)
    merged.key_marks.update(base.key_marks)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if key in merged else value
        merged.key_marks[key] = override.key_marks[key]
    return merged


def _include_entries(doc: MarkedDict) -> list[tuple[str, Mark]]:
    raw = doc.get("include")
    where = doc.key_marks.get("include", doc.mark)
    if raw is None:
        return []
    if isinstance(raw, str):
        return [(raw, where)]
    if isinstance(raw, MarkedList) and all(isinstance(item, str) for item in raw):
        return list(zip(raw, raw.item_marks))
    raise ScenarioError("include must be a file path or a list of file paths", file=where.file,
                        line=where.line, field="include")


def _with_includes(path: Path, doc: MarkedDict, chain: tuple[Path, ...],
                   included: list[str]) -> MarkedDict:
    """``doc`` merged over everything it includes (recursively), without the include key."""
    if len(chain) > MAX_INCLUDE_DEPTH:
        raise ScenarioError(f"includes nest deeper than {MAX_INCLUDE_DEPTH} files",
                            file=str(path), line=doc.mark.line, field="include")
    merged: Any = None
    for relative, mark in _include_entries(doc):
        target = (path.parent / relative).resolve()
        if target in chain:
            raise ScenarioError(f"include cycle: {relative} includes itself again",
                                file=mark.file, line=mark.line, field="include")
        child = _with_includes(target, _read(target, included_from=mark, as_written=relative),
                               (*chain, target),
                               included)
        included.append(str(target))
        merged = child if merged is None else deep_merge(merged, child)
    own = MarkedDict(((k, v) for k, v in doc.items() if k != "include"), mark=doc.mark)
    own.key_marks.update({k: m for k, m in doc.key_marks.items() if k != "include"})
    return own if merged is None else deep_merge(merged, own)


# --------------------------------------------------------------------------- variables
def _referenced(value: Any) -> set[str]:
    """Every ``${name}`` written anywhere in ``value``."""
    if isinstance(value, str):
        return {m.group(1).strip() for m in _VAR.finditer(value) if m.group(1) is not None}
    if isinstance(value, dict):
        return set().union(*(_referenced(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_referenced(v) for v in value)) if value else set()
    return set()


def _did_you_mean(name: str, known: Iterable[Any]) -> str:
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Vars:
    """``vars:`` values, resolved lazily so one variable may use another (cycles refused)."""

    def __init__(self, raw: Mapping[str, Any], marks: Mapping[str, Mark]) -> None:
        self._raw, self._marks = raw, marks
        self._done: dict[str, Any] = {}
        self._busy: set[str] = set()

    def get(self, name: str, mark: Mark, field_path: Path_) -> Any:
        if name in self._done:
            return self._done[name]
        if name not in self._raw:
            known = ", ".join(sorted(self._raw)) or "none defined"
            raise ScenarioError(f"unknown variable ${{{name}}}{_did_you_mean(name, self._raw)} "
                                f"(vars: {known})", file=mark.file,
                                line=mark.line, field=format_path(field_path) or None)
        if name in self._busy:
            raise ScenarioError(f"variable ${{{name}}} refers to itself", file=mark.file,
                                line=mark.line, field=f"vars.{name}")
        self._busy.add(name)
        value = _substitute(self._raw[name], self, self._marks.get(name, mark), ("vars", name))
        self._busy.discard(name)
        self._done[name] = value
        return value


def _substitute_string(text: str, variables: _Vars, mark: Mark, path: Path_) -> Any:
    whole = _VAR.fullmatch(text)
    if whole and whole.group(1) is not None:  # "${n}" alone keeps the value's own type
        return variables.get(_checked_name(whole.group(1), mark, path), mark, path)

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "${"  # "$${" is the escape for a literal "${"
        value = variables.get(_checked_name(match.group(1), mark, path), mark, path)
        return str(value)

    return _VAR.sub(replace, text)


def _checked_name(name: str, mark: Mark, path: Path_) -> str:
    name = name.strip()
    if not _VAR_NAME.match(name):
        raise ScenarioError(f"bad variable reference ${{{name}}}: use letters, digits and _",
                            file=mark.file, line=mark.line, field=format_path(path) or None)
    return name


def _substitute(value: Any, variables: _Vars, mark: Mark, path: Path_) -> Any:
    if isinstance(value, str):
        return _substitute_string(value, variables, mark, path)
    if isinstance(value, MarkedDict):
        out = MarkedDict(mark=value.mark)
        for key, item in value.items():
            key_mark = value.key_marks.get(key, value.mark)
            out[key] = _substitute(item, variables, key_mark, (*path, key))
            out.key_marks[key] = key_mark
        return out
    if isinstance(value, MarkedList):
        out_list = MarkedList(mark=value.mark)
        for index, (item, item_mark) in enumerate(zip(value, value.item_marks)):
            out_list.append(_substitute(item, variables, item_mark, (*path, index)))
            out_list.item_marks.append(item_mark)
        return out_list
    return value


def _apply_vars(doc: MarkedDict, overrides: Mapping[str, Any]) -> MarkedDict:
    raw_vars = doc.get("vars") or MarkedDict(mark=doc.mark)
    if not isinstance(raw_vars, dict):
        where = doc.key_marks.get("vars", doc.mark)
        raise ScenarioError("vars must be a mapping of name: value", file=where.file,
                            line=where.line, field="vars")
    # A --var may set a declared variable or one the file only uses (a required one,
    # like ${closed_port} with no default); any other name is a typo.
    usable = {str(name) for name in raw_vars} | (_referenced(doc) if overrides else set())
    unknown = [name for name in overrides if name not in usable]
    if unknown:  # a typo in --var would otherwise be ignored and the default used
        where = doc.key_marks.get("vars", doc.mark)
        known = ", ".join(sorted(usable)) or "none defined"
        raise ScenarioError(f"no variable {unknown[0]!r} in this scenario"
                            f"{_did_you_mean(unknown[0], usable)} (vars: {known})",
                            file=where.file, line=where.line, field="--var")
    merged_vars = dict(raw_vars)
    merged_vars.update(overrides)
    variables = _Vars(merged_vars, getattr(raw_vars, "key_marks", {}))
    resolved_vars = MarkedDict(mark=raw_vars.mark)
    for name in merged_vars:
        mark = raw_vars.key_marks.get(name, raw_vars.mark)
        resolved_vars[name] = variables.get(str(name), mark, ("vars", name))
        resolved_vars.key_marks[name] = mark
    out = MarkedDict(mark=doc.mark)
    for key, value in doc.items():
        key_mark = doc.key_marks[key]
        out[key] = resolved_vars if key == "vars" else _substitute(value, variables, key_mark,
                                                                   (key,))
        out.key_marks[key] = key_mark
    if "vars" not in out and overrides:
        out["vars"], out.key_marks["vars"] = resolved_vars, doc.mark
    return out


# --------------------------------------------------------------------------- defaults
def _apply_step_defaults(steps: Any, defaults: MarkedDict) -> None:
    if not isinstance(steps, list):
        return
    for step in steps:
        # Only mappings with ``do:`` are steps; other lists of mappings inside a step
        # (``except: [{accession: ...}]``) are data and must not grow a ``timeout:``.
        if not isinstance(step, MarkedDict) or "do" not in step:
            continue
        for key, value in defaults.items():
            if key not in step:
                step[key] = copy.deepcopy(value)
                step.key_marks[key] = defaults.key_marks[key]
        for nested in step.values():  # steps inside steps (parallel...) get them too
            if isinstance(nested, MarkedList) and all(isinstance(i, dict) for i in nested):
                _apply_step_defaults(nested, defaults)


def _apply_defaults(doc: MarkedDict) -> None:
    """Fill ``defaults.step`` into every step and ``defaults.actors.KIND`` into actors."""
    defaults = doc.get("defaults")
    if not isinstance(defaults, MarkedDict):
        return  # absent, or wrong type: the model reports it with its line
    step_defaults = defaults.get("step")
    if isinstance(step_defaults, MarkedDict):
        for section in ("steps", "finally"):
            _apply_step_defaults(doc.get(section), step_defaults)
    actor_defaults = defaults.get("actors")
    environment = doc.get("environment")
    actors = environment.get("actors") if isinstance(environment, MarkedDict) else None
    if isinstance(actor_defaults, MarkedDict) and isinstance(actors, MarkedDict):
        for name, spec in list(actors.items()):
            if isinstance(spec, MarkedDict):
                kind_defaults = actor_defaults.get(spec.get("kind"))
                if isinstance(kind_defaults, MarkedDict):
                    actors[name] = deep_merge(copy.deepcopy(kind_defaults), spec)


# --------------------------------------------------------------------------- flattening
def _flatten(value: Any, path: Path_, lines: LineMap) -> Any:
    if isinstance(value, MarkedDict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            lines.marks[(*path, key)] = value.key_marks.get(key, value.mark)
            out[key] = _flatten(item, (*path, key), lines)
        return out
    if isinstance(value, MarkedList):
        items = []
        for index, (item, mark) in enumerate(zip(value, value.item_marks)):
            lines.marks[(*path, index)] = mark
            items.append(_flatten(item, (*path, index), lines))
        return items
    return value


def load_document(path: str | Path, *, variables: Mapping[str, Any] | None = None,
                  text: str | None = None) -> LoadedDocument:
    """Load a scenario file (or ``text`` as if it were at ``path``) into a LoadedDocument.

    ``variables`` override ``vars:`` from the file (the CLI's ``--var name=value``).
    """
    source = Path(path)
    doc = parse_yaml(text, str(source)) if text is not None else _read(source)
    included: list[str] = []
    doc = _with_includes(source.resolve(), doc, (source.resolve(),), included)
    doc = _apply_vars(doc, dict(variables or {}))
    _apply_defaults(doc)
    lines = LineMap()
    lines.marks[()] = doc.mark
    data = _flatten(doc, (), lines)
    return LoadedDocument(data=data, lines=lines, file=str(source), included=included)


__all__ = ["Mark", "LineMap", "LoadedDocument", "load_document", "parse_yaml", "deep_merge",
           "format_path"]
