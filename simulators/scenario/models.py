"""The scenario format (``pacsim: 1``) as pydantic models.

Why pydantic: one definition gives validation with precise locations (mapped back to
``file:line`` by :mod:`simulators.scenario.validate`), defaults, and the JSON Schema that
editors use to check scenario files as they are typed. Steps are not listed here: each
step type registers itself (:mod:`simulators.scenario.registry`) and the discriminated
union on ``do`` is built from the registry, so a new step type is a new file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Iterator, Literal

from pydantic import (
    BeforeValidator, Field, PrivateAttr, ValidationError,
)

from simulators.errors import ScenarioError
from simulators.load.profile import LoadProfile
from simulators.common.fields import Duration, Identifier, VarRef
from simulators.site.models import (  # noqa: F401 - the environment is part of the format
    ACTOR_KINDS, TARGET_DEFAULT_SUPPORT, ActorSpec, ActorSpecBase, ArchiveSpec, EhrSpec,
    Environment, ExternalEndpoints, ExternalTarget, FaultRef, ModalitySpec, RisSpec,
    StrictModel, Supports, ViewerSpec,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from simulators.scenario.context import StepContext, StepOutcome


# --------------------------------------------------------------------------- steps
class BaseExpect(StrictModel):
    """Expectations every step accepts; step types extend this with their own keys."""

    max_duration: Duration | None = Field(
        None, description="the step must finish within this time (e.g. 5s)")


class StepBase(StrictModel):
    """What every step has. Subclasses add their fields and implement :meth:`run`.

    ``save`` maps a value the step observed (``accession``, ``items.0.patient_id``) to a
    variable (``$acc``) that later steps reference. ``within`` repeats the step until its
    expectations hold, bounded by that time; ``timeout`` bounds one execution.
    """

    #: Transactions the target must support (checked against ``environment.supports``);
    #: when one is unsupported the step reports "not supported by target" instead of failing.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Fields holding nested steps; the registry types them as the full step union.
    nested_step_fields: ClassVar[tuple[str, ...]] = ()

    do: str = Field(description="the step type")
    name: str | None = Field(None, description="what the step means, in the reader's words")
    by: Identifier | None = Field(None, description="the actor that performs the step")
    expect: BaseExpect = Field(default_factory=BaseExpect)
    within: Duration | None = Field(
        None, description="repeat until the expectations hold, for at most this long")
    save: dict[str, VarRef] = Field(
        default_factory=dict, description="observed value -> $variable for later steps")
    timeout: Duration | None = Field(None, description="longest time one execution may take")

    def run(self, ctx: StepContext) -> StepOutcome:
        """Execute the step once and report what was observed (override in step types)."""
        raise NotImplementedError(f"step type {self.do!r} has no executor")

    def expected(self) -> dict[str, Any]:
        """The expectations the author wrote, minus the ones the runner checks itself."""
        written = self.expect.model_dump(exclude_unset=True, by_alias=True)
        written.pop("max_duration", None)
        return written

    @property
    def max_duration(self) -> float | None:
        return getattr(self.expect, "max_duration", None)

    def title(self, position: str) -> str:
        """The name a report shows: the author's name, else ``do`` and the position."""
        return self.name or f"{self.do} ({position})"

    def nested_steps(self) -> Iterator[tuple[str, int, StepBase]]:
        """(field, index, step) for every directly nested step."""
        for field_name in self.nested_step_fields:
            for index, nested in enumerate(getattr(self, field_name)):
                yield field_name, index, nested


# --------------------------------------------------------------------------- scenario
class StepDefaults(StrictModel):
    """Step keys a scenario may set once for all its steps."""

    by: Identifier | None = None
    within: Duration | None = None
    timeout: Duration | None = None


class Defaults(StrictModel):
    """Applied by the loader: ``step`` into every step, ``actors.KIND`` into those actors."""

    step: StepDefaults = Field(default_factory=StepDefaults)
    actors: dict[Literal["ehr", "ris", "modality", "archive", "viewer"], dict[str, Any]] = Field(
        default_factory=dict)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Scenario(StrictModel):
    """A scenario file. Use the registry's model (``scenario_model()``) to validate one:
    this base class types steps loosely so the step union can grow with the registry."""

    pacsim: Literal[1] = Field(description="format version; always 1 for now")
    name: str = Field(min_length=1)
    description: str = ""
    include: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=list)
    vars: dict[Identifier, Any] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    environment: Environment = Field(default_factory=Environment)
    steps: list[StepBase] = Field(min_length=1)
    finally_: list[StepBase] = Field(default_factory=list, alias="finally")
    load: LoadProfile | None = Field(
        None, description="a load phase run after the steps (before finally): virtual "
                          "modalities, stages, operations and thresholds")

    _source_file: str | None = PrivateAttr(default=None)

    @property
    def source_file(self) -> str | None:
        """The file the scenario was loaded from (None when built in code)."""
        return self._source_file

    def with_environment(self, **changes: Any) -> Scenario:
        """A copy with environment values replaced (``pacsim run --seed N --target orthanc``)."""
        values = {key: value for key, value in changes.items() if value is not None}
        try:
            environment = Environment.model_validate(
                {**self.environment.model_dump(by_alias=True), **values})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"][:1])
            raise ScenarioError(f"invalid override: {first['msg']}", file=self._source_file,
                                field=f"environment.{where}") from None
        copy = self.model_copy(update={"environment": environment})
        copy._source_file = self._source_file
        return copy

    def iter_steps(self) -> Iterator[tuple[tuple[str | int, ...], StepBase]]:
        """Every step with its data path, nested ones included (for checks and reports)."""
        def walk(path: tuple[str | int, ...], step: StepBase) -> Iterator[Any]:
            yield path, step
            for field_name, index, nested in step.nested_steps():
                yield from walk((*path, field_name, index), nested)

        for section, steps in (("steps", self.steps), ("finally", self.finally_)):
            for index, step in enumerate(steps):
                yield from walk((section, index), step)


__all__ = ["StrictModel", "BaseExpect", "StepBase", "FaultRef", "ActorSpecBase", "EhrSpec",
           "RisSpec", "ModalitySpec", "ArchiveSpec", "ViewerSpec", "ActorSpec", "ACTOR_KINDS",
           "ExternalEndpoints", "ExternalTarget", "Supports", "Environment", "StepDefaults",
           "Defaults", "Scenario", "TARGET_DEFAULT_SUPPORT"]
