"""Sandbox parts without sockets: clock arithmetic, identifiers, day shape, pathway files."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from simulators.errors import ConfigError
from simulators.load.shape import Shape
from simulators.sandbox.arrivals import ArrivalSchedule, build_streams, day_shape, mix_cycle
from simulators.sandbox.clock import SimClock, parse_pace
from simulators.sandbox.identity import Epoch, base36, training_name
from simulators.sandbox.pathways import ACTIONS, load_day, parse_pathways


class FakeWall:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_clock_runs_at_its_speed_and_re_anchors_on_pace_change() -> None:
    wall = FakeWall()
    clock = SimClock(60, start=dt.time(8, 0), wall=wall)
    wall.now += 2.0
    assert clock.now() == pytest.approx(120.0)
    clock.set_speed("10x")
    assert clock.now() == pytest.approx(120.0)  # no jump on a pace change
    wall.now += 3.0
    assert clock.now() == pytest.approx(150.0)
    assert clock.time_of_day() == pytest.approx(8 * 3600 + 150.0)


def test_paused_clock_stands_still_and_resumes_where_it_stopped() -> None:
    wall = FakeWall()
    clock = SimClock(10, wall=wall)
    wall.now += 1.0
    clock.pause()
    wall.now += 50.0
    assert clock.now() == pytest.approx(10.0)
    assert not clock.wait_until(1e9, stop=_set_event())  # a stop wins over a pause
    clock.resume()
    wall.now += 1.0
    assert clock.now() == pytest.approx(20.0)


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@pytest.mark.parametrize("text,speed", [("1x", 1.0), ("10x", 10.0), ("60X", 60.0), ("2.5", 2.5)])
def test_parse_pace(text: str, speed: float) -> None:
    assert parse_pace(text) == speed


@pytest.mark.parametrize("bad", ["0x", "fast", "-1x", "1e9x", True])
def test_bad_pace_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_pace(bad)  # type: ignore[arg-type]


def test_epochs_never_share_identifiers_and_names_are_unmistakable() -> None:
    first, second = Epoch(7), Epoch(7)
    assert second.number > first.number
    seen = set()
    for epoch in (first, second):
        patient = epoch.patient()
        named = epoch.patient("Mrs Training Smith")
        order = epoch.order(patient, "CT", station_ae="CT_ROOM1", station_name="CT1")
        assert patient.family_name.startswith("ZZTRAIN")
        assert named.dicom_name == "ZZTRAIN-SMITH^Mrs Training"
        assert patient.patient_id.startswith(f"SBX{epoch.tag}-")
        assert order.accession.startswith(f"SBX{epoch.tag}") and len(order.accession) <= 16
        assert order.study_uid.startswith(f"1.2.826.0.1.3680043.10.1011.7.{epoch.number}.")
        ids = {patient.patient_id, named.patient_id, order.accession, order.study_uid,
               order.placer_number, order.filler_number, order.step.step_id}
        assert not ids & seen
        seen |= ids


def test_training_name_keeps_prefix_and_refuses_empty() -> None:
    assert training_name("ZZTRAIN-JONES") == ("ZZTRAIN-JONES", "Trainee")
    with pytest.raises(ConfigError):
        training_name("   ")
    assert base36(35) == "Z" and base36(36) == "10"


def test_day_shape_is_a_step_function_over_24_hours() -> None:
    shape = day_shape({0: 3, 8: 10, 12: 2, 13: 10, 17: 0})
    assert isinstance(shape, Shape) and shape.duration == 86400
    assert shape.level_at(7.9 * 3600) == 3
    assert shape.level_at(8 * 3600) == 10
    assert shape.level_at(12.5 * 3600) == 2
    assert shape.level_at(23 * 3600) == 0
    with pytest.raises(ConfigError):
        day_shape({8: 10})  # must start at hour 0


def test_mix_cycle_follows_the_mix_and_the_site() -> None:
    cycle = mix_cycle({"CT": 50, "DX": 35, "US": 15}, {"CT", "DX", "US", "MR"})
    assert len(cycle) == 100
    assert (cycle.count("CT"), cycle.count("DX"), cycle.count("US")) == (50, 35, 15)
    assert mix_cycle({"CT": 1, "MR": 1}, {"CT"}) == ["CT"] * 100
    with pytest.raises(ConfigError):
        mix_cycle({"MR": 1}, {"CT"})


def test_arrivals_follow_the_day_shape() -> None:
    day = load_day()
    pathways = parse_pathways(day)
    streams = build_streams(day["arrivals"], set(pathways), {"CT", "MR", "CR", "DX", "MG", "US"})
    schedule = ArrivalSchedule(streams, start_of_day=0.0, seed=3)
    counts: dict[str, int] = {}
    at = 0.0
    for _ in range(5000):
        arrival = schedule.next_after(at)
        if arrival is None or arrival.at >= 86400:
            break
        at = arrival.at
        hour = int(at // 3600)
        counts[arrival.stream] = counts.get(arrival.stream, 0) + 1
        if arrival.stream == "outpatient":
            assert 8 <= hour < 17
        assert arrival.pathway in pathways
    # Expected per day: emergency ~86, outpatient ~82, inpatient ~16 (Poisson spread).
    assert 50 < counts["emergency"] < 130
    assert 50 < counts["outpatient"] < 120
    assert 5 < counts["inpatient"] < 35
    assert schedule.next_after(0.0, factor=0.0) is None


def test_pathway_library_loads_and_bad_definitions_are_refused() -> None:
    pathways = parse_pathways(load_day())
    assert {"routine", "emergency", "cancellation", "merge", "priors",
            "wrong-patient", "inpatient"} <= set(pathways)
    assert all(a.do in ACTIONS for p in pathways.values() for a in p.actions)
    with pytest.raises(ConfigError, match="unknown action"):
        parse_pathways({"pathways": {"x": {"steps": [{"do": "teleport"}]}}})
    with pytest.raises(ConfigError, match="takes no"):
        parse_pathways({"pathways": {"x": {"steps": [{"do": "wait", "hours": 2}]}}})
    with pytest.raises(ConfigError):
        parse_pathways({"pathways": {"x": {"steps": [{"do": "order", "patient": "third"}]}}})


def test_a_site_file_mistake_names_file_line_and_field(tmp_path) -> None:
    from simulators.errors import ScenarioError
    from simulators.cli.sandbox import load_environment

    site = tmp_path / "site.yaml"
    site.write_text("environment:\n  seed: 5\n  actors:\n"
                    "    ct1: {kind: modality, modality: CT, ae_title: CT1, statoin: X}\n")
    with pytest.raises(ScenarioError) as caught:
        load_environment(site)
    assert str(caught.value).startswith(f"{site}:4: environment.actors.ct1.statoin: unknown key")
    assert "did you mean 'station'" in str(caught.value)
    site.write_text(site.read_text().replace(", statoin: X", ""))
    assert load_environment(site).seed == 5
