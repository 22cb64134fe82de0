"""The scenario loader: line marks, includes, ${vars}, defaults and YAML errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.errors import ScenarioError
from simulators.scenario.loader import load_document

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_and_item_knows_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "pacsim: 1\nname: lines\nsteps:\n  - do: note\n"
                                     "    message: hi\n\n  - do: wait\n    duration: 1s\n")
    document = load_document(path)
    assert document.lines.mark_of(("name",)).line == 2
    assert document.lines.mark_of(("steps", 0)).line == 4
    assert document.lines.mark_of(("steps", 1)).line == 7
    assert document.lines.mark_of(("steps", 1, "duration")).line == 8
    # a path that does not exist falls back to its nearest ancestor
    assert document.lines.mark_of(("steps", 1, "nothing", 3)).line == 7
    assert document.lines.mark_of(("steps", 1, "duration")).file == str(path)


def test_include_is_merged_and_the_including_file_wins() -> None:
    document = load_document(FIXTURES / "generic.yaml")
    environment = document.data["environment"]
    assert environment["seed"] == 11                       # generic.yaml overrides the site's 7
    assert environment["target"] == "builtin"              # from the site file
    assert sorted(environment["actors"]) == ["ct1", "ehr", "ris"]  # maps merge deeply
    assert environment["actors"]["ct1"]["ae_title"] == "CT_ROOM1"  # ${ct_title} from site vars
    assert "include" not in document.data
    assert document.included == [str(FIXTURES / "sites" / "small-hospital.yaml")]
    # lines of included keys point into the included file
    mark = document.lines.mark_of(("environment", "actors", "ct1", "station"))
    assert mark.file.endswith("small-hospital.yaml") and mark.line == 14


def test_missing_include_names_the_including_file_and_line() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_document(FIXTURES / "missing-include.yaml")
    error = caught.value
    assert error.file == str(FIXTURES / "missing-include.yaml")
    assert error.line == 5
    assert "sites/no-such-site.yaml" in error.message
    assert str(error).startswith(f"{FIXTURES / 'missing-include.yaml'}:5: include: ")


def test_include_cycle_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "include: b.yaml\nvars: {x: 1}\n")
    write(tmp_path, "b.yaml", "include: [a.yaml]\n")
    with pytest.raises(ScenarioError, match="include cycle") as caught:
        load_document(tmp_path / "a.yaml")
    assert caught.value.file == str((tmp_path / "b.yaml").resolve())
    assert caught.value.line == 1


def test_errors_in_included_files_carry_that_file(tmp_path: Path) -> None:
    write(tmp_path, "site.yaml", "environment:\n  actors:\n    ct: {kind: 'modality}\n")
    path = write(tmp_path, "s.yaml", "pacsim: 1\ninclude: site.yaml\nname: x\nsteps: []\n")
    with pytest.raises(ScenarioError, match="invalid YAML") as caught:
        load_document(path)
    assert caught.value.file == str((tmp_path / "site.yaml").resolve())
    assert caught.value.line == 3


def test_vars_keep_types_interpolate_and_escape(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", (
        "pacsim: 1\nname: ${site} run\n"
        "vars: {site: North, port: 11112, title: '${site}_CT', lit: x}\n"
        "environment:\n  seed: ${port}\n"
        "steps:\n  - {do: note, message: 'cost $${lit} for ${title}; saved $acc'}\n"))
    data = load_document(path, variables={"site": "South"}).data
    assert data["name"] == "South run"                   # overrides beat the file
    assert data["environment"]["seed"] == 11112          # a whole ${var} keeps its int type
    assert data["vars"]["title"] == "South_CT"           # vars may use other vars
    assert data["steps"][0]["message"] == "cost ${lit} for South_CT; saved $acc"


def test_unknown_variable_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "pacsim: 1\nname: x\nvars: {a: 1}\nsteps:\n"
                                     "  - do: wait\n    duration: ${pasue}\n")
    with pytest.raises(ScenarioError) as caught:
        load_document(path)
    assert caught.value.line == 6
    assert caught.value.field == "steps[0].duration"
    assert "unknown variable ${pasue}" in caught.value.message


def test_self_referencing_variable_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "pacsim: 1\nname: x\nvars: {a: '${b}', b: '${a}'}\nsteps: []\n")
    with pytest.raises(ScenarioError, match="refers to itself"):
        load_document(path)


def test_malformed_yaml_points_at_the_start_of_the_problem() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_document(FIXTURES / "malformed.yaml")
    assert caught.value.line == 5
    assert caught.value.message.startswith("invalid YAML")


@pytest.mark.parametrize("text, line, words", [
    ("pacsim: 1\nname: a\nname: b\n", 3, "duplicate key 'name'"),
    ("- just\n- a list\n", 1, "must be a mapping"),
    ("", 1, "empty"),
    ("pacsim: 1\nsteps:\n  - do: wait\n   bad: indent\n", 4, "invalid YAML"),
])
def test_structural_problems_have_lines(tmp_path: Path, text: str, line: int, words: str) -> None:
    with pytest.raises(ScenarioError, match=words) as caught:
        load_document(write(tmp_path, "s.yaml", text))
    assert caught.value.line == line


def test_defaults_fill_steps_and_actors_without_overriding() -> None:
    data = load_document(FIXTURES / "generic.yaml").data
    assert all(step["timeout"] == "5s" for step in data["steps"])
    assert [s["timeout"] for s in data["steps"][2]["steps"]] == ["5s", "5s"]  # nested too
    assert data["environment"]["actors"]["ct1"]["faults"] == ["mpps.set-after-final"]
    assert "faults" not in data["environment"]["actors"]["ris"]  # only modality defaults


def test_missing_scenario_file() -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_document(FIXTURES / "does-not-exist.yaml")


def test_step_defaults_reach_nested_steps_but_not_data_lists(tmp_path) -> None:
    """``defaults.step`` fills steps inside ``parallel`` but not other lists of mappings."""
    from simulators.scenario.loader import load_document

    path = tmp_path / "s.yaml"
    path.write_text("pacsim: 1\nname: x\ndefaults:\n  step: {timeout: 7s}\nsteps:\n"
                    "  - do: parallel\n    steps:\n      - {do: wait, duration: 1s}\n"
                    "  - do: note\n    message: m\n    data: [{accession: A1}]\n")
    doc = load_document(path)
    steps = doc.data["steps"]
    assert steps[0]["steps"][0]["timeout"] == "7s"
    assert "timeout" not in steps[1]["data"][0]


def test_an_unknown_var_override_is_refused_with_a_did_you_mean(tmp_path) -> None:
    """Issue 18: `--var holdd=3s` was silently ignored (the default 50s ran)."""
    import pytest as _pytest

    from simulators.errors import ScenarioError
    from simulators.scenario.loader import load_document

    path = tmp_path / "s.yaml"
    path.write_text("pacsim: 1\nname: v\nvars:\n  hold: 5s\nsteps:\n"
                    "  - {do: wait, duration: '${hold}'}\n"
                    "  - {do: note, message: 'port ${port}'}\n", encoding="utf-8")
    with _pytest.raises(ScenarioError) as caught:
        load_document(path, variables={"holdd": "3s"})
    assert "no variable 'holdd'" in caught.value.message
    assert "did you mean 'hold'?" in caught.value.message and caught.value.line == 3
    # declared, or used without a default (a required --var): both accepted
    assert load_document(path, variables={"hold": "1s", "port": "104"}).data["vars"]["hold"] == "1s"
