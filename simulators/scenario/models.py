"""The scenario format (``pacsim: 1``) as pydantic models.

Why pydantic: one definition gives validation with precise locations (mapped back to
``file:line`` by :mod:`simulators.scenario.validate`), defaults, and the JSON Schema that
editors use to check scenario files as they are typed. Steps are not listed here: each
step type registers itself (:mod:`simulators.scenario.registry`) and the discriminated
union on ``do`` is built from the registry, so a new step type is a new file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Iterator, Literal, Union

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError,
)

from simulators.errors import ScenarioError
from simulators.load.profile import LoadProfile
from simulators.scenario.fields import AeTitle, Duration, Identifier, Port, VarRef

if TYPE_CHECKING:  # pragma: no cover - typing only
    from simulators.scenario.context import StepContext, StepOutcome


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key silently ignored is a test that lies."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


# --------------------------------------------------------------------------- actors
class FaultRef(StrictModel):
    """A fault from the catalogue attached to an actor, optionally only sometimes."""

    id: str = Field(min_length=1, description="catalogue id or profile, e.g. mpps.wrong-patient")
    rate: float = Field(1.0, ge=0.0, le=1.0, description="fraction of exchanges affected")
    nth: int | None = Field(None, ge=1, description="only the nth exchange at the hook")
    every: int | None = Field(None, ge=1, description="every nth exchange at the hook")
    seed: int | None = Field(None, description="seed for rate < 1 (deterministic)")
    only: dict[str, Any] = Field(default_factory=dict,
                                 description="targeting, e.g. {study: 3}")


def _fault_refs(value: list[FaultRef | str]) -> list[FaultRef]:
    """``faults: [id, {id: ..., rate: 0.1}]``: a bare id is shorthand for ``{id: ...}``."""
    return [FaultRef(id=item) if isinstance(item, str) else item for item in value]


class ActorSpecBase(StrictModel):
    """Keys every actor has. ``settings`` goes verbatim to the actor's own config class."""

    kind: str
    host: str = Field("127.0.0.1", description="address to listen on")
    port: Port = Field(0, description="listening port; 0 picks a free one")
    faults: Annotated[list[FaultRef | Annotated[str, Field(min_length=1)]],
                      AfterValidator(_fault_refs)] = Field(
        default_factory=list, description="catalogue fault ids, or {id, rate, only}")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="extra settings for the actor's config")


class EhrSpec(ActorSpecBase):
    """The EHR (ADT and order placer): speaks HL7 only."""

    kind: Literal["ehr"]


class RisSpec(ActorSpecBase):
    """The RIS (order filler): HL7 in, Modality Worklist and MPPS out."""

    kind: Literal["ris"]
    ae_title: AeTitle = "RIS"
    hl7_port: Port = Field(0, description="HL7 MLLP port; 0 picks a free one")
    mwl: bool = True
    mpps: bool = True


class ModalitySpec(ActorSpecBase):
    """An acquisition modality, named and titled as it is at the site."""

    kind: Literal["modality"]
    ae_title: AeTitle
    modality: Annotated[str, Field(pattern=r"^[A-Z]{2,4}$",
                                   description="DICOM modality code: CT, MR, CR, US, MG...")]
    station: str | None = Field(None, description="Scheduled Station Name / AE the RIS uses")


class ArchiveSpec(ActorSpecBase):
    """An archive: the legacy PACS being replaced, or the built-in reference target."""

    kind: Literal["archive"]
    ae_title: AeTitle = "ARCHIVE"


class ViewerSpec(ActorSpecBase):
    """A viewer: a reading workstation or a physician's tablet. It searches (QIDO-RS or
    C-FIND) and loads studies (WADO-RS, C-MOVE to itself, C-GET), timing each load, and
    is a C-MOVE destination (``settings`` go to :class:`ViewerConfig`)."""

    kind: Literal["viewer"]
    ae_title: AeTitle = "VIEWER"


ActorSpec = Annotated[Union[EhrSpec, RisSpec, ModalitySpec, ArchiveSpec, ViewerSpec],
                      Field(discriminator="kind")]
ACTOR_KINDS = ("ehr", "ris", "modality", "archive", "viewer")


# --------------------------------------------------------------------------- target
class ExternalEndpoints(StrictModel):
    """Where a real target listens. Only DICOM is required."""

    dicom: Annotated[str, Field(pattern=r"^[^@\\\s]{1,16}@[^:\s@]+:\d{1,5}$",
                                description="AE@HOST:PORT")]
    hl7: Annotated[str, Field(pattern=r"^[^:\s]+:\d{1,5}$", description="HOST:PORT")] | None = None
    dicomweb: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None

    @property
    def dicom_parts(self) -> tuple[str, str, int]:
        """(AE title, host, port) of the DICOM endpoint."""
        ae_title, _, address = self.dicom.partition("@")
        host, _, port = address.rpartition(":")
        return ae_title, host, int(port)


class ExternalTarget(StrictModel):
    external: ExternalEndpoints


#: What each kind of target supports unless the scenario says otherwise.
TARGET_DEFAULT_SUPPORT: dict[str, dict[str, bool]] = {
    "builtin": {},
    "orthanc": {"mpps": False, "hl7": False},
    "external": {},
}


class Supports(StrictModel):
    """Which transactions the target supports; unset means the target kind's default."""

    hl7: bool | None = None
    mwl: bool | None = None
    mpps: bool | None = None
    storage_commitment: bool | None = None
    query: bool | None = None
    move: bool | None = None
    get: bool | None = None
    dicomweb: bool | None = None


class Environment(StrictModel):
    """The systems taking part and the target under test."""

    seed: int = Field(42, description="seed of the synthetic world")
    target: Literal["builtin", "orthanc"] | ExternalTarget = Field(
        "builtin", union_mode="left_to_right")
    supports: Supports = Field(default_factory=Supports)
    actors: dict[Identifier, ActorSpec] = Field(default_factory=dict)
    patients: dict[Identifier, Annotated[int, Field(ge=0, le=10**6)]] = Field(
        default_factory=dict,
        description="names for patients of the seeded world: {jane: 0} makes $jane patient 0 "
                    "($patient0, $patient1... always work)")

    @property
    def target_kind(self) -> str:
        return self.target if isinstance(self.target, str) else "external"

    def supported(self, transaction: str) -> bool:
        """Whether the target takes ``transaction``: explicit setting, else target default."""
        explicit = getattr(self.supports, transaction, None)
        if explicit is not None:
            return explicit
        return TARGET_DEFAULT_SUPPORT[self.target_kind].get(transaction, True)


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
