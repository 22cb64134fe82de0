"""The synthetic world: determinism, synthetic identifiers, UIDs, catalogue, orders."""

from __future__ import annotations

import datetime as dt

import pytest

from simulators.errors import ConfigError, WorldError
from simulators.world import CATALOGUE, DEFAULT_UID_ROOT, MODALITIES, World, is_valid_uid

SH_MAX = 16


def _order(world: World, index: int, modality: str = "CT", **kwargs: object):
    return world.order(world.patient(index), modality, station_ae=f"{modality}_1",
                       station_name=f"{modality}ROOM1", index=index, **kwargs)


def test_same_seed_gives_same_patients_orders_and_uids() -> None:
    first, second = World(seed=5, non_ascii=0.3), World(seed=5, non_ascii=0.3)
    start = dt.datetime(2026, 3, 2, 9, 30)
    for index in range(25):
        assert first.patient(index) == second.patient(index)
        assert _order(first, index, "MR", start=start) == _order(second, index, "MR",
                                                                  start=start)
        assert first.uid("series", index, "x") == second.uid("series", index, "x")


def test_different_seeds_differ() -> None:
    first, second = World(seed=1), World(seed=2)
    names_first = {first.patient(i).dicom_name for i in range(20)}
    names_second = {second.patient(i).dicom_name for i in range(20)}
    assert names_first != names_second
    assert first.patient(0).patient_id != second.patient(0).patient_id
    assert first.uid("study", 0) != second.uid("study", 0)
    assert _order(first, 0).accession != _order(second, 0).accession


def test_results_do_not_depend_on_call_order() -> None:
    forwards, backwards = World(seed=9, non_ascii=0.5), World(seed=9, non_ascii=0.5)
    ahead = [forwards.patient(i) for i in range(10)]
    behind = [backwards.patient(i) for i in reversed(range(10))][::-1]
    assert ahead == behind
    assert forwards.uid("study", 3) == World(seed=9).uid("study", 3)


def test_patient_ids_are_obviously_synthetic_and_unique() -> None:
    world = World(seed=42)
    patients = [world.patient(i) for i in range(300)]
    ids = [p.patient_id for p in patients]
    assert all(pid.startswith("PSM") and pid[3:].isdigit() for pid in ids)
    assert len(set(ids)) == len(ids)
    assert all(p.issuer == "PACSIM" for p in patients)
    assert {p.sex for p in patients} >= {"F", "M"}
    assert all(p.sex in {"F", "M", "O"} for p in patients)
    assert all(dt.date(1930, 1, 1) <= p.birth_date <= dt.date(2015, 12, 31) for p in patients)
    assert all(p.family_name and p.given_name for p in patients)
    assert all("^" not in p.family_name + p.given_name for p in patients)


def test_ascii_world_has_no_charset() -> None:
    world = World(seed=3, non_ascii=0.0)
    patients = [world.patient(i) for i in range(100)]
    assert all(p.dicom_name.isascii() and p.charset is None for p in patients)


def test_non_ascii_patients_carry_utf8_charset() -> None:
    world = World(seed=3, non_ascii=1.0)
    patients = [world.patient(i) for i in range(100)]
    assert all(not p.dicom_name.isascii() for p in patients)
    assert all(p.charset == "ISO_IR 192" for p in patients)


def test_non_ascii_fraction_is_roughly_respected() -> None:
    world = World(seed=8, non_ascii=0.3)
    count = sum(world.patient(i).charset == "ISO_IR 192" for i in range(400))
    assert 0.2 * 400 <= count <= 0.4 * 400, count


def test_bad_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        World(non_ascii=1.5)
    for root in ("1.2.abc.", "1.02.3.", "1..2.", "1." * 30):
        with pytest.raises(ConfigError):
            World(uid_root=root)


def test_uids_are_valid_distinct_and_under_the_root() -> None:
    world = World(seed=4)
    uids = {world.uid(kind, i) for kind in ("study", "series", "instance", "mpps")
            for i in range(200)}
    assert len(uids) == 800
    for uid in uids:
        assert is_valid_uid(uid), uid
        assert uid.startswith(DEFAULT_UID_ROOT)
        assert len(uid) <= 64
    assert world.uid("study", 1) != world.uid("study", "1")


def test_custom_uid_root_without_trailing_dot() -> None:
    world = World(uid_root="2.25.1234")
    uid = world.uid("study", 0)
    assert uid.startswith("2.25.1234.") and is_valid_uid(uid)


def test_uid_validator_rejects_bad_uids() -> None:
    assert is_valid_uid("1.2.3.0.10")
    for bad in ("1.2.03", "1.2.", ".1.2", "1.a.2", "1." + "1" * 70, ""):
        assert not is_valid_uid(bad), bad


@pytest.mark.parametrize("modality", MODALITIES)
def test_catalogue_has_coded_procedures_per_modality(modality: str) -> None:
    world = World()
    assert set(MODALITIES) == {"CT", "MR", "CR", "DX", "MG", "US"}
    seen = {world.procedure(modality, i) for i in range(len(CATALOGUE[modality]))}
    assert len(seen) == len(CATALOGUE[modality]) >= 2
    for procedure in seen:
        assert procedure.modality == modality
        assert procedure.scheme in {"LN", "99PACSIM"}
        assert procedure.code and procedure.meaning and procedure.body_part
        assert len(procedure.meaning) <= 64
    assert world.procedure(modality, len(CATALOGUE[modality])) == world.procedure(modality, 0)


def test_catalogue_contains_the_usual_exams() -> None:
    meanings = {p.meaning for procedures in CATALOGUE.values() for p in procedures}
    assert {"CT CHEST W/O CONTRAST", "CT HEAD W/O CONTRAST", "MR BRAIN W/WO CONTRAST",
            "MR KNEE W/O CONTRAST", "XR CHEST 2 VIEWS", "MG SCREENING BILATERAL",
            "US ABDOMEN COMPLETE"} <= meanings


def test_unknown_modality_raises_world_error() -> None:
    with pytest.raises(WorldError) as caught:
        World().procedure("XA")
    assert caught.value.context["modality"] == "XA"


def test_order_numbers_fit_dicom_and_are_unique() -> None:
    world = World(seed=12)
    orders = [_order(world, i, "CT") for i in range(200)]
    for order in orders:
        for value in (order.accession, order.requested_procedure_id, order.step.step_id,
                      order.placer_number, order.filler_number):
            assert value and len(value) <= SH_MAX and value.isalnum()
        assert is_valid_uid(order.study_uid)
        assert order.step.modality == order.procedure.modality == "CT"
        assert order.step.description == order.procedure.meaning
        assert order.referring_physician.count("^") == 1
    for attribute in ("accession", "study_uid", "placer_number", "filler_number"):
        values = [getattr(order, attribute) for order in orders]
        assert len(set(values)) == len(values), attribute


def test_order_defaults_to_today_and_respects_given_start() -> None:
    world = World()
    assert _order(world, 3).step.start.date() == dt.date.today()
    start = dt.datetime(2026, 1, 5, 14, 15)
    order = _order(world, 3, start=start, priority="stat")
    assert order.step.start == start
    assert order.priority == "STAT"
    assert order.step.station_ae == "CT_1" and order.step.station_name == "CTROOM1"


def test_order_rejects_bad_priority_index_and_procedure() -> None:
    world = World()
    with pytest.raises(WorldError):
        _order(world, 1, priority="URGENTISH")
    with pytest.raises(WorldError):
        _order(world, -1)
    with pytest.raises(WorldError):
        world.order(world.patient(0), "CT", station_ae="A", station_name="B", index=0,
                    procedure=world.procedure("MR"))


def test_patient_identity_is_shared_by_the_order() -> None:
    world = World(seed=21, non_ascii=1.0)
    patient = world.patient(7)
    order = world.order(patient, "US", station_ae="US1", station_name="US1", index=99)
    assert order.patient is patient
    assert order.patient == World(seed=21, non_ascii=1.0).patient(7)
