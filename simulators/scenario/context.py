"""What a step executor gets (StepContext) and gives back (StepOutcome).

Executors are plain functions of (step, ctx). The context is their only door to the
world: actors by name, saved variables and ``$references``, an interruptible sleep that
honours timeouts, and a way to run nested steps. That keeps step types small and lets
the runner enforce time limits and attribute events without each step knowing how.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from simulators.errors import ScenarioError
from simulators.events import EventBus
from simulators.site.capabilities import Capabilities, Route, declared

if TYPE_CHECKING:  # pragma: no cover - typing only
    from simulators.scenario.models import Environment, Scenario, StepBase
    from simulators.scenario.results import ExpectationResult, StepResult

_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)$")
_INLINE_REFERENCE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)")

#: Looks up a ``$name`` no step saved (e.g. ``$jane``, a patient of the seeded world).
#: Raises KeyError when it does not know the name either.
FallbackResolver = Callable[[str], Any]


@dataclass
class StepOutcome:
    """What one execution of a step observed.

    ``observed`` is compared with ``expect`` and read by ``save``. ``status`` overrides the
    verdict when the step knows better (``unsupported``; a parallel step's children).
    ``expectations`` is for steps that evaluate themselves instead of the generic rules.
    """

    observed: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    status: str | None = None
    notes: list[str] = field(default_factory=list)
    children: list[StepResult] = field(default_factory=list)
    expectations: list[ExpectationResult] | None = None
    #: Files the step wrote (reports), shown as links in report.html.
    artefacts: list[str] = field(default_factory=list)


def lookup_path(value: Any, dotted: str) -> Any:
    """Follow ``a.b.0.c`` through mappings, sequences and attributes; KeyError if absent."""
    for part in (p for p in dotted.split(".") if p):
        if isinstance(value, Mapping):
            if part not in value:
                raise KeyError(part)
            value = value[part]
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit():
            index = int(part)
            if index >= len(value):
                raise KeyError(part)
            value = value[index]
        elif hasattr(value, part):
            value = getattr(value, part)
        else:
            raise KeyError(part)
    return value


class Variables:
    """Saved ``$variables``, shared by parallel steps, so guarded by a lock."""

    def __init__(self, initial: Mapping[str, Any] | None = None,
                 fallback: FallbackResolver | None = None) -> None:
        self._values: dict[str, Any] = dict(initial or {})
        self._fallback = fallback
        self._lock = threading.Lock()

    def set(self, name: str, value: Any) -> None:
        with self._lock:
            self._values[name.lstrip("$")] = value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def get(self, name: str) -> Any:
        """Value of ``name`` (saved first, then the fallback); ScenarioError when unknown."""
        name = name.lstrip("$")
        with self._lock:
            if name in self._values:
                return self._values[name]
            known = ", ".join(sorted(self._values)) or "none yet"
        if self._fallback is not None:
            try:
                return self._fallback(name)
            except KeyError:
                pass
        raise ScenarioError(f"unknown variable ${name} (saved so far: {known})", field=f"${name}")

    def resolve(self, value: Any) -> Any:
        """Replace whole-string references (``$acc``, ``$jane.id``) anywhere inside ``value``.

        ``$$text`` stands for a literal ``$text``. Strings that merely contain a ``$`` are
        left alone: only a reference that is the entire value is replaced, keeping its type.
        """
        if isinstance(value, str):
            if value.startswith("$$"):
                return value[1:]
            match = _REFERENCE.match(value)
            if not match:
                return value
            base = self.get(match.group(1))
            try:
                return lookup_path(base, match.group(2))
            except KeyError as exc:
                raise ScenarioError(f"${match.group(1)} has no {exc.args[0]!r}",
                                    field=value) from None
        if isinstance(value, Mapping):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.resolve(item) for item in value]
        return value

    def interpolate(self, text: str) -> str:
        """Replace ``$name`` tokens inside free text (notes); unknown ones stay as written."""
        def replace(match: re.Match[str]) -> str:
            try:
                return str(self.resolve("$" + match.group(1)))
            except ScenarioError:
                return match.group(0)
        return _INLINE_REFERENCE.sub(replace, text)


class StepContext:
    """Everything an executor may use; one per step execution, sharing run-wide state."""

    def __init__(self, *, scenario: Scenario, actors: Mapping[str, Any], variables: Variables,
                 events: EventBus, run_children: Callable[[Sequence[StepBase], StepContext,
                                                           str], list[StepResult]],
                 step_path: str = "", phase: str = "steps",
                 parent: StepContext | None = None, report_dir: Path | None = None) -> None:
        self.scenario = scenario
        self.actors = actors
        self.vars = variables
        self.events = events
        self.step_path = step_path
        self.phase = phase
        self.notes: list[str] = []
        self._run_children = run_children
        self._parent = parent
        self._report_dir = report_dir
        self._cancel = threading.Event()
        self._interrupted = False

    @property
    def report_dir(self) -> Path | None:
        """The run's output folder (``pacsim run --report-dir``): steps that write files
        (load, migration) put them under it so one folder holds every artefact of the run.
        None when the run has no report folder (steps keep their own defaults)."""
        return self._report_dir if self._parent is None else self._parent.report_dir

    @property
    def environment(self) -> Environment:
        return self.scenario.environment

    @property
    def capabilities(self) -> Capabilities | None:
        """What the running target takes and who serves each transaction: the site's,
        learned when it started (None when the run has no site, e.g. bare actors)."""
        for actor in self.actors.values():
            found = getattr(actor, "capabilities", None)
            if isinstance(found, Capabilities):
                return found
        return None

    def unsupported(self, services: Sequence[str]) -> list[Route]:
        """The services in ``services`` nobody in this run serves: what makes a step
        N/A. Without a site only a ``supports:`` declaration can say so."""
        capabilities = self.capabilities
        if capabilities is not None:
            return capabilities.unsupported(list(services))
        declarations = self.environment.declarations()
        return [Route(s, None, declared(s, False).describe()) for s in services
                if declarations.get(s) is False]

    def child(self, step_path: str) -> StepContext:
        """A context for a nested or next step: same world, its own cancel flag."""
        return StepContext(scenario=self.scenario, actors=self.actors, variables=self.vars,
                           events=self.events, run_children=self._run_children,
                           step_path=step_path, phase=self.phase, parent=self)

    # ---------------------------------------------------------------- helpers for executors
    def actor(self, name: str | None) -> Any:
        """The running actor called ``name``; ScenarioError naming the known ones if absent."""
        if name is None:
            raise ScenarioError("this step needs 'by:' (which actor performs it)", field="by")
        try:
            return self.actors[name]
        except KeyError:
            known = ", ".join(sorted(self.actors)) or "none"
            raise ScenarioError(f"no actor named {name!r} (actors: {known})", field="by") from None

    def resolve(self, value: Any) -> Any:
        return self.vars.resolve(value)

    def note(self, text: str) -> None:
        """Add a line to the report under this step."""
        self.notes.append(text)

    @property
    def cancelled(self) -> bool:
        """True once the runner gave up on this step (timeout) or on the run."""
        return self._cancel.is_set() or (self._parent is not None and self._parent.cancelled)

    def cancel(self, interrupted: bool = False) -> None:
        """Give up on this step; ``interrupted`` when the whole run was stopped by a
        signal (a load step then marks its partial report INTERRUPTED)."""
        self._interrupted = self._interrupted or interrupted
        self._cancel.set()

    @property
    def interrupted(self) -> bool:
        """True once the run was interrupted (SIGINT/SIGTERM), not merely timed out."""
        return self._interrupted or (self._parent is not None and self._parent.interrupted)

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns False early if the step was cancelled."""
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.cancelled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self._cancel.wait(min(remaining, 0.05))
        return False

    def run_concurrently(self, steps: Sequence[StepBase], field_name: str = "steps"
                         ) -> list[StepResult]:
        """Run nested steps, each in its own thread, and return their results in order."""
        return self._run_children(steps, self, field_name)


__all__ = ["StepOutcome", "StepContext", "Variables", "FallbackResolver", "lookup_path"]
