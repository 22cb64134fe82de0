"""Steps that need no actor: wait, parallel, note and assert.vars.

They are the glue of a scenario (pause, fan out, explain, check what was saved) and
double as the reference for writing a step type: a model plus ``run(self, ctx)``.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from simulators.scenario.context import StepContext, StepOutcome
from simulators.scenario.expectations import MISSING, check
from simulators.common.fields import Duration
from simulators.scenario.models import StepBase
from simulators.scenario.registry import step
from simulators.scenario.results import worst

#: The longest pause a ``wait`` step may ask for: scenarios are tests, not schedulers.
MAX_WAIT_SECONDS = 3600.0


@step("wait")
class WaitStep(StepBase):
    """Pause, e.g. to let a target finish ingesting before querying it."""

    duration: Duration = Field(le=MAX_WAIT_SECONDS, description="how long to wait (e.g. 2s)")

    def run(self, ctx: StepContext) -> StepOutcome:
        began = time.monotonic()
        finished = ctx.sleep(self.duration)
        waited = round(time.monotonic() - began, 3)
        return StepOutcome(observed={"waited": waited},
                           message=f"waited {waited}s" if finished else "wait interrupted")


@step("parallel")
class ParallelStep(StepBase):
    """Run nested steps at the same time, each in its own thread (several modalities...)."""

    nested_step_fields = ("steps",)

    steps: list[StepBase] = Field(min_length=1, description="steps to run concurrently")

    def run(self, ctx: StepContext) -> StepOutcome:
        children = ctx.run_concurrently(self.steps)
        status = worst(*(child.status for child in children))
        failing = [child.name for child in children if not child.passed]
        message = (f"{len(failing)} of {len(children)} parallel steps did not pass: "
                   f"{', '.join(failing)}") if failing else f"{len(children)} steps passed"
        return StepOutcome(observed={"passed": len(children) - len(failing),
                                    "failed": len(failing)},
                           status=status, message=message, children=children)


@step("note")
class NoteStep(StepBase):
    """Write a sentence into the report (``$variables`` in it are filled in)."""

    message: str = Field(min_length=1)

    def run(self, ctx: StepContext) -> StepOutcome:
        text = ctx.vars.interpolate(self.message)
        return StepOutcome(message=text, notes=[text])


@step("assert.vars")
class AssertVarsStep(StepBase):
    """Check saved variables: ``expect: {acc: A123, count: 3}`` (names with or without $)."""

    expect: dict[str, Any] = Field(min_length=1,  # type: ignore[assignment]
                                   description="variable name -> expected value")

    def expected(self) -> dict[str, Any]:
        return dict(self.expect)

    @property
    def max_duration(self) -> float | None:
        return None

    def run(self, ctx: StepContext) -> StepOutcome:
        saved = ctx.vars.snapshot()
        results = []
        for name, want in self.expect.items():
            results.append(check(f"${name.lstrip('$')}", ctx.resolve(want),
                                 saved.get(name.lstrip("$"), MISSING)))
        return StepOutcome(observed={k: saved[k.lstrip("$")] for k in self.expect
                                     if k.lstrip("$") in saved},
                           expectations=results)


__all__ = ["WaitStep", "ParallelStep", "NoteStep", "AssertVarsStep", "MAX_WAIT_SECONDS"]
