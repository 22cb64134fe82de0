"""Fault scenarios over real loopback sockets: the library, verdicts and invariants.

* every scenario in ``scenarios/faults`` passes against the built-in target, and the
  store/association one against a real Orthanc (MPPS reported "not supported");
* a scenario's ``faults:`` reach the modality and fire on the exchanges they target;
* a deliberately non-conformant MPPS SCP (a small pynetdicom acceptor that answers 0000
  to everything, including an N-SET after COMPLETED) makes ``expect: conformant`` fail
  with expected-vs-answered words;
* ``worklist.unchanged`` fails and names the item (and field) changed behind its back.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, Verification

from simulators.scenario import load_scenario
from simulators.scenario.environment import run_in_environment
from simulators.scenario.results import RunResult, StepResult
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
FAULT_LIBRARY = sorted(p for p in (ROOT / "scenarios" / "faults").glob("*.yaml"))
ORTHANC_APPLICABLE = ROOT / "scenarios" / "faults" / "store-and-association-faults.yaml"


def explain(result: RunResult) -> str:
    lines = [f"environment: {result.environment_error}"] if result.environment_error else []
    lines += [f"{s.status}: {s.name}: {s.message}" for s in result.all_steps() if not s.passed]
    return "\n".join(lines)


def step_named(result: RunResult, prefix: str) -> StepResult:
    return next(s for s in result.all_steps() if s.name.startswith(prefix))


def run_text(tmp_path: Path, text: str, **overrides: Any) -> RunResult:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    scenario = load_scenario(path)
    if overrides:
        scenario = scenario.with_environment(**overrides)
    return run_in_environment(scenario, step_timeout=60)


def test_the_fault_library_has_the_playbook_cases() -> None:
    names = {p.stem for p in FAULT_LIBRARY}
    assert {"connection-ct1", "connection-mr1", "connection-cr1",
            "connection-ct-old-bad-scanner", "group-bad-scanner-among-good-modalities",
            "bad-hl7-sender", "store-and-association-faults"} <= names


@pytest.mark.parametrize("path", FAULT_LIBRARY, ids=[p.stem for p in FAULT_LIBRARY])
def test_fault_scenario_passes_on_builtin(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.description.strip()
    result = run_in_environment(scenario, step_timeout=60)
    assert result.exit_code == 0, explain(result)
    assert {s.status for s in result.all_steps()} == {"passed"}, explain(result)
    notes = [note for s in result.all_steps() for note in s.notes]
    if "bad-scanner" in path.stem or "hl7-sender" in path.stem:
        # The faults really fired and were judged, one note per fault.
        assert sum(": conformant (answered" in note for note in notes) >= 3, notes


def test_the_group_scenario_judges_the_bad_scanner_while_others_work() -> None:
    result = run_in_environment(load_scenario(
        ROOT / "scenarios" / "faults" / "group-bad-scanner-among-good-modalities.yaml"))
    assert result.exit_code == 0, explain(result)
    round3 = step_named(result, "The old CT names another patient")
    assert any(n.startswith("fault mpps.wrong-patient: conformant") for n in round3.notes)
    assert any(n.startswith("fault mpps.set-after-final: conformant (answered 0110")
               for n in round3.notes)
    # The second N-SET after COMPLETED went over the wire and was refused with 0110.
    assert any(e.kind == "dicom.n-set" and e.status.upper().endswith("0110")
               for e in round3.events), [(e.kind, e.status) for e in round3.events]
    unchanged = result.steps[-1]
    assert unchanged.do == "worklist.unchanged" and unchanged.status == "passed"


@pytest.mark.orthanc
def test_orthanc_runs_the_store_and_association_faults_with_mpps_not_supported() -> None:
    """The MPPS fault sent *at Orthanc* is not supported there; the exam's own MPPS goes
    to the RIS (Orthanc was probed: no MPPS SCP) and is judged there."""
    require_tool("Orthanc")
    result = run_in_environment(load_scenario(ORTHANC_APPLICABLE).with_environment(
        target="orthanc"), step_timeout=120)
    assert result.exit_code == 0, explain(result)
    probe = result.steps[0]
    assert "1 not supported by target, 3 conformant" in probe.message, probe.message
    exam = step_named(result, "CT room 1 performs it")
    assert not any("not supported by target" in n for n in exam.notes), exam.notes
    mpps = next(e for e in exam.expectations if e.name == "mpps")
    assert mpps.passed
    assert any(e.kind == "dicom.n-create" and e.actor == "ris" for e in exam.events)


SMALL_SITE = """
pacsim: 1
name: {name}
description: a small site for one fault test
environment:
  seed: 7
  patients: {{jane: 0, john: 1, bystander: 2}}
  actors:
    ris: {{kind: ris, ae_title: T_RIS}}
    ct_bad: {{kind: modality, modality: CT, ae_title: CT_BAD, station: CT_BAD,
              faults: [{faults}]}}
"""


def test_scenario_faults_reach_the_modality_and_fire_on_their_exchange(tmp_path: Path) -> None:
    text = SMALL_SITE.format(name="faults reach the actor",
                             faults="mpps.set-after-final, {id: mpps.wrong-patient, "
                                    "nth: 2}") + """
steps:
  - {do: hl7.order, patient: $jane, for: ct_bad, save: {accession: $a1}}
  - {do: hl7.order, patient: $john, for: ct_bad, save: {accession: $a2}}
  - {name: first exam, do: modality.perform, by: ct_bad, accession: $a1, expect: conformant}
  - {name: second exam, do: modality.perform, by: ct_bad, accession: $a2, expect: conformant}
"""
    result = run_text(tmp_path, text)
    assert result.exit_code == 0, explain(result)
    first, second = step_named(result, "first exam"), step_named(result, "second exam")
    # set-after-final fires on every N-SET; wrong-patient only on the 2nd N-CREATE.
    assert [n.split(":")[0] for n in first.notes] == ["fault mpps.set-after-final"]
    assert sorted(n.split(":")[0] for n in second.notes) == [
        "fault mpps.set-after-final", "fault mpps.wrong-patient"]
    n_sets = [e.status for e in first.events if e.kind == "dicom.n-set" and e.actor == "ct_bad"]
    assert len(n_sets) == 2 and n_sets[1].upper().endswith("0110"), n_sets


def test_faults_on_an_actor_that_cannot_carry_them_is_an_environment_error(
        tmp_path: Path) -> None:
    text = """
    pacsim: 1
    name: faults on a viewer
    environment:
      actors:
        viewer1: {kind: viewer, ae_title: VIEW1, faults: [mpps.orphan]}
    steps:
      - {do: note, message: never runs}
    """
    result = run_text(tmp_path, text)
    assert result.exit_code == 2
    assert "viewer1" in (result.environment_error or "") and "cannot carry faults" in (
        result.environment_error or "")


@pytest.fixture
def lenient_mpps_scp() -> Iterator[int]:
    """A non-conformant MPPS SCP: every N-CREATE and N-SET gets 0000, even after
    COMPLETED (PS3.4 F.7.2.2.2 requires 0110 there)."""
    def created(event: Any) -> tuple[int, Dataset]:
        return 0x0000, event.attribute_list

    def updated(event: Any) -> tuple[int, Dataset]:
        return 0x0000, event.modification_list

    ae = AE(ae_title="LENIENT")
    ae.add_supported_context(ModalityPerformedProcedureStep)
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False,
                             evt_handlers=[(evt.EVT_N_CREATE, created), (evt.EVT_N_SET, updated)])
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_non_conformant_answer_fails_the_verdict_with_expected_and_answered(
        tmp_path: Path, lenient_mpps_scp: int) -> None:
    text = SMALL_SITE.format(name="lenient target", faults="mpps.set-after-final") + f"""
  target: {{external: {{dicom: LENIENT@127.0.0.1:{lenient_mpps_scp}}}}}
  supports: {{storage_commitment: false}}
steps:
  - {{do: hl7.order, patient: $jane, for: ct_bad, save: {{accession: $acc}}}}
  - {{name: start, do: mpps.start, by: ct_bad, accession: $acc, expect: conformant}}
  - {{name: late update, do: mpps.complete, by: ct_bad, exam: $acc, expect: conformant}}
"""
    result = run_text(tmp_path, text)
    assert result.exit_code == 1, explain(result)
    assert step_named(result, "start").status == "passed"
    late = step_named(result, "late update")
    assert late.status == "failed"
    failing = [e for e in late.expectations if not e.passed]
    assert [e.expected for e in failing] == ["conformant"]
    message = late.message
    assert "mpps.set-after-final" in message and "expected 0110" in message, message
    assert "answered 0000" in message and "non-conformant" in message, message


def test_worklist_unchanged_names_the_item_changed_behind_its_back(tmp_path: Path) -> None:
    text = SMALL_SITE.format(name="changed behind its back", faults="") + """
steps:
  - {do: hl7.order, patient: $jane, for: ct_bad, save: {accession: $mine}}
  - {do: hl7.order, patient: $bystander, for: ct_bad, save: {accession: $theirs}}
  - {do: worklist.snapshot, save: {snapshot: $before}}
  - name: the bystander's name is changed by someone else
    do: hl7.update
    patient: $bystander
    changes: {family_name: CHANGED}
  - {name: nothing else changed, do: worklist.unchanged, since: $before,
     except: {accession: $mine}}
"""
    result = run_text(tmp_path, text)
    assert result.exit_code == 1, explain(result)
    step = step_named(result, "nothing else changed")
    assert step.status == "failed"
    message = step.message
    # Exactly the bystander's item and order are named, with the field and both values.
    assert message.count("worklist item AC") == 1 and message.count("order AC") == 1, message
    assert "PatientName" in message and "CHANGED" in message, message
    assert "in the RIS: patient.family_name" in message, message
    assert [e.seen for e in step.expectations if not e.passed] == ["2 changed"]
