"""Layering of the pieces issue 12 introduced: checked on the source, not by convention.

simulators.http sits with the protocols, below the actors: from pacsim it may import
only simulators.errors and simulators.events (and itself). The actors layer declares
its operations without knowing how they travel: it never imports simulators.runtime.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "simulators"


def _pacsim_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "simulators":
                found.update(f"simulators.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return {name for name in found if name == "simulators" or name.startswith("simulators.")}


def test_the_http_package_imports_only_errors_and_events() -> None:
    allowed = ("simulators.errors", "simulators.events", "simulators.http")
    for path in sorted((PACKAGE / "http").glob("*.py")):
        wrong = {name for name in _pacsim_imports(path)
                 if not any(name == a or name.startswith(a + ".") for a in allowed)}
        assert not wrong, f"{path.name} imports {sorted(wrong)}"


def test_the_actors_layer_does_not_import_the_runtime() -> None:
    for path in sorted((PACKAGE / "actors").glob("*.py")):
        wrong = {name for name in _pacsim_imports(path) if name.startswith("simulators.runtime")}
        assert not wrong, f"{path.name} imports {sorted(wrong)}"
