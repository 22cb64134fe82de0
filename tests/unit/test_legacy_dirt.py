"""Legacy dirt, history, value checks, ingestion rules and the data-quality checks.

Objects are real world IODs encoded and read back with pydicom (no files, no
network): each injection must be found by exactly its own class, a clean object by
none, and the cross-study checker must blame exactly the study the contract names.
"""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread

from simulators.errors import ConfigError
from simulators.quality import classes as C
from simulators.legacy import dirt
from simulators.legacy.build import study_context
from simulators.legacy.history import SHAPES, patient_histories
from simulators.quality.values import charset_mismatch, invalid_value
from simulators.quality.checks import CrossStudyChecker, check_instance
from simulators.quality.rules import IngestionRules
from simulators.world import World, iter_study

UNTIL = dt.date(2026, 1, 1)
RULES = IngestionRules.default()
ROOT = Path(__file__).resolve().parents[2]


def _roundtrip(ds):  # noqa: ANN001, ANN202 - a FileDataset in, a read-back one out
    buffer = BytesIO()
    with _quiet():
        ds.save_as(buffer, enforce_file_format=True)
        return dcmread(BytesIO(buffer.getvalue()))


def _quiet():  # noqa: ANN202
    from simulators.quality.values import quiet_pydicom

    return quiet_pydicom()


def _first_image(modality: str, index: int = 3, series: int = 2):  # noqa: ANN202
    world = World(11)
    history = next(h for h in patient_histories(11, 400, 5, UNTIL)
                   if any(s.modality == modality for s in h.studies))
    plan = next(s for s in history.studies if s.modality == modality)
    ctx = study_context(world, plan)
    return next(iter_study(ctx, series=series, per_series=1, rows=8, cols=8))


def _classes(ds) -> set[str]:  # noqa: ANN001
    read = _roundtrip(ds)
    return {f.cls for f in check_instance(read, RULES, transfer_syntax="1.2.840.10008.1.2.1")}


# ---------------------------------------------------------------------------- profiles
def test_classes_and_profiles() -> None:
    assert dirt.DEFECT_CLASSES == (
        "patient-name-conflict", "birth-date-conflict", "wrong-modality", "missing-modality",
        "missing-type2", "invalid-vr-value", "duplicate-sop-uid", "retired-sop-class",
        "odd-charset", "private-tags", "split-study")
    assert {"none", "typical", "heavy", *dirt.DEFECT_CLASSES} == set(dirt.PROFILES)
    assert dirt.profile("none") == {}
    assert all(0 < rate <= 0.05 for rate in dirt.profile("typical").values())
    assert set(dirt.profile("typical")) == set(dirt.DEFECT_CLASSES)
    with pytest.raises(ConfigError, match="unknown dirt profile 'dirty'"):
        dirt.profile("dirty")


# ----------------------------------------------------------------------------- history
def test_history_is_deterministic_complete_and_recent_heavy() -> None:
    first = list(patient_histories(5, 3000, 10, UNTIL))
    assert first == list(patient_histories(5, 3000, 10, UNTIL))
    studies = [s for h in first for s in h.studies]
    assert [s.index for s in studies] == list(range(3000))
    start = dt.datetime(2016, 1, 3)
    assert all(start <= s.start < dt.datetime(2026, 1, 1) for s in studies)
    per_year = [sum(1 for s in studies if s.start.year == year) for year in (2016, 2025)]
    assert per_year[1] > 2 * per_year[0]  # 15%/year growth: ~3.5x over nine years
    assert 2.3 < len(studies) / len(first) < 3.8  # several studies per patient
    for s in studies:
        (s_low, s_high), (i_low, i_high) = SHAPES[s.modality]
        assert s_low <= s.series <= s_high and i_low <= s.per_series <= i_high
    for h in first:
        assert [s.start for s in h.studies] == sorted(s.start for s in h.studies)
    assert {s.modality for s in studies} == set(SHAPES)


def test_history_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError):
        next(patient_histories(1, 0, 5, UNTIL))
    with pytest.raises(ConfigError):
        next(patient_histories(1, 10, 0, UNTIL))


# ---------------------------------------------------------------------------- planning
def test_plans_keep_defects_apart() -> None:
    rates = dirt.profile("heavy")
    seen = set()
    for history in patient_histories(3, 2000, 5, UNTIL):
        ascii_map = {s.index: s.index % 2 == 0 for s in history.studies}
        plans = dirt.plan_patient(3, history, rates, ascii_map)
        assert plans == dirt.plan_patient(3, history, rates, ascii_map)  # deterministic
        by_index = {s.index: s for s in history.studies}
        names = [p for p in plans.values() if p.name_variant]
        assert len(names) <= 1 and (not names or len(history.studies) >= 3)
        for index, plan in plans.items():
            study = by_index[index]
            seen.update(plan.classes)
            assert len(plan.classes) == len(set(plan.classes))
            assert all(1 <= n <= study.series for n in plan.series_defects)
            if C.SPLIT_STUDY in plan.classes:
                assert study.series >= 2
            if C.RETIRED_SOP_CLASS in plan.classes:
                assert study.modality == "US"
            if C.ODD_CHARSET in plan.classes:
                assert ascii_map[index]
            if plan.duplicate_of is not None:
                assert by_index[plan.duplicate_of].start.date() < study.start.date()
            assert plan.missing_keyword not in ("PatientBirthDate", "PatientName")
    assert seen == set(dirt.DEFECT_CLASSES)
    assert dirt.plan_patient(3, next(patient_histories(3, 10, 5, UNTIL)), {}, {}) == {}


@pytest.mark.parametrize("name, variant", [("Müller^Jürgen", "Muller^Jurgen"),
                                           ("Smith^John", "SMITH^JOHN"),
                                           ("SMITH^JOHN", "JOHN^SMITH")])
def test_name_variant(name: str, variant: str) -> None:
    assert dirt.name_variant(name) == variant


@pytest.mark.parametrize("birth, variant", [("19700304", "19700403"), ("19700515", "19700516"),
                                            ("19700505", "19700506"), ("19701230", "19701201")])
def test_birth_variant_is_another_valid_date(birth: str, variant: str) -> None:
    assert dirt.birth_variant(birth) == variant
    assert invalid_value("DA", variant) is None


# ------------------------------------------------------------------------------ values
@pytest.mark.parametrize("vr, value, bad", [
    ("DA", b"20191345", "20191345"), ("DA", b"2019-01-02", "2019-01-02"), ("DA", b"20240229", None),
    ("TM", b"256100", "256100"), ("TM", b"235960.123456", None), ("TM", b"10", None),
    ("IS", b"1a", "1a"), ("IS", b" 12 ", None), ("IS", b"1\\2", None),
    ("DS", b"72,5", "72,5"), ("DS", b"-1.5e3", None), ("AS", b"45Y ", "45Y"),
    ("AS", b"045Y", None), ("UI", b"1.2.03\x00", "1.2.03"), ("UI", b"1.2.3\x00", None),
    ("DT", b"20240101120000.5+0100", None), ("LO", b"anything", None), ("DA", b"", None),
])
def test_invalid_value(vr: str, value: bytes, bad: str | None) -> None:
    assert invalid_value(vr, value) == bad


def test_charset_mismatch() -> None:
    utf8, latin1 = "Núñez".encode(), "Núñez".encode("latin-1")
    assert charset_mismatch((), utf8) is not None
    assert charset_mismatch(("ISO_IR 192",), utf8) is None
    assert charset_mismatch(("ISO_IR 192",), latin1) is not None
    assert charset_mismatch(("ISO_IR 100",), latin1) is None
    assert charset_mismatch(("ISO_IR 100",), utf8) is not None
    assert charset_mismatch((), b"plain") is None


# ------------------------------------------------------------------------------- rules
def test_rules_fixture_is_the_default() -> None:
    assert IngestionRules.load(ROOT / "fixtures" / "ingestion-rules.yaml") == RULES


@pytest.mark.parametrize("text, message", [
    ("required:\n  - PatientName\n  - PatientNam\n", "rules.yaml:3: required[1]: unknown DICOM"),
    ("private_tags: keep\n", "rules.yaml:1: private_tags:"),
    ("colour: red\n", "rules.yaml:1: colour: unknown field"),
    ("allowed_sop_classes: [1.2.x]\n", "rules.yaml:1: allowed_sop_classes[0]"),
    ("", "rules.yaml:1: the ingestion rules file is empty"),
])
def test_rules_errors_name_file_line_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        IngestionRules.load(path)
    assert message in str(caught.value)


def test_stricter_rules_flag_sop_class_and_transfer_syntax() -> None:
    rules = IngestionRules(allowed_sop_classes=frozenset({"1.2.840.10008.5.1.4.1.1.2"}),
                           allowed_transfer_syntaxes=frozenset({"1.2.840.10008.1.2"}))
    read = _roundtrip(_first_image("MR"))
    found = {f.cls for f in check_instance(read, rules, transfer_syntax="1.2.840.10008.1.2.1")}
    assert found == {C.DISALLOWED_SOP_CLASS, C.DISALLOWED_TRANSFER_SYNTAX}
    relaxed = IngestionRules(private_tags="allow")
    ds = _first_image("CT")
    dirt.add_private_tags(ds)
    assert check_instance(_roundtrip(ds), relaxed, transfer_syntax="1.2.840.10008.1.2.1") == []


# ---------------------------------------------------------------- per-instance checks
@pytest.mark.parametrize("modality", ["CT", "MR", "CR", "DX", "MG", "US"])
def test_clean_images_raise_nothing(modality: str) -> None:
    assert _classes(_first_image(modality)) == set()


@pytest.mark.parametrize("inject, expected", [
    (dirt.set_wrong_modality, C.WRONG_MODALITY),
    (dirt.set_missing_modality, C.MISSING_MODALITY),
    (lambda ds: dirt.remove_type2(ds, "ReferringPhysicianName"), C.MISSING_TYPE2),
    (lambda ds: dirt.remove_type2(ds, "PatientSex"), C.MISSING_TYPE2),
    (lambda ds: dirt.set_invalid_value(ds, dirt.INVALID_VALUES[0]), C.INVALID_VR_VALUE),
    (lambda ds: dirt.set_invalid_value(ds, dirt.INVALID_VALUES[1]), C.INVALID_VR_VALUE),
    (lambda ds: dirt.set_invalid_value(ds, dirt.INVALID_VALUES[2]), C.INVALID_VR_VALUE),
    (lambda ds: dirt.set_invalid_value(ds, dirt.INVALID_VALUES[3]), C.INVALID_VR_VALUE),
    (lambda ds: dirt.set_invalid_value(ds, dirt.INVALID_VALUES[4]), C.INVALID_VR_VALUE),
    (lambda ds: dirt.set_odd_charset(ds, dirt.ODD_CHARSETS[0]), C.ODD_CHARSET),
    (lambda ds: dirt.set_odd_charset(ds, dirt.ODD_CHARSETS[1]), C.ODD_CHARSET),
    (lambda ds: dirt.set_odd_charset(ds, dirt.ODD_CHARSETS[2]), C.ODD_CHARSET),
    (dirt.add_private_tags, C.PRIVATE_TAGS),
])
def test_each_injection_is_found_as_its_class(inject, expected: str) -> None:  # noqa: ANN001
    ds = _first_image("CT")
    inject(ds)
    assert _classes(ds) == {expected}


@pytest.mark.parametrize("retired", dirt.RETIRED_US)
def test_retired_ultrasound_class(retired: str) -> None:
    ds = _first_image("US", series=1)
    dirt.set_retired_class(ds, retired)
    assert _classes(ds) == {C.RETIRED_SOP_CLASS}


# ------------------------------------------------------------------ cross-study checks
def _cross(tmp_path: Path, rows: list[tuple[str, ...]]) -> set[tuple[str, str]]:
    with CrossStudyChecker(tmp_path / "cross.sqlite") as checker:
        for study, sop, pid, name, birth, date in rows:
            checker.add_instance(study, study + ".s", sop, pid, name, birth, study_date=date)
        return {(f.study_uid, f.cls) for f in checker.findings()}


def test_cross_study_flags_every_study_a_conflict_involves(tmp_path: Path) -> None:
    rows = [("A", "a1", "P1", "DOE^JO", "19700101", "20200101"),
            ("A", "a2", "P1", "DOE^JO", "19700101", "20200101"),
            ("B", "b1", "P1", "DOE^JO", "19700101", "20210101"),
            ("C", "c1", "P1", "DOE^JOE", "19700110", "20190101"),   # name + birth differ
            ("D", "a1", "P2", "ROE^AL", "", "20220101"),             # copy of a1, later
            ("E", "e1", "P3", "ROE^BO", "19800101", "20230101"),
            ("E", "e2", "P4", "ZED^AL", "19810101", "20230101"),     # split study
            ("F", "f1", "P5", "SOLO^X", "19900101", "20230101")]     # clean
    involved = {"A", "B", "C"}   # the whole patient P1, not "the odd one out"
    assert _cross(tmp_path, rows) == {
        *((s, C.PATIENT_NAME_CONFLICT) for s in involved),
        *((s, C.BIRTH_DATE_CONFLICT) for s in involved),
        ("A", C.DUPLICATE_SOP_UID), ("D", C.DUPLICATE_SOP_UID), ("E", C.SPLIT_STUDY)}


def test_cross_study_result_does_not_depend_on_order(tmp_path: Path) -> None:
    rows = [("A", "a1", "P1", "DOE^JO", "19700101", "20200101"),
            ("B", "b1", "P1", "DOE^JO", "19700101", "20210101"),
            ("C", "c1", "P1", "DOE^JOE", "19700101", "20190101"),
            ("D", "a1", "P2", "ROE^AL", "", "20220101")]
    (tmp_path / "forward").mkdir()
    (tmp_path / "backward").mkdir()
    forward = _cross(tmp_path / "forward", rows)
    assert forward == _cross(tmp_path / "backward", rows[::-1])
    assert len(forward) == 5   # A, B, C name conflict; A, D duplicate


def test_conflict_is_reported_once_with_every_study(tmp_path: Path) -> None:
    with CrossStudyChecker(tmp_path / "cross.sqlite") as checker:
        for study, name in (("A", "Meadows^Jason"), ("B", "Meadows^Jason"),
                            ("C", "MEADOWS^JASON")):
            checker.add_instance(study, study + ".s", study + ".1", "P1", name, "19700101")
        conflicts = list(checker.conflicts())
    assert len(conflicts) == 1
    conflict = conflicts[0]
    assert conflict.studies == ("A", "B", "C")
    assert conflict.values == {"Meadows^Jason": 2, "MEADOWS^JASON": 1}
    assert "3 studies" in conflict.detail


def test_cross_study_empty_value_is_not_a_conflict(tmp_path: Path) -> None:
    rows = [("A", "a1", "P1", "DOE^JO", "", "20200101"),
            ("B", "b1", "P1", "DOE^JOE", "19700101", "20190101"),
            ("C", "c1", "P2", "X^Y", "19700101", "20200101"),
            ("D", "d1", "P2", "X^Y", "", "20200101")]
    assert _cross(tmp_path, rows) == {("A", C.PATIENT_NAME_CONFLICT),
                                      ("B", C.PATIENT_NAME_CONFLICT)}
