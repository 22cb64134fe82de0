"""The judge's excuses, each on the one difference it explains and nothing else.

The facts are a small in-memory table (what the checkpoint would answer), the
evidence what a validation would have recorded; the integration tests do the same
over real associations (test_migration_verdicts.py, test_corruption_matrix.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from simulators.errors import ConfigError
from simulators.migration.judge import Evidence, PixelSample, judge
from simulators.migration.validation import PixelCheck
from simulators.quality.rules import IngestionRules

RETIRED_US = "1.2.840.10008.5.1.4.1.1.6"
CT = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class Facts:
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    holders_of: dict[str, list[str]] = field(default_factory=dict)
    recorded: dict[str, Evidence] = field(default_factory=dict)

    def patient_values(self, patient_id: str, column: str) -> set[str]:
        return self.values.get((patient_id, column), set())

    def holders(self, sop_uid: str) -> list[str]:
        return self.holders_of.get(sop_uid, [])

    def evidence(self, study_uid: str) -> Evidence | None:
        return self.recorded.get(study_uid)


def study(**changes: object) -> Evidence:
    """A clean study of patient P1 with two instances, all of it on the target."""
    evidence = Evidence("S1", found=True, source_count=2, target_count=2,
                        own={"PatientID": ["P1"], "PatientName": ["Doe^Jo"],
                             "PatientBirthDate": ["19700101"], "PatientSex": ["F"]},
                        target_demographics=[{"PatientID": "P1", "PatientName": "Doe^Jo",
                                              "PatientBirthDate": "19700101",
                                              "PatientSex": "F"}],
                        series={"1.1": {"source": ["CT"], "target": "CT"}})
    for key, value in changes.items():
        setattr(evidence, key, value)
    return evidence


def verdict(evidence: Evidence, facts: Facts | None = None) -> set[tuple[str, str]]:
    return {(j.cls, j.explained_by) for j in judge(evidence, facts or Facts(),
                                                    IngestionRules.default())}


def test_a_clean_study_has_nothing() -> None:
    assert verdict(study()) == set()


def test_a_name_another_file_of_the_patient_carries_is_explained() -> None:
    answer = {**study().target_demographics[0], "PatientName": "DOE^JO"}
    facts = Facts(values={("P1", "patient_name"): {"Doe^Jo", "DOE^JO"}})
    assert verdict(study(target_demographics=[answer]), facts) == {
        ("demographics", "patient-name-conflict")}
    # the same value, but no file of P1 carries it: a change, not the source's conflict
    assert verdict(study(target_demographics=[answer])) == {("demographics", "")}


def test_a_patient_id_change_is_never_explained() -> None:
    answer = {**study().target_demographics[0], "PatientID": "LEG-P1",
              "PatientName": "DOE^JO"}
    facts = Facts(values={("LEG-P1", "patient_name"): {"DOE^JO"},
                          ("P1", "patient_name"): {"Doe^Jo", "DOE^JO"}})
    assert verdict(study(target_demographics=[answer]), facts) == {("demographics", "")}


def test_a_duplicate_explains_only_the_instance_the_target_holds_elsewhere() -> None:
    missing = {"9.1": ["1.1", CT]}
    other = study(study_uid="S2")
    facts = Facts(holders_of={"9.1": ["S1", "S2"]}, recorded={"S2": other})
    lost = study(missing=missing, target_count=1)
    assert verdict(lost, facts) == {("sop-uid-set", "duplicate-sop-uid")}
    # the other study lost it too: no study holds it, nothing is excused
    facts.recorded["S2"] = study(study_uid="S2", missing=missing)
    assert verdict(lost, facts) == {("sop-uid-set", ""), ("instance-count", "")}
    # a second missing instance that is not duplicated is a loss
    facts.recorded["S2"] = other
    two = study(missing={**missing, "9.2": ["1.1", CT]}, target_count=0)
    assert ("sop-uid-set", "") in verdict(two, facts)


def test_an_instance_of_an_excluded_class_is_explained_by_its_class() -> None:
    lost = study(missing={"9.1": ["1.1", RETIRED_US]}, target_count=1,
                 class_answers={RETIRED_US: "abstract-syntax-not-supported"})
    found = judge(lost, Facts(), IngestionRules.default())
    assert {(j.cls, j.explained_by) for j in found} == {("sop-uid-set", "retired-sop-class")}
    assert "refuses it too" in found[0].detail
    # an allowed class missing is a loss, whatever the target says of it
    assert verdict(study(missing={"9.1": ["1.1", CT]}, target_count=1)) == {
        ("sop-uid-set", ""), ("instance-count", "")}


def test_a_failed_transfer_is_excused_only_when_exactly_the_held_duplicates_failed() -> None:
    facts = Facts(holders_of={"9.1": ["S1", "S2"]}, recorded={"S2": study(study_uid="S2")})
    exact = study(missing={"9.1": ["1.1", CT]}, target_count=1, failure="C-MOVE 0xB000",
                  failed_subops=1, failed_uids=["9.1"])
    assert verdict(exact, facts) == {("sop-uid-set", "duplicate-sop-uid"),
                                     ("transfer-failed", "duplicate-sop-uid")}
    status_only = study(failure="C-MOVE 0xA702: 0 completed, 0 failed")
    assert verdict(status_only, facts) == {("transfer-failed", "")}
    one_more = study(missing={"9.1": ["1.1", CT]}, target_count=1, failure="x",
                     failed_subops=2, failed_uids=["9.1"])
    assert ("transfer-failed", "") in verdict(one_more, facts)


def test_a_missing_study_is_a_loss_and_changed_pixels_are_caught() -> None:
    gone = study(found=False, target_demographics=[], target_count=0,
                 missing={"9.1": ["1.1", CT], "9.2": ["1.1", CT]},
                 series={"1.1": {"source": ["CT"], "target": None}})
    assert verdict(gone) == {("missing-study", "")}
    pixels = study(pixels=[PixelSample("9.1", "aa" * 32, "bb" * 32, "1.2.840.10008.1.2.1",
                                       "1.2.840.10008.1.2.5")])
    assert verdict(pixels) == {("pixel-hash", "")}
    not_returned = study(pixels=[PixelSample("9.1", "aa" * 32, None)])
    assert verdict(not_returned) == {("pixel-hash", "")}


def test_a_modality_change_is_caught_but_the_files_own_wrong_modality_is_not() -> None:
    assert verdict(study(series={"1.1": {"source": ["CT"], "target": "OT"}})) == {
        ("modality", "")}
    assert verdict(study(series={"1.1": {"source": ["MR"], "target": "MR"}})) == set()


def test_evidence_round_trips_through_json() -> None:
    evidence = study(pixels=[PixelSample("9.1", "a", "b", "x", "y")],
                     missing={"9.1": ["1.1", CT]}, rejected=[["9.1", 0xA700]])
    assert Evidence.from_json(evidence.to_json()) == evidence


def test_pixel_check_option_parses_and_names_the_field() -> None:
    assert str(PixelCheck.parse(["sample", "3"])) == "sample 3"
    assert PixelCheck.parse(["all"]).mode == "all" and str(PixelCheck()) == "sample 1"
    for bad in (["sample"], ["sample", "0"], ["some"], ["all", "2"]):
        with pytest.raises(ConfigError, match="--pixel-check"):
            PixelCheck.parse(bad)


def test_one_damaged_instance_among_several_checked_is_a_difference() -> None:
    same = [PixelSample(f"9.{i}", "aa", "aa") for i in range(5)]
    damaged = study(pixels=[*same, PixelSample("9.9", "aa", "bb")])
    found = judge(damaged, Facts(), IngestionRules.default())
    assert [(j.cls, j.explained_by) for j in found] == [("pixel-hash", "")]
    assert "1 of 6 checked" in found[0].detail
