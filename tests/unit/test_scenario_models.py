"""Scenario models and the step registry: validation errors as file:line: field, schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from simulators.dicom.address import AeAddress
from simulators.errors import ScenarioError
from simulators.scenario import StepBase, StepOutcome, StepRegistry, default_registry, json_schema
from simulators.common.fields import parse_duration
from simulators.scenario.loader import load_document
from simulators.scenario.validate import check_scenario, load_scenario

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return [str(problem) for problem in check_scenario(path)]


def test_valid_fixture_loads_with_typed_values() -> None:
    scenario = load_scenario(FIXTURES / "generic.yaml")
    assert scenario.name == "Generic steps on the small hospital"
    assert scenario.source_file == str(FIXTURES / "generic.yaml")
    assert [step.do for step in scenario.steps] == ["note", "wait", "parallel", "assert.vars"]
    assert scenario.steps[1].duration == pytest.approx(0.01)     # "10ms" via ${pause}
    assert scenario.steps[1].timeout == 5.0                      # from defaults.step
    assert [s.duration for s in scenario.steps[2].steps] == [0.02, 0.03]
    ct1 = scenario.environment.actors["ct1"]
    assert (ct1.kind, ct1.modality, ct1.ae_title, ct1.station) == ("modality", "CT", "CT_ROOM1",
                                                                    "CT1")
    assert [fault.id for fault in ct1.faults] == ["mpps.set-after-final"]
    assert scenario.finally_[0].message == "done"


def test_unknown_step_type_suggests_the_closest() -> None:
    problems = [str(p) for p in check_scenario(FIXTURES / "unknown-step.yaml")]
    known = ", ".join(default_registry.names())
    assert "wait" in known and "hl7.admit" in known
    assert problems == [f"{FIXTURES / 'unknown-step.yaml'}:6: steps[1].do: unknown step type "
                        f"'wiat' (known: {known}); did you mean 'wait'?"]


def test_wrong_types_name_file_line_and_field() -> None:
    problems = [str(p) for p in check_scenario(FIXTURES / "wrong-type.yaml")]
    assert len(problems) == 2
    assert problems[0].startswith(f"{FIXTURES / 'wrong-type.yaml'}:4: environment.seed: ")
    assert "valid integer" in problems[0]
    assert problems[1].startswith(f"{FIXTURES / 'wrong-type.yaml'}:7: steps[0].duration: ")
    assert "'soon' is not a duration" in problems[1]


def test_load_scenario_raises_first_problem_and_keeps_all() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(FIXTURES / "wrong-type.yaml")
    assert caught.value.line == 4 and caught.value.field == "environment.seed"
    assert len(caught.value.context["problems"]) == 2


def test_unknown_key_suggests_a_spelling(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "pacsim: 1\nname: x\nsteps:\n  - do: wait\n"
                                     "    duraton: 1s\n")
    assert any(":5: steps[0].duraton: unknown key 'duraton'; did you mean 'duration'?" in p
               for p in problems), problems
    assert any(":4: steps[0].duration: this key is required" in p for p in problems), problems


def test_step_without_do_and_unknown_actor_kind(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, (
        "pacsim: 1\nname: x\nenvironment:\n  actors:\n    ct: {kind: scanner}\n"
        "steps:\n  - message: hi\n"))
    assert any(":5: environment.actors.ct.kind: unknown actor kind 'scanner'" in p
               for p in problems), problems
    assert any(":7: steps[0]: a step needs 'do:'" in p for p in problems), problems


def test_by_must_name_a_declared_actor(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, (
        "pacsim: 1\nname: x\nenvironment:\n  actors:\n"
        "    ct1: {kind: modality, modality: CT, ae_title: CT1}\n"
        "steps:\n  - do: parallel\n    steps:\n      - do: note\n        message: m\n"
        "        by: ct2\n"))
    assert len(problems) == 1
    assert ":11: steps[0].steps[0].by: no actor named 'ct2' (actors: ct1); did you mean 'ct1'?" \
        in problems[0]


@pytest.mark.parametrize("title", ["", "SEVENTEEN_CHARS_X", "BAD\\TITLE"])
def test_ae_titles_follow_the_ae_vr(tmp_path: Path, title: str) -> None:
    problems = problems_of(tmp_path, (
        "pacsim: 1\nname: x\nenvironment:\n  actors:\n"
        f"    ct1: {{kind: modality, modality: CT, ae_title: '{title}'}}\n"
        "steps:\n  - {do: note, message: m}\n"))
    assert len(problems) == 1 and ":5: environment.actors.ct1.ae_title:" in problems[0]


def test_targets_and_supports(tmp_path: Path) -> None:
    text = ("pacsim: 1\nname: x\nenvironment:\n  target:\n    external:\n"
            "      dicom: PACS@pacs-test.example.org:104\n      hl7: pacs-test.example.org:2575\n"
            "  supports: {mpps: false}\nsteps:\n  - {do: note, message: m}\n")
    scenario = load_scenario(tmp_path / "s.yaml", text=text)
    assert scenario.environment.target.external.dicom_address == AeAddress(
        ae_title="PACS", host="pacs-test.example.org", port=104)
    assert scenario.environment.target_kind == "external"
    assert scenario.environment.supported("mpps") is False
    assert scenario.environment.supported("query") is True
    orthanc = load_scenario(tmp_path / "o.yaml", text=(
        "pacsim: 1\nname: x\nenvironment: {target: orthanc}\nsteps:\n  - {do: note, message: m}\n"))
    # Nothing is assumed of Orthanc: its services are probed when the site starts.
    assert orthanc.environment.declarations() == {}
    assert scenario.environment.declarations() == {"mpps": False}
    bad = problems_of(tmp_path, "pacsim: 1\nname: x\nenvironment:\n  target:\n    external:\n"
                                "      dicom: pacs.example.org\nsteps:\n  - {do: note, message: m}\n")
    assert len(bad) == 1 and ":6: environment.target.external.dicom:" in bad[0]


def test_version_must_be_one(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "pacsim: 2\nname: x\nsteps:\n  - {do: note, message: m}\n")
    assert len(problems) == 1 and ":1: pacsim: input should be 1" in problems[0]


@pytest.mark.parametrize("text, seconds", [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0),
                                           ("1h", 3600.0), (3, 3.0), ("1.5", 1.5)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1", "soon", "1d", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_json_schema_is_valid_draft7_and_validates_scenarios() -> None:
    schema = json_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in schema and "definitions" in schema
    assert "#/$defs/" not in str(schema)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    loaded = load_document(FIXTURES / "generic.yaml").data
    assert list(validator.iter_errors(loaded)) == []
    raw = yaml.safe_load((FIXTURES / "unknown-step.yaml").read_text())
    assert list(validator.iter_errors(raw)), "an unknown step type must not validate"
    wrong = yaml.safe_load((FIXTURES / "wrong-type.yaml").read_text())
    assert list(validator.iter_errors(wrong)), "a wrong type must not validate"


def test_registry_grows_by_adding_a_step_type(tmp_path: Path) -> None:
    registry = default_registry.copy()

    @registry.step("demo.echo")
    class EchoStep(StepBase):
        text: str

        def run(self, ctx):  # noqa: ANN001, ANN201
            return StepOutcome(observed={"text": self.text})

    text = "pacsim: 1\nname: x\nsteps:\n  - do: parallel\n    steps:\n      - {do: demo.echo, text: hi}\n"
    scenario = load_scenario(tmp_path / "s.yaml", text=text, registry=registry)
    assert scenario.steps[0].steps[0].text == "hi"
    assert isinstance(scenario.steps[0].steps[0], EchoStep)
    assert "demo.echo" in str(json_schema(registry))
    assert "demo.echo" not in default_registry.names()          # the copy did not leak
    with pytest.raises(ScenarioError, match="unknown step type 'demo.echo'"):
        load_scenario(tmp_path / "s.yaml", text=text)


def test_a_step_type_must_have_an_executor() -> None:
    registry = StepRegistry()

    class Lazy(StepBase):
        pass

    with pytest.raises(TypeError, match="must implement run"):
        registry.register("lazy", Lazy)


def test_nested_and_included_problems_point_at_their_own_lines(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "environment:\n  actors:\n    ct1: {kind: modality, modality: ct, ae_title: CT1}\n")
    problems = problems_of(tmp_path, (
        "pacsim: 1\nname: x\ninclude: site.yaml\nsteps:\n  - do: parallel\n    steps:\n"
        "      - {do: nte, message: a}\n      - {do: wait}\n"))
    known = ", ".join(default_registry.names())
    assert problems[0].endswith(":7: steps[0].steps[0].do: unknown step type 'nte' (known: "
                                f"{known}); did you mean 'note'?")
    assert problems[1].endswith(":8: steps[0].steps[1].duration: this key is required")
    assert problems[2].startswith(f"{(tmp_path / 'site.yaml').resolve()}:3: "
                                  "environment.actors.ct1.modality: ")


def test_library_listing_names_scenarios_and_broken_files() -> None:
    from simulators.scenario import list_scenarios

    entries = {Path(entry.path).name: entry for entry in list_scenarios(FIXTURES)}
    assert "small-hospital.yaml" not in entries          # a site topology, not a scenario
    assert entries["generic.yaml"].name == "Generic steps on the small hospital"
    assert entries["generic.yaml"].description.startswith("Uses only steps that need no actor")
    assert entries["generic.yaml"].error is None
    assert ":6: steps[1].do: unknown step type 'wiat'" in entries["unknown-step.yaml"].error
    assert entries["malformed.yaml"].error is not None


def test_command_line_overrides_make_a_validated_copy() -> None:
    scenario = load_scenario(FIXTURES / "generic.yaml")
    changed = scenario.with_environment(seed=99, target="orthanc")
    assert (changed.environment.seed, changed.environment.target) == (99, "orthanc")
    assert changed.environment.actors == scenario.environment.actors
    assert changed.source_file == scenario.source_file and scenario.environment.seed == 11
    with pytest.raises(ScenarioError) as caught:
        scenario.with_environment(target="nowhere")
    assert caught.value.field == "environment.target"
