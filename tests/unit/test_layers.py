"""The layer contract and its two rules, checked where `make test` runs them too.

CI runs `lint-imports` as its own step (.ci/run); this test makes a local `make test`
catch a wrong-way import before a push. The second rule is not something import-linter
sees: an import placed inside a function hides a cycle from a reader, so it is allowed
only for an optional or heavy dependency, with a comment saying so.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The pytest plugin loads in every pytest session of a project that installs pacsim:
#: its fixtures import pacsim lazily on purpose (its module docstring says why).
LAZY_MODULES = {"simulators/testing/plugin.py"}


def test_lint_imports_keeps_the_layer_contract() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) \
        or shutil.which("lint-imports")
    assert lint, "lint-imports is not installed (pip install -e '.[test]')"
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def _imports_inside_functions() -> list[str]:
    found = []
    for path in sorted((ROOT / "simulators").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        if relative in LAZY_MODULES:
            continue
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source, relative)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    line = lines[inner.lineno - 1]
                    before = lines[inner.lineno - 2].strip() if inner.lineno > 1 else ""
                    if "#" not in line and not before.startswith("#"):
                        found.append(f"{relative}:{inner.lineno}: {line.strip()}")
    return found


def test_imports_inside_functions_say_why() -> None:
    unexplained = _imports_inside_functions()
    assert not unexplained, ("imports inside functions need a reason in a comment "
                             "(optional or heavy dependency), or belong at the top:\n"
                             + "\n".join(unexplained))
