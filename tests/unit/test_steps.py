"""Actor step types without the wire: validation, patient names, matching keys, checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from simulators.errors import ScenarioError
from simulators.scenario import default_registry, json_schema, load_scenario
from simulators.scenario.context import Variables
from simulators.site.site import PatientView, patient_resolver
from simulators.scenario.expectations import check_contains, compare
from simulators.scenario.models import Environment
from simulators.scenario.steps._support import describe_dataset, status_word, translate_match
from simulators.scenario.validate import check_scenario
from simulators.world.world import World

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "scenarios"
ACTOR_STEPS = ("hl7.admit", "hl7.register", "hl7.update", "hl7.merge", "hl7.order",
               "hl7.cancel", "mwl.query", "modality.perform", "mpps.start", "store.study",
               "commitment.request", "mpps.complete", "mpps.discontinue",
               "modality.unscheduled", "target.find", "target.retrieve", "target.seed_priors",
               "ris.order_state")


def test_every_actor_step_is_registered_and_in_the_schema() -> None:
    assert set(ACTOR_STEPS) <= set(default_registry.names())
    schema_text = str(json_schema())
    for name in ACTOR_STEPS:
        assert f"'{name}'" in schema_text


def test_transactions_each_step_requires() -> None:
    def requires(name: str, **fields: object) -> tuple[str, ...]:
        return default_registry.get(name).model_validate(fields).requires

    assert requires("mpps.start", accession="$a") == ("mpps",)
    assert requires("mpps.complete", exam="$a") == ("mpps",)
    assert requires("commitment.request", exam="$a") == ("storage_commitment",)
    assert requires("target.find") == ("query",)
    assert requires("store.study", exam="$a") == ()
    assert requires("ris.order_state", accession="$a", needs=["mpps"]) == ("mpps",)


def test_supports_are_declarations_never_assumptions_about_a_target_kind() -> None:
    """What Orthanc takes is learned by negotiation at start, not written down here."""
    assert Environment(target="orthanc").declarations() == {}
    assert Environment(target="orthanc").supported("dicomweb")  # pacsim turns it on
    declared = Environment(target="orthanc", supports={"mpps": True, "get": False})
    assert declared.declarations() == {"mpps": True, "get": False}
    assert declared.supported("mpps") and not declared.supported("get")


def test_wrong_types_in_actor_steps_name_line_and_field() -> None:
    problems = check_scenario(FIXTURES / "bad" / "wrong-step-types.yaml")
    found = {(p.line, p.field) for p in problems}
    assert (10, "steps[0].images.series") in found
    assert (14, "steps[1].priority") in found
    assert all(p.file and p.file.endswith("wrong-step-types.yaml") for p in problems)


def test_misspelt_expectation_key_is_refused_at_its_line() -> None:
    problems = check_scenario(FIXTURES / "bad" / "unknown-actor-step-key.yaml")
    assert len(problems) == 1
    assert problems[0].line == 6 and problems[0].field == "steps[0].expect.ackk"
    assert problems[0].message.startswith("unknown key 'ackk'")


def test_unknown_step_suggests_an_actor_step(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("pacsim: 1\nname: typo\nsteps:\n  - {do: hl7.admitt, patient: $patient0}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.line == 4
    assert "did you mean 'hl7.admit'?" in caught.value.message


def test_missing_include_names_the_file() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(FIXTURES / "missing-include.yaml")
    assert "no-such-site.yaml" in str(caught.value)


def test_library_files_all_validate() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        assert check_scenario(path) == [], path.name


def test_patient_names_resolve_to_the_seeded_world() -> None:
    resolve = patient_resolver(Environment(seed=7, patients={"jane": 2}))
    world = World(7)
    jane = resolve("jane")
    assert isinstance(jane, PatientView) and jane.patient == world.patient(2)
    assert resolve("patient5").id == world.patient(5).patient_id
    assert jane.name == world.patient(2).dicom_name
    assert jane.birth_date == world.patient(2).birth_date.strftime("%Y%m%d")
    with pytest.raises(KeyError):
        resolve("acc")
    variables = Variables(fallback=resolve)
    assert variables.resolve("$jane.id") == world.patient(2).patient_id
    with pytest.raises(ScenarioError, match=r"unknown variable \$nobody"):
        variables.resolve("$nobody")


def test_friendly_matching_keys() -> None:
    today = dt.date.today().strftime("%Y%m%d")
    assert translate_match({"accession": "AC1", "date": "today", "station_ae": "any",
                            "PatientID": 5}) == {
        "AccessionNumber": "AC1", "ScheduledProcedureStepStartDate": today,
        "ScheduledStationAETitle": None, "PatientID": "5"}


def test_datasets_read_with_friendly_keys() -> None:
    from pydicom.dataset import Dataset

    step = Dataset()
    step.ScheduledStationName = "CT1"
    step.Modality = "CT"
    item = Dataset()
    item.AccessionNumber = "AC1"
    item.PatientName = "DOE^JANE"
    item.ScheduledProcedureStepSequence = [step]
    assert describe_dataset(item) == {"accession": "AC1", "patient_name": "DOE^JANE",
                                      "station": "CT1", "modality": "CT"}


def test_status_words_compare_with_hex() -> None:
    assert status_word(0) == "success" and status_word(0xC310) == "0xC310"
    assert compare("0x0000", "success") is None
    assert compare("success", 0) is None
    assert compare("success", "0xC310") == "expected 'success', saw '0xC310'"


def test_contains_and_excludes_read_lists_of_items() -> None:
    items = [{"accession": "A1", "patient_id": "P1"}, {"accession": "A2", "patient_id": "P2"}]
    assert check_contains("contains", {"accession": "A2", "patient_id": "P2"}, items).passed
    missing = check_contains("contains", {"accession": "A2", "patient_id": "P1"}, items)
    assert not missing.passed and "no item among 2" in missing.message
    assert check_contains("excludes", {"patient_id": "P9"}, items, present=False).passed
    present = check_contains("excludes", {"patient_id": "P1"}, items, present=False)
    assert not present.passed and "1 item(s) match" in present.message
