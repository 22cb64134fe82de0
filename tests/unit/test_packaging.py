"""What pacsim installs: every import declared, the pins its promises depend on, no
stray top-level module. Read from pyproject.toml and the sources, so a new import
without a declared dependency fails here rather than on a user's fresh install."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: Imported only where the optional extra is installed (containers) or by pytest itself.
OPTIONAL = {"docker": "docker", "testcontainers": "docker", "pytest": None}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level import name -> files importing it, for every non-stdlib, non-pacsim import."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "simulators").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "simulators" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_dependency() -> None:
    declared = {_name(r) for r in PROJECT["dependencies"]}
    extras = {extra: {_name(r) for r in reqs}
              for extra, reqs in PROJECT["optional-dependencies"].items()}
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(_third_party_imports().items()):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if dists & declared:
            continue
        extra = OPTIONAL.get(module, "?")
        if module in OPTIONAL and (extra is None or dists & extras[extra]):
            continue
        missing.append(f"{module} ({', '.join(sorted(dists))}) imported by {sorted(files)[0]}")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_pins_that_promises_depend_on() -> None:
    requirements = {_name(r): r for r in PROJECT["dependencies"]}
    # same seed, same world: faker's data changes between major versions
    assert re.search(r"<\s*41\b", requirements["faker"]), requirements["faker"]
    # the fast DICOM layer uses pynetdicom's private _globals: pin the minor version
    assert re.search(r"<\s*3\.1\b", requirements["pynetdicom"]), requirements["pynetdicom"]
    testcontainers = [r for r in PROJECT["optional-dependencies"]["docker"]
                      if _name(r) == "testcontainers"]
    assert testcontainers and "<5" in testcontainers[0].replace(" ", "")


def test_console_script_points_into_the_package_and_no_top_level_cli_is_installed() -> None:
    assert PROJECT["scripts"]["pacsim"] == "simulators.cli:main"
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py-modules" not in setuptools, "a top-level module would land in site-packages"
    assert setuptools["packages"]["find"]["include"] == ["simulators*"]
