"""Library scenarios against a real Orthanc (``target: orthanc``).

Orthanc 1.10 has no MPPS SCP: those steps must be reported "unsupported" (never
failed) while storage, storage commitment (Orthanc has it since 1.6), C-FIND, C-MOVE
and C-GET are checked against what Orthanc really answers. A scenario can still
declare commitment unsupported (``supports: {storage_commitment: false}``) and get the
same "unsupported" treatment. Each run starts its own Orthanc process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.scenario import load_scenario
from simulators.scenario.environment import run_in_environment
from tests.helpers import require_tool
from tests.integration.test_scenarios import ROOT, explain

pytestmark = pytest.mark.orthanc

#: The golden path plus the scenarios exercising query/retrieve and unscheduled exams.
ON_ORTHANC = ["golden-path-ct", "uat-ct-chest-with-priors", "unscheduled-emergency-exam",
              "uat-mammography-technologist"]


@pytest.mark.parametrize("name", ON_ORTHANC)
def test_scenario_passes_on_orthanc(name: str) -> None:
    require_tool("Orthanc")
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml").with_environment(
        target="orthanc")
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    steps = list(result.all_steps())
    assert {s.status for s in steps} <= {"passed", "unsupported"}, explain(result)
    for step in steps:
        if step.status == "unsupported":
            assert step.message.startswith("not supported by target"), step.message
            assert step.do in ("mpps.start", "mpps.complete", "ris.order_state",
                               "mwl.query"), step.do
    # what Orthanc answered over the wire: stores accepted, queries answered
    stores = [e for s in steps for e in s.events if e.kind == "dicom.c-store"]
    assert stores and all(e.status == "0x0000" for e in stores)


def test_golden_path_commits_on_orthanc_and_reports_mpps_unsupported() -> None:
    require_tool("Orthanc")
    scenario = load_scenario(ROOT / "scenarios" / "golden-path-ct.yaml").with_environment(
        target="orthanc")
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    by_type = {step.do: step for step in result.steps}
    assert by_type["mpps.start"].status == by_type["mpps.complete"].status == "unsupported"
    commitment = by_type["commitment.request"]
    assert commitment.status == "passed"
    assert {e.name: e.seen for e in commitment.expectations} == {"committed": 4, "failed": 0}
    assert by_type["store.study"].status == by_type["target.find"].status == "passed"
    kinds = {e.kind for step in result.steps for e in step.events}
    assert "dicom.n-create" not in kinds and "dicom.n-action" in kinds
    found = result.steps[-1]
    assert {e.name: e.seen for e in found.expectations}["instances"] == 4


def test_perform_step_notes_parts_orthanc_does_not_take(tmp_path: Path) -> None:
    require_tool("Orthanc")
    scenario = load_scenario(ROOT / "scenarios" / "uat-mammography-technologist.yaml"
                             ).with_environment(target="orthanc")
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    perform = next(step for step in result.steps if step.do == "modality.perform")
    assert perform.status == "passed"
    assert any("mpps: not supported by target" in note for note in perform.notes)
    assert {e.name for e in perform.expectations} == {"store", "commitment", "max_duration"}


def test_commitment_declared_unsupported_is_not_sent() -> None:
    require_tool("Orthanc")
    scenario = load_scenario(ROOT / "scenarios" / "golden-path-ct.yaml").with_environment(
        target="orthanc", supports={"storage_commitment": False})
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    commitment = next(step for step in result.steps if step.do == "commitment.request")
    assert commitment.status == "unsupported"
    assert commitment.message == "not supported by target: storage_commitment"
