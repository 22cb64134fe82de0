"""The annotated scenario in the README is real: it loads, validates and passes on builtin."""

from __future__ import annotations

import re
from pathlib import Path

from simulators.scenario import load_scenario
from simulators.scenario.environment import run_in_environment

ROOT = Path(__file__).resolve().parents[2]


def readme_scenario() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    scenario = [b for b in blocks if b.startswith("pacsim: 1")]
    assert len(scenario) == 1, "the README should hold exactly one annotated scenario"
    return scenario[0]


def test_readme_scenario_runs_and_passes() -> None:
    # placed beside the library so its include resolves as it would for a user
    scenario = load_scenario(ROOT / "scenarios" / "readme-example.yaml", text=readme_scenario())
    result = run_in_environment(scenario)
    assert result.exit_code == 0, [(s.name, s.status, s.message) for s in result.steps]
    assert [s.status for s in result.steps] == ["passed"] * 5
