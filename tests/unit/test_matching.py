"""PS3.4 C.2.2.2 matching rules, one rule per test group (pure functions, no sockets)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from simulators.dicom.matching import (
    is_universal_key, match_dataset, match_date_time_pair, match_element_value, match_range,
    match_string, match_wildcard, parse_range,
)


def _candidate() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "MÜLLER^JÖRG"
    ds.PatientID = "PID001"
    ds.AccessionNumber = "ACC100"
    ds.StudyInstanceUID = "1.2.3.4"
    step = Dataset()
    step.Modality = "CT"
    step.ScheduledStationAETitle = "CT01"
    step.ScheduledProcedureStepStartDate = "20260115"
    step.ScheduledProcedureStepStartTime = "093000"
    other = Dataset()
    other.Modality = "MR"
    other.ScheduledStationAETitle = "MR01"
    other.ScheduledProcedureStepStartDate = "20260116"
    other.ScheduledProcedureStepStartTime = "140000"
    ds.ScheduledProcedureStepSequence = Sequence([step, other])
    return ds


# ------------------------------------------------------------ single value / wildcard
@pytest.mark.parametrize("key,value,vr,expected", [
    ("ACC100", "ACC100", "SH", True),
    ("ACC100", "acc100", "SH", False),          # non-PN is case-sensitive
    ("DOE^JOHN", "doe^john", "PN", True),       # PN: documented case-insensitive choice
    ("ACC100 ", "ACC100", "SH", True),          # trailing padding is not content
    ("ACC1", "ACC100", "SH", False),            # no prefix matching without a wildcard
])
def test_single_value(key: str, value: str, vr: str, expected: bool) -> None:
    assert match_string(key, value, vr) is expected


def test_pn_can_be_strictly_case_sensitive() -> None:
    assert not match_string("doe^john", "DOE^JOHN", "PN", pn_case_sensitive=True)


@pytest.mark.parametrize("pattern,value,expected", [
    ("DOE*", "DOE^JOHN", True),
    ("*JOHN", "DOE^JOHN", True),
    ("D?E^*", "DOE^JOHN", True),
    ("D?E", "DOOE", False),
    ("*", "", True),
    ("A*B*C", "AxxBxxC", True),
    ("A*B*C", "AxxBxx", False),
    ("a.b*", "axb", False),                     # regex metacharacters are literal
])
def test_wildcards(pattern: str, value: str, expected: bool) -> None:
    assert match_wildcard(pattern, value) is expected


def test_wildcards_are_literal_outside_string_vrs() -> None:
    assert not match_element_value("1.2.*", "1.2.3", "UI")
    assert not match_element_value("2026*", "20260101", "DA")


def test_pn_wildcard_case_insensitive_and_non_ascii() -> None:
    assert match_string("müll*", "MÜLLER^JÖRG", "PN")
    assert not match_string("muell*", "MÜLLER^JÖRG", "PN")  # accents stay significant


# ----------------------------------------------------------------- universal / UIDs
def test_universal_matching_variants() -> None:
    ds = Dataset()
    ds.PatientName = ""
    ds.AccessionNumber = "*"
    ds.ScheduledProcedureStepSequence = Sequence([Dataset()])
    assert is_universal_key(ds["PatientName"])
    assert is_universal_key(ds["AccessionNumber"])
    assert is_universal_key(ds["ScheduledProcedureStepSequence"])
    ds.PatientID = "X"
    assert not is_universal_key(ds["PatientID"])


def test_absent_candidate_only_matches_universal() -> None:
    assert match_element_value("", None, "LO")
    assert match_element_value("*", None, "LO")
    assert not match_element_value("X*", None, "LO")


def test_list_of_uid_matching() -> None:
    assert match_element_value(["1.2.3", "1.2.3.4"], "1.2.3.4", "UI")
    assert not match_element_value(["1.2.3", "1.2.3.5"], "1.2.3.4", "UI")


# -------------------------------------------------------------------------- ranges
@pytest.mark.parametrize("key,value,vr,expected", [
    ("20260101-20260131", "20260115", "DA", True),
    ("20260101-20260131", "20260201", "DA", False),
    ("20260101-", "20991231", "DA", True),
    ("20260101-", "20251231", "DA", False),
    ("-20260101", "20260101", "DA", True),     # bounds are inclusive
    ("-20260101", "20260102", "DA", False),
    ("20260115", "20260115", "DA", True),
    ("0800-1200", "093000", "TM", True),
    ("0800-1200", "120059", "TM", True),       # partial upper bound widened to 12:00:59.999999
    ("0800-1200", "120100", "TM", False),
    ("-0800", "075959.5", "TM", True),
    ("10:00-11:00", "1030", "TM", True),       # legacy colon format tolerated
    ("20260101080000-20260101090000", "20260101083000", "DT", True),
    ("20260101080000-20260101090000", "20260101093000+0100", "DT", False),
    ("2026-", "20270101", "DT", True),
])
def test_range_matching(key: str, value: str, vr: str, expected: bool) -> None:
    assert match_range(key, value, vr) is expected


def test_parse_range_shapes() -> None:
    assert parse_range("A-B".replace("A", "20260101").replace("B", "20260102"), "DA") == (
        "20260101", "20260102")
    assert parse_range("-1200", "TM") == (None, "1200")
    assert parse_range("20260101", "DA") is None
    assert parse_range("ACC-1", "SH") is None   # ranges only for DA/TM/DT


def test_combined_date_time_is_one_instant_range() -> None:
    # 2026-01-01 22:00 .. 2026-01-02 06:00 (a night shift): independent matching would
    # reject 23:00 on the 1st because 2300 is not in 2200-0600 read as a time range.
    assert match_date_time_pair("20260101-20260102", "2200-0600", "20260101", "230000")
    assert match_date_time_pair("20260101-20260102", "2200-0600", "20260102", "055959")
    assert not match_date_time_pair("20260101-20260102", "2200-0600", "20260102", "070000")
    assert not match_date_time_pair("20260101-20260102", "2200-0600", "20260101", "210000")
    assert not match_range("2200-0600", "230000", "TM")


# ----------------------------------------------------------------------- datasets
def test_dataset_returns_only_requested_keys_and_zero_length_for_absent() -> None:
    query = Dataset()
    query.PatientID = "PID001"
    query.PatientName = ""
    query.PatientBirthDate = ""      # not in candidate -> zero-length
    result = match_dataset(query, _candidate())
    assert result is not None
    assert set(result.dir()) == {"PatientID", "PatientName", "PatientBirthDate",
                                 "SpecificCharacterSet"}
    assert str(result.PatientName) == "MÜLLER^JÖRG"
    assert result["PatientBirthDate"].value in (None, "")
    assert result.SpecificCharacterSet == "ISO_IR 192"


def test_dataset_mismatch_is_none() -> None:
    query = Dataset()
    query.PatientID = "OTHER"
    assert match_dataset(query, _candidate()) is None


def test_sequence_matching_returns_matching_items_reduced() -> None:
    query = Dataset()
    item = Dataset()
    item.Modality = "MR"
    item.ScheduledStationAETitle = ""
    query.ScheduledProcedureStepSequence = Sequence([item])
    result = match_dataset(query, _candidate())
    assert result is not None
    items = result.ScheduledProcedureStepSequence
    assert len(items) == 1
    assert items[0].ScheduledStationAETitle == "MR01"
    assert "ScheduledProcedureStepStartDate" not in items[0]


def test_sequence_matching_no_item_matches() -> None:
    query = Dataset()
    item = Dataset()
    item.Modality = "US"
    query.ScheduledProcedureStepSequence = Sequence([item])
    assert match_dataset(query, _candidate()) is None


def test_sequence_universal_returns_whole_sequence() -> None:
    query = Dataset()
    query.ScheduledProcedureStepSequence = Sequence([Dataset()])
    result = match_dataset(query, _candidate())
    assert result is not None
    assert len(result.ScheduledProcedureStepSequence) == 2
    assert result.ScheduledProcedureStepSequence[1].Modality == "MR"


def test_sequence_with_date_range_and_station() -> None:
    query = Dataset()
    item = Dataset()
    item.ScheduledStationAETitle = "CT01"
    item.ScheduledProcedureStepStartDate = "20260110-20260120"
    query.ScheduledProcedureStepSequence = Sequence([item])
    assert match_dataset(query, _candidate()) is not None
    item.ScheduledProcedureStepStartDate = "20260116-"
    assert match_dataset(query, _candidate()) is None   # CT01's step is on the 15th


def test_combined_pairs_inside_dataset() -> None:
    pair = (0x00400002, 0x00400003)  # Scheduled Procedure Step Start Date / Time
    step = _candidate().ScheduledProcedureStepSequence[0]
    key = Dataset()
    key.ScheduledProcedureStepStartDate = "20260114-20260115"
    key.ScheduledProcedureStepStartTime = "2200-1000"
    assert match_dataset(key, step, combined_pairs=[pair]) is not None
    assert match_dataset(key, step) is None   # independent matching: 0930 not in 2200-1000


# ------------------------------------------------------- worklist query answering
def _order(accession: str = "ACC1", family: str = "MÜLLER", station: str = "CT01"):
    import datetime as dt

    from simulators.world.models import Order, Patient, Procedure, ScheduledStep
    patient = Patient("PID-" + accession, "PACSIM", family, "ANNA", dt.date(1970, 5, 4), "F")
    procedure = Procedure("29252-4", "CT CHEST W/O CONTRAST", "LN", "CT", "CHEST")
    step = ScheduledStep(accession + "-S1", station, station + "_ROOM", "CT",
                         dt.datetime(2026, 1, 15, 9, 30), "CT CHEST")
    return Order("P" + accession, "F" + accession, accession, patient, procedure,
                 "RP" + accession, "1.2.826.0.1.3680043.10.999." + accession[-1], step)


def test_worklist_item_layout_and_charset() -> None:
    from simulators.dicom.worklist import build_worklist_item
    item = build_worklist_item(_order())
    assert item.SpecificCharacterSet == "ISO_IR 192"       # non-ASCII name -> UTF-8
    assert str(item.PatientName) == "MÜLLER^ANNA"
    sps = item.ScheduledProcedureStepSequence[0]
    assert (sps.ScheduledStationAETitle, sps.ScheduledProcedureStepStartDate,
            sps.ScheduledProcedureStepStartTime, sps.ScheduledProcedureStepStatus) == (
        "CT01", "20260115", "093000", "SCHEDULED")
    assert item.RequestedProcedureCodeSequence[0].CodeValue == "29252-4"
    assert "SpecificCharacterSet" not in build_worklist_item(_order(family="DOE"))


def test_answer_returns_requested_keys_and_pending_status() -> None:
    from simulators.dicom.worklist import STATUS_PENDING, answer_mwl_query, build_worklist_item
    items = [build_worklist_item(_order("ACC1")), build_worklist_item(_order("ACC2", station="MR01"))]
    query = Dataset()
    query.PatientName = ""
    step = Dataset()
    step.ScheduledStationAETitle = "MR01"
    query.ScheduledProcedureStepSequence = Sequence([step])
    answers = list(answer_mwl_query(query, items))
    assert [status for status, _ in answers] == [STATUS_PENDING]
    identifier = answers[0][1]
    assert identifier is not None and "AccessionNumber" not in identifier
    assert identifier.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "MR01"


def test_answer_rejects_non_mwl_identifiers_with_a900() -> None:
    from simulators.dicom.worklist import answer_mwl_query
    qr = Dataset()
    qr.QueryRetrieveLevel = "STUDY"
    two_items = Dataset()
    two_items.ScheduledProcedureStepSequence = Sequence([Dataset(), Dataset()])
    for query in (qr, two_items):
        (status, identifier), = list(answer_mwl_query(query, []))
        assert int(status.Status) == 0xA900 and identifier is None
        assert status.ErrorComment


def test_answer_stops_with_fe00_on_cancel() -> None:
    from simulators.dicom.worklist import STATUS_CANCEL, answer_mwl_query, build_worklist_item
    items = [build_worklist_item(_order(f"ACC{i}")) for i in range(1, 6)]
    seen: list[int] = []

    def cancelled() -> bool:
        return len(seen) >= 2

    statuses = []
    for status, _ in answer_mwl_query(Dataset(), items, is_cancelled=cancelled):
        statuses.append(status)
        seen.append(1)
    assert statuses == [0xFF00, 0xFF00, STATUS_CANCEL]


def test_answer_max_results_bounds_broad_query() -> None:
    from simulators.dicom.worklist import answer_mwl_query, build_worklist_item
    items = [build_worklist_item(_order(f"ACC{i}")) for i in range(1, 6)]
    assert len(list(answer_mwl_query(Dataset(), items, max_results=3))) == 3


def test_matching_first_then_building_gives_the_same_answers_as_match_dataset() -> None:
    """mwl_matches filters on the non-universal keys before building a response; the
    answers must be exactly match_dataset's, including "the SPS must have an item"."""
    from simulators.dicom.worklist import build_worklist_item, matching_keys, mwl_matches
    items = [build_worklist_item(_order(f"ACC{i}", family=("SMITH", "SMYTHE", "JONES")[i % 3],
                                        station=("CT01", "MR01")[i % 2])) for i in range(1, 9)]
    no_sps = build_worklist_item(_order("ACC9"))
    del no_sps.ScheduledProcedureStepSequence
    items.append(no_sps)

    def query(name: str = "", station: str = "", date: str = "", sps: bool = True) -> Dataset:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName, ds.AccessionNumber, ds.PatientID = name, "", ""
        ds.RequestedProcedureCodeSequence = Sequence()
        if sps:
            step = Dataset()
            step.ScheduledStationAETitle = station
            step.ScheduledProcedureStepStartDate = date
            step.Modality = ""
            step.ScheduledProtocolCodeSequence = Sequence()
            ds.ScheduledProcedureStepSequence = Sequence([step])
        return ds

    cases = [query(), query(station="MR01"), query(name="sm?th*"), query(date="20260101-20260115"),
             query(date="20260116-"), query(name="JONES", station="CT01"), query(sps=False)]
    for identifier in cases:
        expected = [r for r in (match_dataset(identifier, item) for item in items) if r is not None]
        assert list(mwl_matches(identifier, items)) == expected
    # all-universal SPS keys still require an item: ACC9 (no SPS) is not an answer
    assert len(list(mwl_matches(query(), items))) == 8
    assert len(list(mwl_matches(query(sps=False), items))) == 9
    reduced = matching_keys(query(name="sm?th*", station="CT01"))
    assert [e.keyword for e in reduced] == ["PatientName", "ScheduledProcedureStepSequence"]
    assert [e.keyword for e in reduced.ScheduledProcedureStepSequence[0]] == [
        "ScheduledStationAETitle"]
