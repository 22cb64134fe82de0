"""Test lanes: every test that needs an external tool carries that tool's marker.

Why: ``make test-fast`` and ``pytest -m "not docker"`` select by marker. A test that
runs DCMTK without the ``dcmtk`` marker would land in the fast lane anyway and skip
there (or fail, with ``CI=true``), and a test marked without need would silently
leave it. So this module reads the suite's source (ast) to find what each test
needs, and checks it against what pytest itself collects and marks:

* a test needs a lane when its body, a helper function or class it calls (in its own
  module or imported from ``tests.``), or a fixture it uses (transitively) calls
  ``require_tool(...)``, ``require_docker(...)``, ``run_dcmtk``, ``dcmtk_server``,
  ``OrthancProcess``, or starts a tool by name (``["storescp", ...]``,
  ``_run("echoscu", ...)``);
* a test must carry the markers of what its own body and helpers need
  (``@pytest.mark.dcmtk``, or the module's ``pytestmark``); a fixture must be
  declared with ``@needs(...)`` for what it needs, and tests/conftest.py marks the
  tests using it;
* the markers pytest ends up with (collected in a subprocess, with the fast lane's
  ``-m`` expression) are exactly the lanes each test needs, so the fast lane holds
  exactly the tests that need no tool.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import helpers
from tests.helpers import LANES, TOOL_LANES, require_tool

ROOT = Path(__file__).resolve().parents[2]
FAST_LANE = "not (" + " or ".join(LANES) + ")"
#: Calls that need a lane whatever their arguments.
ENTRY_POINTS = {"require_docker": "docker", "run_dcmtk": "dcmtk", "dcmtk_server": "dcmtk",
                "OrthancProcess": "orthanc"}
#: This module calls require_tool on purpose, where nothing is installed: it needs no tool.
SELF = Path(__file__).resolve()


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _mark_names(decorators: list[ast.expr]) -> set[str]:
    """``@pytest.mark.X`` / ``@pytest.mark.X(...)`` / ``pytestmark = [...]`` -> {X}."""
    names = set()
    for decorator in decorators:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) \
                and target.value.attr == "mark":
            names.add(target.attr)
    return names


def _is_fixture(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (isinstance(target, ast.Attribute) and target.attr == "fixture") or \
                (isinstance(target, ast.Name) and target.id == "fixture"):
            return True
    return False


@dataclass
class Module:
    """One test source file: its functions, classes, fixtures, imports and marks."""

    path: Path
    name: str
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    classes: dict[str, list[ast.FunctionDef]] = field(default_factory=dict)
    tests: dict[str, ast.FunctionDef] = field(default_factory=dict)
    fixtures: dict[str, ast.FunctionDef] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)
    marks: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, path: Path, root: Path) -> Module:
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        module = cls(path, name)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                if _is_fixture(node):
                    module.fixtures[node.name] = node
                elif node.name.startswith("test"):
                    module.tests[node.name] = node
                else:
                    module.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, ast.FunctionDef)]
                module.classes[node.name] = methods
                if node.name.startswith("Test"):
                    for method in methods:
                        if method.name.startswith("test"):
                            method.decorator_list = [*node.decorator_list,
                                                     *method.decorator_list]
                            module.tests[f"{node.name}::{method.name}"] = method
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] == "tests":
                for alias in node.names:
                    module.imports[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
                values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) \
                    else [node.value]
                module.marks |= _mark_names(values)
        return module


class Suite:
    """What every test of a tests/ tree needs, read from its source."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules = {m.name: m for m in (Module.parse(p, root)
                                            for p in sorted((root / "tests").rglob("*.py")))}
        self.problems: list[str] = []
        self._lanes: dict[int, set[str]] = {}

    # ---------------------------------------------------------------- what code needs
    def body_lanes(self, module: Module, node: ast.AST) -> set[str]:
        """Lanes a function, class method or fixture body needs, helpers included."""
        key = id(node)
        if key in self._lanes:
            return self._lanes[key]
        self._lanes[key] = lanes = set()  # a recursive helper ends here
        if module.path.resolve() == SELF:
            return lanes
        for inner in ast.walk(node) if not isinstance(node, ast.FunctionDef) \
                else (n for statement in node.body for n in ast.walk(statement)):
            if isinstance(inner, (ast.List, ast.Tuple)) and inner.elts:
                tool = _literal(inner.elts[0])
                if tool in TOOL_LANES:
                    lanes.add(TOOL_LANES[tool])
            if not isinstance(inner, ast.Call):
                continue
            name = _called_name(inner)
            first = _literal(inner.args[0]) if inner.args else None
            if first in TOOL_LANES:
                lanes.add(TOOL_LANES[first])
            if name == "require_tool":
                for argument in inner.args:
                    tool = _literal(argument)
                    if tool is None or tool not in TOOL_LANES:
                        self.problems.append(
                            f"{module.path}:{inner.lineno}: require_tool({ast.unparse(argument)})"
                            f" names no tool of TOOL_LANES; write the tool's name")
                    else:
                        lanes.add(TOOL_LANES[tool])
            elif name in ENTRY_POINTS:
                lanes.add(ENTRY_POINTS[name])
            elif isinstance(inner.func, ast.Name):
                lanes |= self._helper_lanes(module, inner.func.id)
        return lanes

    def _helper_lanes(self, module: Module, name: str) -> set[str]:
        if name in module.functions:
            return self.body_lanes(module, module.functions[name])
        if name in module.classes:
            return set().union(*(self.body_lanes(module, m) for m in module.classes[name]))
        if name in module.imports:
            source, original = module.imports[name]
            other = self.modules.get(source)
            if other is not None:
                return self._helper_lanes(other, original)
        return set()

    # ---------------------------------------------------------------- fixtures
    def fixture(self, module: Module, name: str) -> tuple[Module, ast.FunctionDef] | None:
        """The fixture a test of ``module`` gets for ``name``: its own, else a conftest's."""
        if name in module.fixtures:
            return module, module.fixtures[name]
        folder = module.path.parent
        while folder == self.root / "tests" or (self.root / "tests") in folder.parents:
            conftest = self.modules.get(
                ".".join((folder / "conftest.py").relative_to(self.root).with_suffix("").parts))
            if conftest is not None and name in conftest.fixtures:
                return conftest, conftest.fixtures[name]
            folder = folder.parent
        return None  # a pytest built-in (tmp_path, capsys...) or a plugin's

    def fixture_closure_lanes(self, module: Module, node: ast.FunctionDef,
                              seen: set[int] | None = None) -> set[str]:
        """Lanes of the fixtures ``node`` requests, and of the fixtures they request."""
        seen = set() if seen is None else seen
        lanes: set[str] = set()
        for argument in [*node.args.args, *node.args.kwonlyargs]:
            found = self.fixture(module, argument.arg)
            if found is None or id(found[1]) in seen:
                continue
            seen.add(id(found[1]))
            owner, fixture = found
            lanes |= self.body_lanes(owner, fixture)
            lanes |= self.fixture_closure_lanes(owner, fixture, seen)
        return lanes

    @staticmethod
    def declared(node: ast.FunctionDef) -> set[str]:
        """Lanes a fixture declares with ``@needs(...)``."""
        lanes = set()
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and _called_name(decorator) == "needs":
                for argument in decorator.args:
                    tool = _literal(argument)
                    lanes.add("docker" if tool == "docker" else TOOL_LANES.get(tool or "", "?"))
        return lanes

    # ---------------------------------------------------------------- the verdicts
    def expected(self) -> dict[tuple[str, str], set[str]]:
        """(file relative to the root, test name) -> the lanes the test needs."""
        return {(str(module.path.relative_to(self.root)), name):
                self.body_lanes(module, test) | self.fixture_closure_lanes(module, test)
                for module in self.modules.values() for name, test in module.tests.items()}

    def unmarked(self) -> list[str]:
        """Tests and fixtures whose marks or ``@needs`` differ from what they need."""
        problems = list(self.problems)
        for module in self.modules.values():
            for name, fixture in module.fixtures.items():
                needed, declared = self.body_lanes(module, fixture), self.declared(fixture)
                if needed != declared:
                    problems.append(f"{module.path}:{fixture.lineno}: fixture {name} needs "
                                    f"{sorted(needed)} but declares @needs for {sorted(declared)}")
            for name, test in module.tests.items():
                needed = self.body_lanes(module, test)
                marked = (module.marks | _mark_names(test.decorator_list)) & set(LANES)
                if not needed <= marked:
                    problems.append(f"{module.path}:{test.lineno}: {name} needs "
                                    f"{sorted(needed - marked)} but is not marked so "
                                    f"(@pytest.mark.<lane>)")
                stray = marked - needed - self.fixture_closure_lanes(module, test)
                if stray:
                    problems.append(f"{module.path}:{test.lineno}: {name} is marked "
                                    f"{sorted(stray)} but needs no such tool")
        return problems


def _collect(tmp_path: Path) -> tuple[dict[str, list[str]], set[str]]:
    """Collect the suite as ``pytest -m FAST_LANE --collect-only`` does, in a subprocess:
    every item's markers, and the node ids the fast lane selects."""
    plugin = tmp_path / "lanes_dump.py"
    plugin.write_text(
        "import json, os\n"
        "seen = {}\n"
        "def _keep(items):\n"
        "    for item in items:\n"
        "        seen[item.nodeid] = sorted({m.name for m in item.iter_markers()})\n"
        "def pytest_deselected(items):\n"
        "    _keep(items)\n"
        "def pytest_collection_finish(session):\n"
        "    _keep(session.items)\n"
        "    with open(os.environ['PACSIM_LANES_DUMP'], 'w') as out:\n"
        "        json.dump({'markers': seen,\n"
        "                   'selected': [i.nodeid for i in session.items]}, out)\n")
    dump = tmp_path / "lanes.json"
    env = {**os.environ, "PACSIM_LANES_DUMP": str(dump),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "lanes_dump", "-p", "no:cacheprovider", "-m", FAST_LANE,
                           "tests"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(dump.read_text())
    return result["markers"], set(result["selected"])


def _test_of(nodeid: str) -> tuple[str, str]:
    """``tests/x.py::Class::test_y[param]`` -> (``tests/x.py``, ``Class::test_y``)."""
    path, _, name = nodeid.partition("::")
    return path, name.split("[", 1)[0]


def test_every_test_and_fixture_carries_the_lanes_it_needs() -> None:
    suite = Suite(ROOT)
    problems = suite.unmarked()
    assert not problems, "\n".join(problems)
    # The analysis must find the tool users it exists for: one of each lane at least.
    needed = set().union(*suite.expected().values())
    assert needed == set(LANES), needed


def test_collected_markers_are_exactly_the_needed_lanes(tmp_path: Path) -> None:
    expected = Suite(ROOT).expected()
    markers, selected = _collect(tmp_path)
    wrong = []
    for nodeid, names in markers.items():
        key = _test_of(nodeid)
        assert key in expected, f"{nodeid}: a test form the source analysis does not know"
        if set(names) & set(LANES) != expected[key]:
            wrong.append(f"{nodeid}: marked {sorted(set(names) & set(LANES))}, "
                         f"needs {sorted(expected[key])}")
    assert not wrong, "\n".join(wrong)
    # -m FAST_LANE selects exactly the tests that need no tool, and all of them.
    assert selected == {n for n in markers if not expected[_test_of(n)]}
    assert len(selected) > 500 and len(markers) - len(selected) > 100, \
        (len(selected), len(markers))


# ---------------------------------------------------------------- the checker itself
def _tree(tmp_path: Path, files: dict[str, str]) -> Suite:
    for name, text in files.items():
        path = tmp_path / "tests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Suite(tmp_path)


def test_an_unmarked_tool_user_is_reported_wherever_the_call_hides(tmp_path: Path) -> None:
    """Why: the two tests above pass only if this checker can fail at all."""
    suite = _tree(tmp_path, {
        "conftest.py": "import pytest\n@pytest.fixture\ndef docker():\n    require_docker()\n",
        "util.py": "def validate(p):\n    return subprocess.run(['dciodvfy', p])\n",
        "test_x.py": (
            "import pytest\nfrom tests.util import validate\n"
            "def _find():\n    return run_dcmtk('findscu')\n"
            "class Peer:\n    def start(self):\n        OrthancProcess().start()\n"
            "@pytest.fixture\ndef scp():\n    require_tool('storescp')\n"
            "@pytest.fixture\n@needs('storescp')\ndef declared_scp():\n"
            "    require_tool('storescp')\n"
            "def test_direct():\n    require_tool('echoscu')\n"
            "def test_helper():\n    _find()\n"
            "def test_imported():\n    validate('x')\n"
            "def test_class():\n    Peer()\n"
            "def test_fixture(scp):\n    pass\n"
            "def test_conftest_fixture(docker):\n    pass\n"
            "def test_declared_fixture(declared_scp):\n    pass\n"
            "@pytest.mark.prometheus\ndef test_marked_needlessly():\n    pass\n"
            "@pytest.mark.dcmtk\ndef test_marked():\n    require_tool('storescu')\n"
            "def test_nothing(tmp_path):\n    pass\n"),
    })
    problems = "\n".join(suite.unmarked())
    for name in ("test_direct needs ['dcmtk']", "test_helper needs ['dcmtk']",
                 "test_imported needs ['dciodvfy']", "test_class needs ['orthanc']",
                 "fixture scp needs ['dcmtk'] but declares @needs for []",
                 "fixture docker needs ['docker'] but declares @needs for []",
                 "test_marked_needlessly is marked ['prometheus']"):
        assert name in problems, (name, problems)
    for fine in ("test_marked ", "test_nothing", "test_fixture ", "test_conftest_fixture",
                 "test_declared_fixture", "declared_scp"):
        assert fine not in problems, (fine, problems)
    expected = suite.expected()
    assert expected[("tests/test_x.py", "test_fixture")] == {"dcmtk"}
    assert expected[("tests/test_x.py", "test_conftest_fixture")] == {"docker"}
    assert expected[("tests/test_x.py", "test_nothing")] == set()


def test_a_tool_without_a_lane_is_refused() -> None:
    """A new tool must get a lane first, or its tests could not be deselected."""
    with pytest.raises(ValueError, match="no lane"):
        require_tool("pacsim-no-such-tool")


# ---------------------------------------------------------------- skip here, fail in CI
@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception),
                                         ("true", pytest.fail.Exception)])
def test_a_missing_tool_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch,
                                                   ci: str, outcome: type) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(helpers.shutil, "which", lambda name: None)
    monkeypatch.setattr(helpers, "find_dcmtk_tool", lambda name: None)  # DCMTK: by abs. path
    with pytest.raises(outcome, match=r"storescu is not installed \(apt-get install dcmtk\)"):
        require_tool("storescu")
