"""Fault steps without sockets: scenario fault entries, verdict rules, invariant wording,
and the ``expect: conformant`` shorthand in the scenario format."""

from __future__ import annotations

import pytest

from simulators.actors.ehr import AckResult
from simulators.errors import ConfigError, ScenarioError
from simulators.injection.catalogue import BY_ID
from simulators.faults.invariants import Snapshot, changes, order_summary
from simulators.injection.model import CONFORMANT, NON_CONFORMANT
from simulators.injection.profile import parse_faults, scenario_faults
from simulators.faults.verdicts import (
    NOT_EXERCISED, UNSENT, MppsAnswers, judge_hl7, judge_mpps,
)
from simulators.scenario.models import FaultRef
from simulators.scenario.registry import default_registry
from simulators.scenario.steps.faults import allowed_keys, status_from_word
from simulators.world.world import World

CREATE, SET = "modality.mpps.n-create", "modality.mpps.n-set"


# ------------------------------------------------------------- scenario fault entries
def test_scenario_fault_entries_become_profile_rules() -> None:
    refs = [FaultRef(id="mpps.set-after-final"),
            FaultRef(id="mpps.wrong-patient", only={"nth": 2}),
            FaultRef(id="mpps.bad-vr", rate=0.5, only={"every": 3, "seed": 9}),
            FaultRef(id="malformed-mpps-scanner")]
    entries = scenario_faults(refs, actor="ct_bad")
    assert entries[:3] == ({"id": "mpps.set-after-final", "rate": 1.0},
                           {"id": "mpps.wrong-patient", "rate": 1.0, "nth": 2},
                           {"id": "mpps.bad-vr", "rate": 0.5, "every": 3, "seed": 9})
    assert entries[3] == "malformed-mpps-scanner"
    rules = parse_faults(entries)
    assert rules[1].nth == 2 and rules[2].every == 3 and len(rules) > 4


@pytest.mark.parametrize("ref, words", [
    (FaultRef(id="mpps.bad-vr", only={"patient": "x"}), "unknown targeting patient"),
    (FaultRef(id="malformed-mpps-scanner", rate=0.5), "has its own targeting"),
])
def test_bad_scenario_fault_entries_are_config_errors(ref: FaultRef, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        scenario_faults([ref], actor="ct_bad")


# ------------------------------------------------------------------ MPPS verdicts
def test_set_after_final_answered_0000_is_non_conformant_with_expected_and_answered() -> None:
    verdict = judge_mpps([(SET, "mpps.set-after-final", 1)],
                         MppsAnswers(create=0, final=0, extra={"mpps.set-after-final": 0}))
    assert not verdict.passed and verdict.verdict == NON_CONFORMANT
    [problem] = verdict.problems()
    assert "expected 0110" in problem and "answered 0000" in problem


def test_set_after_final_answered_0110_is_conformant() -> None:
    verdict = judge_mpps([(SET, "mpps.set-after-final", 1)],
                         MppsAnswers(create=0, final=0, extra={"mpps.set-after-final": 0x0110}))
    assert verdict.passed and [o.verdict for o in verdict.outcomes] == [CONFORMANT]


def test_sequence_fault_after_a_refused_request_is_not_exercised_not_failed() -> None:
    verdict = judge_mpps([(SET, "mpps.set-create-only-attr", 2), (SET, "mpps.set-after-final", 2)],
                         MppsAnswers(create=0, final=0x0106))
    assert verdict.passed
    assert [o.verdict for o in verdict.outcomes] == [CONFORMANT, NOT_EXERCISED]


def test_a_refused_well_formed_request_fails_even_without_faults() -> None:
    verdict = judge_mpps([], MppsAnswers(create=0, final=0x0110))
    assert not verdict.passed
    assert verdict.problems() == ["a well-formed N-SET was refused with 0110"]
    assert judge_mpps([], MppsAnswers(create=0, final=UNSENT)).passed


def test_create_fault_judged_on_the_create_status() -> None:
    accepted = judge_mpps([(CREATE, "mpps.create-not-in-progress", 1)], MppsAnswers(create=0))
    refused = judge_mpps([(CREATE, "mpps.create-not-in-progress", 1)],
                         MppsAnswers(create=0x0106))
    assert not accepted.passed and refused.passed


# ------------------------------------------------------------------- HL7 verdicts
def test_hl7_faults_are_judged_on_the_ack_of_their_message() -> None:
    acks = [AckResult("AE", "1", 101), AckResult("AA", "2"), AckResult("", "3", text="no ACK")]
    fired = [("ehr.hl7", "hl7.required-missing", 1), ("ehr.hl7", "hl7.bad-table-value", 2),
             ("mllp.frame", "mllp.no-start-block", 3)]
    verdict = judge_hl7(fired, acks)
    assert [o.verdict for o in verdict.outcomes] == [CONFORMANT, NON_CONFORMANT, CONFORMANT]
    assert "expected AE ERR 103" in verdict.problems()[0]


# ------------------------------------------------------------------- invariants
def test_changes_name_the_item_the_field_and_both_values() -> None:
    world = World(3)
    order = world.order(world.patient(0), "CT", station_ae="CT1", station_name="CT1", index=0)
    moved = world.order(world.patient(1), "CT", station_ae="CT1", station_name="CT1", index=0)
    before = Snapshot(orders={order.accession: order_summary(order)})
    after = Snapshot(orders={order.accession: order_summary(moved)})
    [line] = changes(before, after)
    assert line.startswith(f"order {order.accession} changed in the RIS: patient.patient_id ")
    assert repr(order.patient.patient_id) in line and repr(moved.patient.patient_id) in line
    assert changes(before, after, allowed=[order.accession]) == []


def test_allowed_keys_reads_accessions_in_every_written_form() -> None:
    assert allowed_keys({"accession": "A1"}) == {"A1"}
    assert allowed_keys(["A1", {"accession": "A2", "timeout": 60.0}]) == {"A1", "A2"}
    with pytest.raises(ScenarioError):
        allowed_keys({"patient": "P"})


def test_status_words_read_back_as_codes() -> None:
    assert [status_from_word(w) for w in ("success", "0x0110", "0x-001", "unsupported", None)] \
        == [0, 0x0110, -1, None, None]


# ------------------------------------------------------------ the scenario format
def _step(data: dict) -> object:  # type: ignore[type-arg]
    return default_registry.get(data["do"]).model_validate(data)


def test_expect_conformant_shorthand_on_exam_and_mpps_steps() -> None:
    perform = _step({"do": "modality.perform", "by": "ct", "accession": "$a",
                     "expect": "conformant"})
    complete = _step({"do": "mpps.complete", "by": "ct", "exam": "$a", "expect": "conformant"})
    probe = _step({"do": "faults.probe", "faults": "mpps.*", "expect": "conformant"})
    assert perform.expected() == {"mpps": "conformant"}  # type: ignore[attr-defined]
    assert complete.expected() == {"status": "conformant"}  # type: ignore[attr-defined]
    assert probe.expected() == {"verdict": "conformant"}  # type: ignore[attr-defined]
    still_a_list = _step({"do": "modality.perform", "by": "ct", "accession": "$a",
                          "expect": {"mpps": ["success", "success"]}})
    assert still_a_list.expected() == {"mpps": ["success", "success"]}  # type: ignore[attr-defined]


def test_every_catalogue_fault_the_profile_names_exists() -> None:
    for rule in parse_faults(["malformed-mpps-scanner", "bad-hl7-sender"]):
        assert rule.id in BY_ID
