"""Load profiles: parsing, bounds, the shape over time and the fleet's modality mix."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from simulators.load import LoadProfile, Shape, fleet_members
from simulators.load.profile import parse_fraction, parse_rate
from simulators.scenario.validate import load_scenario


def profile(**changes: object) -> LoadProfile:
    data: dict[str, object] = {
        "modalities": {"count": 200, "mix": {"CT": "40%", "MR": "20%", "CR": "25%",
                                             "US": "15%"}},
        "stages": [{"duration": "2m", "target": 10}, {"duration": "5m", "target": 200}],
        "every_modality": [{"do": "mwl.query", "every": "30s"}]}
    data.update(changes)
    return LoadProfile.model_validate(data)


def test_rates_and_percentages_are_read_as_written() -> None:
    assert parse_rate("2/h") == pytest.approx(2 / 3600)
    assert parse_rate("30/m") == pytest.approx(0.5)
    assert parse_rate(4) == 4.0
    assert parse_fraction("1%") == pytest.approx(0.01) and parse_fraction(0.05) == 0.05
    for bad in ("fast", "0/h", "-1/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)
    with pytest.raises(ValueError):
        parse_fraction("150%")


def test_profile_bounds_are_enforced() -> None:
    assert profile().total_duration == 420 and profile().peak == 200
    with pytest.raises(ValidationError, match="fleet has 200"):
        profile(stages=[{"duration": "1m", "target": 201}])
    with pytest.raises(ValidationError, match="exactly one of every, think or rate"):
        profile(every_modality=[{"do": "mwl.query", "every": "30s", "think": "1s"}])
    with pytest.raises(ValidationError, match="less than or equal to 14400"):
        profile(stages=[{"duration": "5h", "target": 1}])
    with pytest.raises(ValidationError, match="the limit is 14400s"):
        profile(stages=[{"duration": "3h", "target": 1}, {"duration": "2h", "target": 1}])
    with pytest.raises(ValidationError, match="AE titles are 1-16"):
        profile(modalities={"count": 2, "ae_title": "A_VERY_LONG_TITLE_{n}"})
    with pytest.raises(ValidationError, match="unknown modality XR"):
        profile(modalities={"count": 2, "mix": {"XR": 1}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        profile(thresholds={"mwl.query": {"p96": "1s"}})


def test_shape_ramps_like_k6_then_holds() -> None:
    shape = Shape(profile(stages=[{"duration": "10s", "target": 100},
                                  {"duration": "10s", "target": 20, "ramp": "2s"},
                                  {"duration": "5s", "target": 50, "ramp": "0s"}]).stages)
    assert shape.duration == 25
    assert [shape.target_at(t) for t in (0, 5, 9.99)] == [0, 50, 100]
    assert [shape.target_at(t) for t in (10, 11, 12, 19)] == [100, 60, 20, 20]
    assert [shape.target_at(t) for t in (20, 24.9, 25, -1)] == [50, 50, 0, 0]
    assert [w.name for w in shape.windows] == ["stage 1", "stage 2", "stage 3"]


def test_any_first_members_follow_the_mix() -> None:
    members = fleet_members(profile().modalities)
    assert len({m.ae_title for m in members}) == 200
    assert Counter(m.modality for m in members) == {"CT": 80, "CR": 50, "MR": 40, "US": 30}
    first_ten = Counter(m.modality for m in members[:10])
    assert first_ten == {"CT": 4, "CR": 3, "MR": 2, "US": 1} or first_ten == {
        "CT": 4, "CR": 2, "MR": 2, "US": 2}
    assert members[0].ae_title == f"LD{members[0].modality}001"


def test_library_load_scenarios_validate_and_carry_their_profile() -> None:
    scenario = load_scenario("scenarios/load/morning-peak.yaml", variables={"hold": "5s"})
    assert scenario.load is not None
    assert scenario.load.modalities.count == 200
    assert scenario.load.total_duration == 15
    assert scenario.load.every_modality[1].rate == pytest.approx(0.6 / 3600)
    users = load_scenario("scenarios/load/10-vs-200-users.yaml")
    assert [s.target for s in users.load.stages] == [10, 200]
