"""The package's public API is exactly what __all__ says, and errors carry context."""

from __future__ import annotations

import simulators
from simulators.errors import PacsimError, ProtocolError, ScenarioError


def test_exported_members_are_exactly_all() -> None:
    public = {name for name in dir(simulators) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(simulators, name)).__name__ == "module"}
    assert public - modules == set(simulators.__all__) - {"__version__"}


def test_every_exported_error_derives_from_the_root() -> None:
    for name in simulators.__all__:
        obj = getattr(simulators, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, PacsimError), name


def test_errors_render_context_in_one_line() -> None:
    err = ProtocolError("C-STORE failed", peer="127.0.0.1:104", status="0xA700")
    assert str(err) == "C-STORE failed (peer=127.0.0.1:104, status=0xA700)"
    scenario = ScenarioError("unknown step type 'mwl.qurey'", file="a.yaml", line=12, field="steps[2].do")
    assert str(scenario) == "a.yaml:12: steps[2].do: unknown step type 'mwl.qurey'"
