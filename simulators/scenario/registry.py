"""The step registry: ``do:`` name -> step model (with its executor), and the union built from it.

Adding a step type is adding a file::

    @step("hl7.admit")
    class AdmitStep(StepBase):
        requires = ("hl7",)
        patient: str
        class Expect(BaseExpect):
            ack: Literal["AA", "AE", "AR"] | None = None
        expect: Expect = Field(default_factory=Expect)

        def run(self, ctx: StepContext) -> StepOutcome:       # the executor
            ack = ctx.actor(self.by).admit(ctx.resolve(self.patient))
            return StepOutcome(observed={"ack": ack.code})

``@step`` gives the class its ``do: Literal[...]`` discriminator, so the name is written
once. The scenario model (and its JSON Schema) is rebuilt from the registry whenever the
registry changed, because pydantic resolves a union once per class: nested-step fields
(``parallel.steps``) and ``Scenario.steps`` get fresh subclasses typed with the new union.

Step modules are imported lazily by :data:`STEP_MODULES` so importing the registry stays
cheap and a broken optional step module names itself instead of breaking every scenario.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from typing import Annotated, Any, Callable, Literal, TypeVar, Union

from pydantic import BaseModel, Field, create_model

from simulators.errors import ScenarioError
from simulators.scenario.models import Scenario, StepBase

S = TypeVar("S", bound=type[StepBase])

#: Modules that register step types when imported. Actor steps add their module here
#: (e.g. "simulators.scenario.steps.hl7"); the generic ones need no actor.
STEP_MODULES: list[str] = [
    "simulators.scenario.steps.generic",
    "simulators.scenario.steps.hl7",        # hl7.admit/register/update/merge/order/cancel
    "simulators.scenario.steps.worklist",   # mwl.query, ris.order_state
    "simulators.scenario.steps.exam",       # modality.perform/unscheduled, mpps.*, store, commitment
    "simulators.scenario.steps.target",     # target.find/retrieve/seed_priors
    "simulators.scenario.steps.faults",     # faults.probe, worklist.snapshot/unchanged
    "simulators.scenario.steps.load",       # load.run (and the scenario's load: phase)
    "simulators.scenario.steps.legacy",     # legacy.seed
    "simulators.scenario.steps.migration",  # migrate.run, migrate.validate
    "simulators.scenario.steps.viewer",     # viewer.open_study, viewer.priors
]


class StepRegistry:
    """Step types by ``do:`` name, and the scenario model built from them."""

    def __init__(self, modules: list[str] | None = None) -> None:
        self._steps: dict[str, type[StepBase]] = {}
        self._modules = modules if modules is not None else []
        self._modules_loaded = False
        self._scenario_model: type[Scenario] | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registration
    def register(self, name: str, model: type[StepBase]) -> type[StepBase]:
        """Register ``model`` under ``name`` (giving it ``do: Literal[name]``); returns it."""
        if not name or name != name.strip():
            raise ValueError(f"bad step name {name!r}")
        if model.run is StepBase.run:
            raise TypeError(f"step {name!r}: {model.__name__} must implement run(self, ctx)")
        with self._lock:
            if name in self._steps and self._steps[name].__qualname__ != model.__qualname__:
                raise ValueError(f"step type {name!r} is already registered by "
                                 f"{self._steps[name].__module__}.{self._steps[name].__name__}")
            tagged = _with_tag(name, model)
            self._steps[name] = tagged
            self._scenario_model = None
            return tagged

    def step(self, name: str) -> Callable[[S], S]:
        """Class decorator form of :meth:`register`."""
        def decorate(model: S) -> S:
            return self.register(name, model)  # type: ignore[return-value]
        return decorate

    def copy(self) -> StepRegistry:
        """A registry with the same step types, to extend without touching this one (tests)."""
        with self._lock:
            self._load_modules()
            clone = StepRegistry()
            clone._steps = dict(self._steps)
            clone._modules_loaded = True
            return clone

    # ------------------------------------------------------------------ lookups
    def names(self) -> list[str]:
        with self._lock:
            self._load_modules()
            return sorted(self._steps)

    def get(self, name: str) -> type[StepBase]:
        """The model for ``name``; ScenarioError with the closest match if unknown."""
        with self._lock:
            self._load_modules()
            if name in self._steps:
                return self._steps[name]
        raise ScenarioError(unknown_step_message(name, self.names()), field="do")

    def scenario_model(self) -> type[Scenario]:
        """The Scenario model whose steps are the discriminated union of every step type."""
        with self._lock:
            self._load_modules()
            if self._scenario_model is None:
                self._scenario_model = self._build()
            return self._scenario_model

    # ------------------------------------------------------------------ internals
    def _load_modules(self) -> None:
        if self._modules_loaded:
            return
        self._modules_loaded = True
        for module in self._modules:
            importlib.import_module(module)

    def _build(self) -> type[Scenario]:
        if not self._steps:
            raise ScenarioError("no step types are registered")
        concrete = [_with_nested_union(model) for model in self._steps.values()]
        union = Annotated[Union[tuple(concrete)], Field(discriminator="do")]
        namespace = {"Step": union}
        scenario = create_model(
            "Scenario", __base__=Scenario, __module__=Scenario.__module__, __doc__=Scenario.__doc__,
            steps=(list["Step"], Scenario.model_fields["steps"]),  # type: ignore[name-defined]
            finally_=(list["Step"], Scenario.model_fields["finally_"]))  # type: ignore[name-defined]
        for model in concrete:
            if model.nested_step_fields:
                model.model_rebuild(_types_namespace=namespace)
        scenario.model_rebuild(_types_namespace=namespace)
        return scenario


def _with_tag(name: str, model: type[StepBase]) -> type[StepBase]:
    """``model`` with ``do: Literal[name]`` (added here so authors write the name once)."""
    declared = model.model_fields.get("do")
    if declared is not None and declared.annotation == Literal[name]:  # type: ignore[valid-type]
        return model
    return create_model(model.__name__, __base__=model, __module__=model.__module__,
                        __doc__=model.__doc__,
                        do=(Literal[name], Field(name, description=f"step type: {name}")))  # type: ignore[valid-type]


def _with_nested_union(model: type[StepBase]) -> type[StepBase]:
    """A subclass whose nested-step fields are typed with the union (resolved later)."""
    if not model.nested_step_fields:
        return model
    fields: dict[str, Any] = {name: (list["Step"], model.model_fields[name])  # type: ignore[name-defined]
                              for name in model.nested_step_fields}
    return create_model(model.__name__, __base__=model, __module__=model.__module__,
                        __doc__=model.__doc__, **fields)


def unknown_step_message(name: str, known: list[str]) -> str:
    """``unknown step type 'x' (known: ...)`` with the closest name suggested."""
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown step type {name!r} (known: {', '.join(known)}){hint}"


# ---------------------------------------------------------------------- JSON Schema
DRAFT7 = "http://json-schema.org/draft-07/schema#"


def _to_draft7(node: Any) -> Any:
    """Rewrite pydantic's 2020-12 output for draft 7: ``$defs`` -> ``definitions``, refs fixed,
    and ``$ref`` with siblings wrapped in ``allOf`` (draft 7 ignores a ref's siblings)."""
    if isinstance(node, list):
        return [_to_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node.replace("#/$defs/", "#/definitions/") if isinstance(node, str) \
            and node.startswith("#/$defs/") else node
    out = {("definitions" if key == "$defs" else key): _to_draft7(value)
           for key, value in node.items()}
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}, *out.get("allOf", [])]
    return out


def json_schema(registry: StepRegistry | None = None) -> dict[str, Any]:
    """The scenario format as JSON Schema draft 7, for editors and ``pacsim schema``."""
    model: type[BaseModel] = (registry or default_registry).scenario_model()
    schema = _to_draft7(model.model_json_schema(by_alias=True, mode="validation"))
    schema = {"$schema": DRAFT7, "$id": "https://pacsim.invalid/scenario-v1.schema.json",
              **schema}
    schema["title"] = "pacsim scenario (format 1)"
    return schema


#: The registry scenario files use; step modules register into it with ``@step``.
default_registry = StepRegistry(STEP_MODULES)


def step(name: str) -> Callable[[S], S]:
    """Register a step type in the default registry: ``@step("wait") class WaitStep(...)``."""
    return default_registry.step(name)


__all__ = ["StepRegistry", "default_registry", "step", "json_schema", "unknown_step_message",
           "STEP_MODULES", "DRAFT7"]
