"""The playbook's third UAT case, "a referring physician pulling an image on a tablet".

The scenario runs end to end (HL7 admit and order, worklist, MPPS, C-STORE, then
QIDO-RS and WADO-RS from the tablet viewer) on the built-in target's embedded
DICOMweb and on a real Orthanc with its DICOMweb plugin; a wrong expectation must
fail the run with what was seen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.scenario import load_scenario
from simulators.scenario.environment import run_in_environment
from tests.helpers import require_tool
from tests.integration.test_scenarios import ROOT, explain

SCENARIO = ROOT / "scenarios" / "uat-referring-physician-tablet.yaml"


def _open_study_events(result) -> set[str]:
    step = next(s for s in result.all_steps() if s.do == "viewer.open_study")
    return {e.kind for e in step.events if e.actor == "tablet"}


def test_tablet_case_passes_on_builtin() -> None:
    result = run_in_environment(load_scenario(SCENARIO), step_timeout=60)
    assert result.exit_code == 0, explain(result)
    assert {s.status for s in result.all_steps()} == {"passed"}, explain(result)
    assert {"dicomweb.qido", "dicomweb.wado"} <= _open_study_events(result)


@pytest.mark.orthanc
def test_tablet_case_passes_on_orthanc_dicomweb() -> None:
    require_tool("Orthanc")
    scenario = load_scenario(SCENARIO).with_environment(target="orthanc")
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    opened = next(s for s in result.all_steps() if s.do == "viewer.open_study")
    assert opened.status == "passed", explain(result)
    wado = [e for e in opened.events if e.kind == "dicomweb.wado" and e.actor == "tablet"]
    assert wado and wado[-1].peer.startswith("127.0.0.1:") and wado[-1].bytes > 0


def test_tablet_case_fails_when_the_study_is_incomplete(tmp_path: Path) -> None:
    # one attempt (no retries): the failure must be the expectation, not the clock
    text = SCENARIO.read_text().replace("      instances: 3\n", "      instances: 4\n") \
        .replace("    within: 20s\n", "")
    path = tmp_path / "tablet-wrong.yaml"
    path.write_text(text)
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "general-hospital.yaml").write_text(
        (ROOT / "scenarios" / "sites" / "general-hospital.yaml").read_text())
    result = run_in_environment(load_scenario(path), step_timeout=60)
    assert result.exit_code == 1
    last = result.steps[-1]
    failing = [(e.name, e.expected, e.seen) for e in last.expectations if not e.passed]
    assert failing == [("instances", 4, 3)], explain(result)
