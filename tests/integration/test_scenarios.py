"""Every library scenario against the built-in target, over real loopback sockets.

Each run starts the site (RIS, EHR, modalities, built-in archive, a viewer) on free
ports, sends real HL7 over MLLP and real DICOM, and checks what came back. The bad
input cases prove the other side: an unreachable target is an environment error
(exit 2), a wrong expectation fails the run (exit 1) with expected-vs-seen words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.scenario import load_scenario
from simulators.scenario.environment import run_in_environment
from simulators.scenario.results import RunResult
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted(p for p in (ROOT / "scenarios").glob("*.yaml"))
FIXTURES = ROOT / "fixtures" / "scenarios"


def explain(result: RunResult) -> str:
    """What went wrong, step by step, for the assertion message."""
    lines = [f"environment: {result.environment_error}"] if result.environment_error else []
    for step in result.all_steps():
        if not step.passed:
            lines.append(f"{step.status}: {step.name}: {step.message}")
    return "\n".join(lines)


def test_the_library_is_complete() -> None:
    names = {p.stem for p in LIBRARY}
    expected = {f"golden-path-{m}" for m in ("ct", "mr", "cr", "dx", "mg", "us")} | {
        "order-cancelled-before-exam", "patient-update-and-merge",
        "unscheduled-emergency-exam", "uat-mammography-technologist",
        "uat-ct-chest-with-priors"}
    assert expected <= names


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_library_scenario_passes_on_builtin(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.description.strip(), "every library scenario explains itself"
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    statuses = {step.status for step in result.all_steps()}
    assert statuses <= {"passed"}, explain(result)
    wire = [event for step in result.all_steps() for event in step.events]
    assert any(e.kind.startswith("hl7.") or e.kind.startswith("dicom.") for e in wire)


def test_golden_path_events_cover_every_transaction() -> None:
    result = run_in_environment(load_scenario(ROOT / "scenarios" / "golden-path-ct.yaml"))
    assert result.exit_code == 0, explain(result)
    kinds = {event.kind for step in result.all_steps() for event in step.events}
    for kind in ("dicom.c-find", "dicom.n-create", "dicom.c-store", "dicom.n-action",
                 "dicom.n-set"):
        assert kind in kinds, f"{kind} missing from {sorted(kinds)}"
    assert any(kind.startswith("hl7.") for kind in kinds)


def test_wrong_expectation_fails_with_expected_and_seen(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "golden-path-ct.yaml").read_text()
    text = text.replace("      instances: 4\n", "      instances: 5\n").replace(
        "within: 20s", "within: 1s")
    path = tmp_path / "golden-wrong.yaml"
    path.write_text(text)
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "general-hospital.yaml").write_text(
        (ROOT / "scenarios" / "sites" / "general-hospital.yaml").read_text())
    result = run_in_environment(load_scenario(path), step_timeout=60)
    assert result.exit_code == 1
    last = result.steps[-1]
    assert last.status == "failed"
    failing = [e for e in last.expectations if not e.passed]
    assert [(e.name, e.expected, e.seen) for e in failing] == [("instances", 5, 4)]
    assert "expected 5, saw 4" in last.message and "not met within 1.00s" in last.message
    assert 1 < last.attempts <= 20  # polled, and bounded


def test_unreachable_external_target_is_an_environment_error() -> None:
    closed = free_port()
    scenario = load_scenario(FIXTURES / "external-unreachable.yaml",
                             variables={"closed_port": closed})
    result = run_in_environment(scenario)
    assert result.exit_code == 2
    assert result.environment_error is not None
    assert f"NOBODY@127.0.0.1:{closed} is unreachable" in result.environment_error
    assert result.steps == []


def test_unknown_by_actor_in_a_step_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("pacsim: 1\nname: typo\nenvironment:\n  actors:\n"
                    "    ct1: {kind: modality, modality: CT, ae_title: CT1}\n"
                    "steps:\n  - {do: mwl.query, by: ct2}\n")
    from simulators.errors import ScenarioError
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.line == 7
    assert "no actor named 'ct2'" in str(caught.value) and "did you mean 'ct1'" in str(caught.value)
