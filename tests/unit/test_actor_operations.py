"""Each actor operation is declared once, and everything else agrees with the declaration.

The declaration (simulators.actors.operations) names every operation of every actor
kind; the actor must have it with the same parameters, the control API must allow it
(and nothing else), and the remote proxy must have its generated twin. A new actor
operation that is declared but missing anywhere, or an operation added to one side
only, fails here.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from simulators.actors.operations import DECLARATIONS, declared_operations
from simulators.actors.registry import KINDS
from simulators.runtime.operations import ADOPT_EXAM, DESCRIBE, operations_for
from simulators.runtime.remote import (
    RemoteActor, RemoteArchive, RemoteEhr, RemoteModality, RemoteRis, twin_of,
)
from simulators.runtime.remote_viewer import RemoteViewer

PROXIES: dict[str, type[RemoteActor]] = {
    "ehr": RemoteEhr, "ris": RemoteRis, "modality": RemoteModality,
    "archive": RemoteArchive, "viewer": RemoteViewer,
}
#: Operations of the runtime itself, not of any actor.
RUNTIME_OWN = {DESCRIBE.name, ADOPT_EXAM.name}


def _shape(signature: inspect.Signature) -> list[tuple[str, Any, Any]]:
    """What callers depend on: parameter names, kinds and defaults (not annotations:
    the actor may accept wider types than the wire carries)."""
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()
            if p.name != "self"]


def test_every_actor_kind_has_a_declaration_and_a_proxy() -> None:
    assert set(DECLARATIONS) == set(KINDS) == set(PROXIES)


@pytest.mark.parametrize("kind", sorted(DECLARATIONS))
def test_every_declared_operation_has_a_remote_twin_and_is_allowed(kind: str) -> None:
    declared = declared_operations(kind)
    proxy = PROXIES[kind]
    assert declared, kind
    assert DECLARATIONS[kind] in proxy.__mro__  # static checkers see the signatures
    missing = [name for name in declared if twin_of(proxy, name) is not declared[name]]
    assert not missing, f"{proxy.__name__} lacks the generated twin of {missing}"
    for name, spec in declared.items():
        member = inspect.getattr_static(proxy, name)
        if spec.attribute:
            assert isinstance(member, property), name
        else:
            assert _shape(inspect.signature(member)) == _shape(spec.signature), name
            assert inspect.signature(member).return_annotation == spec.returns, name
    allowed = operations_for(kind)
    assert set(allowed) - RUNTIME_OWN == set(declared), kind
    for name, spec in declared.items():
        assert allowed[name].spec is spec and allowed[name].timeout == spec.timeout


@pytest.mark.parametrize("kind", sorted(DECLARATIONS))
def test_the_actor_has_every_declared_operation_with_the_same_parameters(kind: str) -> None:
    config_class, actor_class = KINDS[kind].load()
    for name, spec in declared_operations(kind).items():
        if spec.attribute:
            # A plain attribute of the instance (ehr.acks is a list it appends to).
            actor = actor_class(config_class())
            assert hasattr(actor, name), f"{actor_class.__name__} has no {name}"
            continue
        method = getattr(actor_class, name, None)
        assert callable(method), f"{actor_class.__name__} has no operation {name}"
        assert _shape(inspect.signature(method)) == _shape(spec.signature), \
            f"{actor_class.__name__}.{name} differs from its declaration"


def test_only_a_kind_whose_operations_take_exams_can_adopt_one() -> None:
    assert {kind for kind in DECLARATIONS if "adopt_exam" in operations_for(kind)} == \
        {"modality"}
    store = operations_for("modality")["store_study"]
    assert store.params["exam"] is str  # an exam travels as its handle
    assert store.exam_params == ("exam",)


def test_a_proxy_cannot_write_a_declared_operation_by_hand() -> None:
    with pytest.raises(TypeError, match="generated from the ris declaration"):
        class HandWritten(RemoteRis):  # noqa: F841 - defining it is the test
            def orders(self) -> list[Any]:
                return []


def test_an_undeclared_attribute_of_a_proxy_is_refused_naming_what_exists() -> None:
    proxy = RemoteModality.__new__(RemoteModality)
    proxy.name = "ct1"
    for name in ("store_files", "build_images", "mpps_instances"):
        with pytest.raises(AttributeError) as refused:
            getattr(proxy, name)
        message = str(refused.value)
        assert f"no operation {name!r}" in message and "query_worklist" in message
