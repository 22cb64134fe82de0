"""Load and validate a scenario; every problem becomes ``file:line: field: message``.

Pydantic reports locations as paths (``('steps', 2, 'wait', 'duration')``), with union
tags mixed in. This module walks such a path through the loaded data to find the real
key, looks its line up in the loader's :class:`LineMap`, and rewrites pydantic's generic
wording where a QA lead would be lost (unknown step type, unknown key). After the model
validates, cross-references pydantic cannot see (``by:`` naming a declared actor) are
checked the same way.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from simulators.errors import ScenarioError
from simulators.scenario import models
from simulators.scenario.loader import LineMap, LoadedDocument, format_path, load_document
from simulators.scenario.models import ACTOR_KINDS, Environment, Scenario
from simulators.scenario.registry import StepRegistry, default_registry, unknown_step_message

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """The part of a pydantic ``loc`` that exists in ``data`` (union tags dropped), plus a
    final missing key when the error is about a missing or unknown field."""
    path: list[str | int] = []
    current = data
    entered = True  # pydantic writes a union's tag right after the path of the tagged value
    for position, part in enumerate(loc):
        if entered and isinstance(current, Mapping) and part in _tags_of(current):
            entered = False
            continue
        entered = True
        if isinstance(current, Mapping) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif (position == len(loc) - 1 and isinstance(current, Mapping) and isinstance(part, str)
              and _FIELD_NAME.match(part) and part != "ExternalTarget"):
            path.append(part)  # a required key that is missing
        # anything else is a union member label ("wait", "literal['a']"): skip it
    return tuple(path)


def _tags_of(mapping: Mapping[str, Any]) -> set[str]:
    return {str(mapping[key]) for key in ("do", "kind") if key in mapping}


def _allowed_keys(path: tuple[str | int, ...], data: Any, registry: StepRegistry,
                  scenario_model: type[Scenario]) -> list[str]:
    """Keys allowed in the mapping at ``path`` when we know its model (for suggestions)."""

    parent: Any = data
    for part in path:
        parent = parent[part]
    if not isinstance(parent, Mapping):
        return []
    model: Any = None
    if not path:
        model = scenario_model
    elif path == ("environment",):
        model = models.Environment
    elif "do" in parent and isinstance(parent["do"], str) and parent["do"] in registry.names():
        model = registry.get(parent["do"])
    elif len(path) == 3 and path[:2] == ("environment", "actors"):
        model = {"ehr": models.EhrSpec, "ris": models.RisSpec, "modality": models.ModalitySpec,
                 "archive": models.ArchiveSpec, "viewer": models.ViewerSpec}.get(parent.get("kind"))
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _message(error: Mapping[str, Any], path: tuple[str | int, ...], data: Any,
             registry: StepRegistry, scenario_model: type[Scenario]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        if ctx.get("discriminator") == "'kind'":
            return f"unknown actor kind {ctx.get('tag')!r} (known: {', '.join(ACTOR_KINDS)})"
        return unknown_step_message(str(ctx.get("tag")), registry.names())
    if kind == "union_tag_not_found":
        if ctx.get("discriminator") == "'kind'":
            return f"an actor needs 'kind:' (one of: {', '.join(ACTOR_KINDS)})"
        return f"a step needs 'do:' (the step type; known: {', '.join(registry.names())})"
    if kind == "extra_forbidden" and path:
        allowed = _allowed_keys(path[:-1], data, registry, scenario_model)
        close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f" (allowed: {', '.join(allowed)})" if allowed else "")
        return f"unknown key {path[-1]!r}{hint}"
    if kind == "missing":
        return "this key is required"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[0].lower() + message[1:] if message else kind


def _errors_from(exc: ValidationError, document: LoadedDocument, registry: StepRegistry,
                 scenario_model: type[Scenario], prefix: tuple[str, ...] = ()
                 ) -> list[ScenarioError]:
    """``prefix``: where the validated part sits in the document (a site's environment)."""
    problems: list[ScenarioError] = []
    seen: set[tuple[str | int, ...]] = set()
    ordered: list[tuple[str | int, ...]] = []
    for error in exc.errors(include_url=False):
        path = _data_path((*prefix, *error["loc"]), document.data)
        if error["type"] == "union_tag_invalid":  # point at the offending "do:"/"kind:" line
            path = (*path, "kind" if (error.get("ctx") or {}).get("discriminator") == "'kind'"
                    else "do")
        if path in seen:  # a union reports once per member: keep the first
            continue
        seen.add(path)
        ordered.append(path)
        message = _message(error, path, document.data, registry, scenario_model)
        problems.append(document.lines.error(message, path))
    # a union member that failed near the top is noise when a deeper error says why
    paths = [problem_path for problem_path in seen]
    return [problem for problem, path in zip(problems, ordered)
            if not any(other[:len(path)] == path and len(other) > len(path) for other in paths)]


def _reference_errors(scenario: Scenario, lines: LineMap) -> list[ScenarioError]:
    """``by:`` must name a declared actor; checked after the model is valid."""
    actors = scenario.environment.actors
    problems = []
    for path, step in scenario.iter_steps():
        if step.by is not None and step.by not in actors:
            known = ", ".join(sorted(actors)) or "no actors are declared"
            close = difflib.get_close_matches(step.by, list(actors), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(lines.error(f"no actor named {step.by!r} (actors: {known}){hint}",
                                        (*path, "by")))
    return problems


#: A whole-string ``$name`` reference (``$acc``, ``$maria.id``), as the runner reads it.
_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)$")
#: ``$patientN`` names a world patient by number (site.patient_resolver).
_PATIENT_NUMBER = re.compile(r"^patient\d{1,6}$")


def _variable_errors(scenario: Scenario, document: LoadedDocument) -> list[ScenarioError]:
    """``$name`` references no step saves, no ``vars:`` defines and no patient of the
    site is called: at run time they fail as ``:?:`` with no line, so say it here with
    the file, line and a did-you-mean."""
    saved: set[str] = set()
    references: list[tuple[str, tuple[Any, ...]]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "save" and isinstance(item, dict):
                    saved.update(str(v).lstrip("$") for v in item.values())
                    continue
                walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, index))
        elif isinstance(value, str) and not value.startswith("$$"):
            match = _REFERENCE.match(value)
            if match:
                references.append((match.group(1), path))

    for section in ("steps", "finally"):
        walk(document.data.get(section) or [], (section,))
    known = saved | {str(k) for k in scenario.vars} | set(scenario.environment.patients)
    problems = []
    for name, path in references:
        if name in known or _PATIENT_NUMBER.match(name):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean ${close[0]}?" if close else ""
        problems.append(document.lines.error(
            f"unknown variable ${name}: no step saves it, vars: does not define it and the "
            f"site has no such patient{hint}", path))
    return problems


def check_document(document: LoadedDocument, registry: StepRegistry | None = None
                   ) -> tuple[Scenario | None, list[ScenarioError]]:
    """Validate loaded data; returns the scenario (or None) and every problem, by line."""
    registry = registry or default_registry
    model = registry.scenario_model()
    try:
        scenario = model.model_validate(document.data)
    except ValidationError as exc:
        problems = _errors_from(exc, document, registry, model)
        return None, sorted(problems, key=lambda p: (p.file or "", p.line or 0))
    scenario._source_file = document.file
    problems = _reference_errors(scenario, document.lines) + _variable_errors(scenario, document)
    return (None if problems else scenario), problems


def load_environment(path: str | Path, *, target: str | Mapping[str, Any] | None = None,
                     supports: Mapping[str, bool] | None = None) -> Environment:
    """The ``environment:`` of a site file (what ``pacsim sandbox up`` reads), validated
    like a scenario's, every problem as ``file:line: field: message``. ``target``
    overrides the site's target; ``supports`` adds declarations over the file's."""
    document = load_document(path)
    environment = document.data.get("environment")
    if not isinstance(environment, dict):
        raise document.lines.error("a site file needs an 'environment:' mapping", ())
    if target is not None:
        environment["target"] = target
    if supports:
        written = environment.get("supports")
        environment["supports"] = {**(written if isinstance(written, dict) else {}),
                                   **supports}
    try:
        return Environment.model_validate(environment)
    except ValidationError as exc:
        registry = default_registry
        problems = _errors_from(exc, document, registry, registry.scenario_model(),
                                prefix=("environment",))
        first = sorted(problems, key=lambda p: p.line or 0)[0]
        raise ScenarioError(first.message, file=first.file, line=first.line, field=first.field,
                            problems=problems) from None


def check_scenario(path: str | Path, *, variables: Mapping[str, Any] | None = None,
                   registry: StepRegistry | None = None, text: str | None = None
                   ) -> list[ScenarioError]:
    """Every problem in a scenario file (empty when valid): what ``pacsim validate`` prints."""
    try:
        document = load_document(path, variables=variables, text=text)
    except ScenarioError as exc:
        return [exc]
    return check_document(document, registry)[1]


def load_scenario(path: str | Path, *, variables: Mapping[str, Any] | None = None,
                  registry: StepRegistry | None = None, text: str | None = None) -> Scenario:
    """Load, merge and validate a scenario file; raises the first ScenarioError.

    The raised error's ``context["problems"]`` lists every problem found, so a caller
    can print them all. ``text`` parses that text as if it were the file at ``path``.
    """
    document = load_document(path, variables=variables, text=text)
    scenario, problems = check_document(document, registry)
    if problems or scenario is None:
        first = problems[0]
        raise ScenarioError(first.message, file=first.file, line=first.line, field=first.field,
                            problems=problems)
    return scenario


__all__ = ["load_scenario", "load_environment", "check_scenario", "check_document",
           "format_path"]
