"""Library scenarios against a real Orthanc (``target: orthanc``).

Orthanc 1.10 has no MPPS SCP: the site learns that by negotiation when it starts and
sends MPPS to the RIS instead (the PPS manager in IHE SWF), so the MPPS steps and the
RIS checks that depend on them run and pass. Storage, storage commitment (Orthanc has
it since 1.6), C-FIND, C-MOVE and C-GET are checked against what Orthanc really
answers. A scenario can still declare commitment unsupported (``supports:
{storage_commitment: false}``) and get the "unsupported" treatment, saying it was
declared. Each run starts its own Orthanc process.
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
    # Nothing in these scenarios needs a service Orthanc lacks that the RIS cannot serve.
    assert {s.status for s in steps} == {"passed"}, explain(result)
    # what Orthanc answered over the wire: stores accepted, queries answered
    stores = [e for s in steps for e in s.events if e.kind == "dicom.c-store"]
    assert stores and all(e.status == "0x0000" for e in stores)


def test_golden_path_on_orthanc_sends_mpps_to_the_ris_and_commits_on_orthanc() -> None:
    require_tool("Orthanc")
    scenario = load_scenario(ROOT / "scenarios" / "golden-path-ct.yaml").with_environment(
        target="orthanc")
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    by_type = {step.do: step for step in result.steps}
    assert by_type["mpps.start"].status == by_type["mpps.complete"].status == "passed"
    received = {(e.kind, e.actor) for step in result.steps for e in step.events}
    assert ("dicom.n-create", "ris") in received and ("dicom.n-set", "ris") in received
    commitment = by_type["commitment.request"]
    assert commitment.status == "passed"
    assert {e.name: e.seen for e in commitment.expectations} == {"committed": 4, "failed": 0}
    assert by_type["store.study"].status == by_type["target.find"].status == "passed"
    kinds = {e.kind for step in result.steps for e in step.events}
    assert "dicom.n-action" in kinds
    found = result.steps[-1]
    assert {e.name: e.seen for e in found.expectations}["instances"] == 4


def test_mammography_uat_completes_the_ris_order_through_mpps_on_orthanc() -> None:
    """Issue 17: the two RIS checks were N/A on Orthanc; MPPS now reaches the RIS."""
    require_tool("Orthanc")
    scenario = load_scenario(ROOT / "scenarios" / "uat-mammography-technologist.yaml"
                             ).with_environment(target="orthanc")
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    perform = next(step for step in result.steps if step.do == "modality.perform")
    assert perform.status == "passed"
    assert {e.name for e in perform.expectations} == {"mpps", "store", "commitment",
                                                      "max_duration"}
    state = next(step for step in result.steps if step.do == "ris.order_state")
    assert state.status == "passed" and state.expectations[0].seen == "COMPLETED"


def test_commitment_declared_unsupported_is_not_sent() -> None:
    require_tool("Orthanc")
    scenario = load_scenario(ROOT / "scenarios" / "golden-path-ct.yaml").with_environment(
        target="orthanc", supports={"storage_commitment": False})
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    commitment = next(step for step in result.steps if step.do == "commitment.request")
    assert commitment.status == "unsupported"
    assert commitment.message.startswith("not supported by target: target ORTHANC@")
    assert "storage_commitment: declared not supported" in commitment.message
    kinds = {e.kind for step in result.steps for e in step.events}
    assert "dicom.n-action" not in kinds
