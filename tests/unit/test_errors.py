"""The error tree is complete, exported and documented, and its typed fields survive
a trip across a process boundary (in the style of httpx's test_exported_members).

Why walk the whole package: an error class defined next to the code that raises it
is invisible to callers who import the tree from ``simulators.errors``, and to the
control API, which only rebuilds the classes listed there.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
import pkgutil
import re

import pytest

import simulators
from simulators import errors
from simulators.errors import (
    AssociationAborted, AssociationError, AssociationRejected, ConfigError, DicomTimeout,
    DicomUnreachable, Hl7Error, MllpError, MllpTimeout, MllpUnreachable, PacsimError,
    PeerUnreachable, PortInUse, ProtocolError, ScenarioError, StatusError, Timeout,
)
from simulators.http.problem import error_from_problem, problem


def _all_error_classes() -> set[type[PacsimError]]:
    """Every PacsimError subclass in the package: module members after importing every
    module, plus subclasses defined anywhere else (e.g. inside a function)."""
    found: set[type[PacsimError]] = set()
    for info in pkgutil.walk_packages(simulators.__path__, "simulators."):
        module = importlib.import_module(info.name)
        for _, member in inspect.getmembers(module, inspect.isclass):
            if issubclass(member, PacsimError):
                found.add(member)
    pending = [PacsimError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return {cls for cls in found if cls.__module__.startswith("simulators")}


def test_every_error_class_is_defined_in_errors_and_exported() -> None:
    classes = _all_error_classes()
    elsewhere = sorted(f"{c.__module__}.{c.__qualname__}" for c in classes
                       if c.__module__ != "simulators.errors")
    assert elsewhere == [], "define these in simulators/errors.py"
    assert sorted(c.__name__ for c in classes) == sorted(errors.__all__)


def test_all_lists_exactly_the_public_members_of_errors() -> None:
    public = {name for name, member in vars(errors).items()
              if not name.startswith("_") and inspect.isclass(member)
              and member.__module__ == "simulators.errors"}
    assert public == set(errors.__all__)
    assert len(errors.__all__) == len(set(errors.__all__))


def test_the_docstring_tree_names_every_class_once_under_its_parent() -> None:
    doc = errors.__doc__ or ""
    drawn = re.findall(r"^ {4}[│ ]*(?:[├└]── )?(\w+)", doc, re.MULTILINE)
    assert sorted(drawn) == sorted(errors.__all__)
    # each class is drawn one level below its first (primary) base
    depth = {m.group(2): len(m.group(1)) for m in re.finditer(
        r"^( {4}[│ ]*(?:[├└]── )?)(\w+)", doc, re.MULTILINE)}
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is PacsimError:
            continue
        parent = cls.__bases__[0].__name__
        assert depth[name] == depth[parent] + 4, (name, parent)


def test_conditions_are_also_their_protocol_family() -> None:
    """Code written before the split catches AssociationError / MllpError and must
    keep catching timeouts and refused connections; a probe asks "timeout?"."""
    assert issubclass(DicomTimeout, AssociationError) and issubclass(DicomTimeout, Timeout)
    assert issubclass(DicomUnreachable, AssociationError)
    assert issubclass(DicomUnreachable, PeerUnreachable)
    assert issubclass(MllpTimeout, MllpError) and issubclass(MllpTimeout, Timeout)
    assert issubclass(MllpUnreachable, MllpError)
    assert issubclass(MllpUnreachable, PeerUnreachable)
    assert issubclass(Timeout, TimeoutError) and not issubclass(PeerUnreachable, OSError)
    assert issubclass(AssociationRejected, AssociationError)
    assert issubclass(AssociationAborted, AssociationError)
    assert issubclass(StatusError, ProtocolError) and issubclass(PortInUse, ConfigError)


def test_status_keeps_the_number_and_shows_hex() -> None:
    err = StatusError("C-STORE failed", status=0xA702, peer="127.0.0.1:104")
    assert err.status == 0xA702
    assert str(err) == "C-STORE failed (status=0xA702, peer=127.0.0.1:104)"
    hl7 = StatusError("order refused", status="AE")
    assert hl7.status == "AE" and hl7.context["status"] == "AE"


EXAMPLES = [
    StatusError("C-FIND failed", status=0xC000, peer="p"),
    AssociationRejected("association rejected: permanent, calling AE title not recognised",
                        result=1, source=1, reason=3, peer="p", called_ae="X"),
    DicomTimeout("timed out", peer="p", timeout=0.5),
    MllpUnreachable("cannot connect: refused", peer="p"),
    PortInUse("cannot listen on 127.0.0.1:104", host="127.0.0.1", port=104),
    Hl7Error("bad PID", hl7_code=102, location="PID^1^3"),
    ScenarioError("unknown step", file="a.yaml", line=3, field="do"),
]


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_typed_fields_survive_the_control_api_and_pickling(error: PacsimError) -> None:
    over_wire = error_from_problem(json.loads(json.dumps(problem(500, error))))
    pickled = pickle.loads(pickle.dumps(error))
    for copy in (over_wire, pickled):
        assert type(copy) is type(error)
        assert str(copy) == str(error) and copy.context == error.context
        for name in type(error).attributes:
            assert getattr(copy, name) == getattr(error, name), name
