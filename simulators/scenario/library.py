"""The scenario library listing behind ``pacsim list``: name and one-line description.

A broken file is listed with its error instead of hiding the rest of the library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulators.errors import ScenarioError
from simulators.scenario.loader import parse_yaml
from simulators.scenario.validate import load_scenario


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    """One library entry; ``error`` is set (and name falls back to the file) when invalid."""

    path: str
    name: str
    description: str
    error: str | None = None


def _one_line(text: str, limit: int = 100) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def list_scenarios(directory: str | Path) -> list[ScenarioSummary]:
    """Every ``*.yaml``/``*.yml`` scenario under ``directory`` (recursively), sorted by path.

    Files without ``pacsim:`` at the top (e.g. site topologies meant for ``include:``)
    are not scenarios and are left out.
    """

    root = Path(directory)
    summaries = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        try:
            head = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        except (ScenarioError, OSError, UnicodeDecodeError) as exc:
            summaries.append(ScenarioSummary(str(path), path.stem, "", str(exc)))
            continue
        if "pacsim" not in head:
            continue
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            summaries.append(ScenarioSummary(str(path), str(head.get("name") or path.stem),
                                             "", str(exc)))
            continue
        summaries.append(ScenarioSummary(str(path), scenario.name,
                                         _one_line(scenario.description)))
    return summaries


__all__ = ["ScenarioSummary", "list_scenarios"]
