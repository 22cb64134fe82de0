"""What a run produced: plain dataclasses that every report reads and nothing else writes.

Kept free of protocol and pydantic code so reports (console, JSON, JUnit, HTML) and
external tools depend only on this shape. ``to_dict``/``from_dict`` give the stable JSON
form (the JSON report round-trips through them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

from simulators.events import Exchange

Status = Literal["passed", "failed", "error", "skipped", "unsupported"]
#: Statuses that do not make a run fail: "unsupported" is reported, never failed.
OK_STATUSES: frozenset[str] = frozenset({"passed", "skipped", "unsupported"})
#: Worst first; a parent step takes the worst status of its children.
SEVERITY: dict[str, int] = {"error": 4, "failed": 3, "unsupported": 2, "skipped": 1, "passed": 0}


def worst(*statuses: str) -> str:
    return max(statuses, key=lambda status: SEVERITY[status], default="passed")


@dataclass
class ExpectationResult:
    """One expectation: what the scenario asked for, what was seen on the wire."""

    name: str
    expected: Any
    seen: Any
    passed: bool
    message: str = ""


@dataclass
class StepResult:
    """One executed (or skipped) step, with the events it caused."""

    name: str
    do: str
    phase: Literal["steps", "finally"] = "steps"
    status: Status = "passed"
    started: float = 0.0
    duration: float = 0.0
    message: str = ""
    attempts: int = 0
    expectations: list[ExpectationResult] = field(default_factory=list)
    events: list[Exchange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    children: list[StepResult] = field(default_factory=list)
    #: Files the step wrote (load.html, validation.html...), linked from report.html.
    artefacts: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status in OK_STATUSES

    def walk(self) -> Iterator[StepResult]:
        """This step and every nested one, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class RunResult:
    """One scenario run. ``environment_error`` means the run could not start (exit 2)."""

    scenario: str
    file: str | None = None
    started: float = 0.0
    duration: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    environment_error: str | None = None
    events_outside_steps: list[Exchange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The target this run talked to, for the report header: kind, address, and what
    #: it supports (``Capabilities.as_dict()``; None when the run never started a site).
    target_kind: str = ""
    target_address: str = ""
    capabilities: dict[str, dict[str, Any]] | None = None
    seed: int | None = None
    #: Set when SIGINT/SIGTERM stopped the run: what finished is kept, the rest skipped.
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return (self.environment_error is None and not self.interrupted
                and all(step.passed for step in self.steps))

    @property
    def exit_code(self) -> int:
        """The CLI contract: 0 all expectations met, 1 any failed, 2 environment error,
        130 interrupted (the shell's code for a run stopped by a signal)."""
        if self.interrupted:
            return 130
        if self.environment_error is not None:
            return 2
        return 0 if self.passed else 1

    def all_steps(self) -> Iterator[StepResult]:
        for step in self.steps:
            yield from step.walk()

    def counts(self) -> dict[str, int]:
        """How many top-level steps ended in each status."""
        totals = {status: 0 for status in ("passed", "failed", "error", "unsupported", "skipped")}
        for step in self.steps:
            totals[step.status] += 1
        return totals

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys (see :mod:`simulators.reports.json_report`)."""
        data = dataclasses.asdict(self)
        data["passed"] = self.passed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Rebuild a RunResult from :meth:`to_dict` output (e.g. a saved JSON report)."""
        return cls(scenario=data["scenario"], file=data.get("file"),
                   started=data.get("started", 0.0), duration=data.get("duration", 0.0),
                   steps=[_step_from_dict(step) for step in data.get("steps", [])],
                   environment_error=data.get("environment_error"),
                   warnings=list(data.get("warnings", [])),
                   target_kind=data.get("target_kind", ""),
                   target_address=data.get("target_address", ""),
                   capabilities=data.get("capabilities"), seed=data.get("seed"),
                   interrupted=bool(data.get("interrupted", False)),
                   events_outside_steps=[Exchange(**e) for e in data.get("events_outside_steps", [])])


def _step_from_dict(data: dict[str, Any]) -> StepResult:
    values = dict(data)
    values["expectations"] = [ExpectationResult(**e) for e in data.get("expectations", [])]
    values["events"] = [Exchange(**e) for e in data.get("events", [])]
    values["children"] = [_step_from_dict(c) for c in data.get("children", [])]
    return StepResult(**values)


__all__ = ["Status", "OK_STATUSES", "SEVERITY", "worst", "ExpectationResult", "StepResult",
           "RunResult"]
