"""The migration scenarios (scenarios/migration/) on the built-in target, as CI runs them.

Each seeds a legacy archive actor, migrates it over real C-MOVE/C-GET on loopback and
ends in a validation report; the reports go to a temp folder, never into the repo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.scenario import load_scenario
from simulators.scenario.environment import run_in_environment
from simulators.scenario.steps.migration import REPORT_DIR_VARIABLE
from tests.integration.test_scenarios import explain

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios" / "migration").glob("*.yaml"))
RUNNABLE = [p for p in SCENARIOS if not p.stem.startswith("rules-")]


def test_the_migration_library_is_complete() -> None:
    assert {p.stem for p in RUNNABLE} == {
        "full-migration-rehearsal", "staged-two-years-first", "parallel-archive",
        "systematic-mismatch-caught-by-sample"}


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.stem for p in RUNNABLE])
def test_migration_scenario_passes(path: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REPORT_DIR_VARIABLE, str(tmp_path))
    result = run_in_environment(load_scenario(path), step_timeout=180)
    assert result.exit_code == 0, explain(result)
    reports = sorted(tmp_path.glob("*/validation.json"))
    assert reports, "every migration scenario ends in a validation report"
    last = json.loads(reports[-1].read_text())
    assert {"mismatches", "signed_off", "counts", "totals"} <= set(last)
    assert all(set(m) == {"study_uid", "class", "detail"} for m in last["mismatches"])
