"""Properties of the scenario loader (and the marked YAML parser under it).

A scenario file is user input: whatever it holds, ``pacsim validate``/``run`` must
answer with ScenarioErrors naming file and line, never a traceback. Damaged copies
of the shipped golden-path scenario (which includes a site file, so includes and
variables are exercised) and random text are loaded through the same functions.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, strategies as st

from simulators.common.marked_yaml import MarkedYamlError, parse_marked_yaml
from simulators.errors import ScenarioError
from simulators.scenario.validate import check_scenario, load_scenario
from tests.property.strategies import mutated

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "scenarios" / "golden-path-ct.yaml"
GOLDEN_TEXT = GOLDEN.read_text(encoding="utf-8")


def test_the_shipped_scenario_loads() -> None:
    """The starting point of every mutant is valid (else the properties prove little)."""
    assert load_scenario(GOLDEN).steps


yaml_text = st.one_of(
    mutated(st.just(GOLDEN_TEXT.encode("utf-8"))).map(lambda b: b.decode("utf-8", "replace")),
    st.text(max_size=400),
    st.lists(st.sampled_from(["pacsim: 1", "steps:", "  - do: hl7.admit", "include: [x]",
                              "vars: {a: $b}", "  - {", "name: &a [*a]", "- ]", "$x",
                              "  patient: $jane", "\t", "key: !!python/object x"]),
             max_size=12).map("\n".join),
)


@given(yaml_text)
def test_any_text_loads_or_gives_scenario_errors(text: str) -> None:
    try:
        problems = check_scenario(GOLDEN, text=text)
    except ScenarioError as exc:  # pragma: no cover - check_scenario returns them
        problems = [exc]
    for problem in problems:
        assert isinstance(problem, ScenarioError)
        assert problem.file


@given(st.text(max_size=400))
def test_marked_yaml_gives_a_mapping_or_its_error(text: str) -> None:
    try:
        data = parse_marked_yaml(text, "fuzz.yaml", allow_empty=True)
    except MarkedYamlError:
        return
    assert isinstance(data, dict)


def test_control_character_is_a_scenario_error_with_its_line() -> None:
    """Regression (found by the properties above): yaml's ReaderError escaped as a
    traceback from ``pacsim validate`` for a file with a control character."""
    problems = check_scenario(GOLDEN, text="pacsim: 1\nname: x\x08y\n")
    assert len(problems) == 1
    assert problems[0].line == 2 and "not allowed" in problems[0].message
