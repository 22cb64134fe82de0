"""The worklist index (plain-value matching, cached encoded answers) against the old path.

Property-like: hundreds of random MWL identifiers built from the items' own values
(exact, wildcard, case-changed names, date/time ranges, UID lists, universal and
sequence keys, varying return-key sets) must give byte-identical answers through
``matching_answers`` (fast) and ``mwl_matches`` + encode (the reference), with and
without combined date-time matching and case-sensitive names, and again from cache.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace
from io import BytesIO

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from simulators.actors.ris_orders import OrderBook
from simulators.dicom.fast.files import decode_dataset, encode_dataset
from simulators.dicom.mwl_index import AnswerMemo, WorklistRecord, compile_query, matching_answers
from simulators.dicom.worklist import (
    SPS_START_PAIR, build_worklist_item, mwl_matches, prepare_mwl_records,
)
from simulators.world.world import World

TOP = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
       "AccessionNumber", "ReferringPhysicianName", "RequestedProcedureID",
       "RequestedProcedureDescription", "StudyInstanceUID", "RequestedProcedurePriority")
SPS = ("Modality", "ScheduledStationAETitle", "ScheduledStationName",
       "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
       "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription",
       "ScheduledProcedureStepID", "ScheduledProcedureStepStatus")


def _items(count: int = 60) -> list[Dataset]:
    world = World(seed=5, non_ascii=0.3)
    base = dt.datetime(2026, 3, 2, 7, 0)
    items = []
    for index in range(count):
        order = world.order(world.patient(index % 40), ("CT", "MR", "US")[index % 3],
                            station_ae=("CT01", "MR01", "BROAD")[index % 3],
                            station_name=f"ROOM{index % 4}", index=index,
                            start=base + dt.timedelta(hours=5 * index))
        items.append(build_worklist_item(order))
    del items[7].ScheduledProcedureStepSequence      # no SPS at all
    items[8].ScheduledProcedureStepSequence = Sequence()  # an empty SPS
    items[9].ScheduledProcedureStepSequence.append(Dataset())  # a second, empty step
    items[9].ScheduledProcedureStepSequence[1].ScheduledStationAETitle = "SECOND"
    del items[10].PatientSex                         # a return key the item lacks
    return items


def _value(rng: random.Random, keyword: str, source: Dataset) -> str:
    """A key value for ``keyword``: universal, exact, wildcard or range, from ``source``."""
    have = str(source.get(keyword, "") or "")
    roll = rng.random()
    if roll < 0.35 or not have:
        return rng.choice(("", "", "*")) if keyword not in ("StudyInstanceUID",) else ""
    if keyword == "PatientName" and roll < 0.5:
        return have.lower() if rng.random() < 0.5 else have.split("^")[0][:2] + "*"
    if keyword in ("PatientBirthDate", "ScheduledProcedureStepStartDate"):
        shift = rng.choice(("-", "", "range", "open"))
        if shift == "-":
            return f"-{have}"
        if shift == "open":
            return f"{have}-"
        if shift == "range":
            return f"{have[:6]}01-{have[:6]}28"
        return have
    if keyword == "ScheduledProcedureStepStartTime":
        return rng.choice((have, f"{have[:2]}-", f"-{have[:4]}", "0700-1200"))
    if keyword == "StudyInstanceUID":
        return rng.choice((have, f"{have}\\1.2.3"))
    if roll < 0.6 and len(have) > 2:
        return have[:-1] + "?"
    if roll < 0.7:
        return "*" + have[1:]
    if roll < 0.8:
        return "NOPE"
    return have


def _query(rng: random.Random, items: list[Dataset]) -> Dataset:
    source = rng.choice(items)
    step = (source.get("ScheduledProcedureStepSequence") or [Dataset()])
    step = step[0] if len(step) else Dataset()
    ds = Dataset()
    if rng.random() < 0.5:
        ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in rng.sample(TOP, rng.randrange(1, len(TOP) + 1)):
        setattr(ds, keyword, _value(rng, keyword, source))
    if rng.random() < 0.3:
        ds.RequestedProcedureCodeSequence = Sequence()
    shape = rng.random()
    if shape < 0.15:
        ds.ScheduledProcedureStepSequence = Sequence()          # universal: whole sequence
    elif shape < 0.25:
        ds.ScheduledProcedureStepSequence = Sequence([Dataset()])  # empty item: universal
    elif shape < 0.9:
        sub = Dataset()
        for keyword in rng.sample(SPS, rng.randrange(1, len(SPS) + 1)):
            setattr(sub, keyword, _value(rng, keyword, step))
        if rng.random() < 0.3:
            sub.ScheduledProtocolCodeSequence = Sequence()
        ds.ScheduledProcedureStepSequence = Sequence([sub])
    if rng.random() < 0.2:  # SPS start date/time at top level: what combined pairs look at
        ds.ScheduledProcedureStepStartDate = _value(rng, "ScheduledProcedureStepStartDate", step)
        ds.ScheduledProcedureStepStartTime = _value(rng, "ScheduledProcedureStepStartTime", step)
    return ds


@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # wildcards in CS keys are valid queries
@pytest.mark.parametrize("pn_case_sensitive,combined", [(False, False), (True, False),
                                                        (False, True)])
def test_fast_matcher_answers_exactly_as_the_reference_on_random_queries(
        pn_case_sensitive: bool, combined: bool) -> None:
    items = _items()
    records = [WorklistRecord.of(item) for item in items]
    rng = random.Random(1900 + pn_case_sensitive * 2 + combined)
    pairs = [SPS_START_PAIR] if combined else []
    matched_some = empty = 0
    for _ in range(300):
        query = _query(rng, items)
        syntax = rng.choice((ExplicitVRLittleEndian, ImplicitVRLittleEndian))

        def encode(ds: Dataset) -> bytes:
            return encode_dataset(ds, syntax)

        expected = [encode(ds) for ds in mwl_matches(query, items, pn_case_sensitive=pn_case_sensitive,
                                                     combined_datetime=combined)]
        compiled = compile_query(query, pn_case_sensitive=pn_case_sensitive, combined_pairs=pairs)
        first = list(matching_answers(compiled, records, syntax, encode))
        again = list(matching_answers(compiled, records, syntax, encode))  # from cache
        assert first == expected, query
        assert again == expected, query
        matched_some += 0 < len(expected) < len(items)
        empty += not expected
    # the generator is worth something only if it produces selective and empty queries
    assert matched_some > 50 and empty > 20


def test_identical_queries_encode_each_item_once() -> None:
    records = [WorklistRecord.of(item) for item in _items(20)]
    query = Dataset()
    query.PatientName = ""
    query.AccessionNumber = ""
    step = Dataset()
    step.Modality = ""
    query.ScheduledProcedureStepSequence = Sequence([step])
    calls: list[int] = []

    def encode(ds: Dataset) -> bytes:
        calls.append(1)
        return encode_dataset(ds, ExplicitVRLittleEndian)

    answers = [list(matching_answers(compile_query(query), records, ExplicitVRLittleEndian, encode))
               for _ in range(5)]
    # every item with a step answers (item 7 has no SPS, item 8 an empty one)
    assert len(answers[0]) == 18
    assert all(a == answers[0] for a in answers)
    assert len(calls) == len(answers[0])  # encoded once, then served from cache
    other = Dataset()
    other.PatientName = ""
    list(matching_answers(compile_query(other), records, ExplicitVRLittleEndian, encode))
    assert len(calls) == len(answers[0]) + 20  # another return-key set: encoded anew


def test_max_results_bounds_the_fast_path() -> None:
    records = [WorklistRecord.of(item) for item in _items(20)]
    answers = list(matching_answers(compile_query(Dataset()), records, ExplicitVRLittleEndian,
                                    lambda ds: encode_dataset(ds, ExplicitVRLittleEndian),
                                    max_results=4))
    assert len(answers) == 4


def test_a_changed_order_is_answered_with_its_new_values() -> None:
    """The cache belongs to the item: a demographics update must not serve the old name."""
    world = World(seed=3)
    book = OrderBook()
    order = book.schedule(world.order(world.patient(1), "CT", station_ae="CT01",
                                      station_name="CT01", index=1))
    query = Dataset()
    query.PatientName = ""
    query.PatientID = order.patient.patient_id

    def answer() -> Dataset:
        encoded, failure = prepare_mwl_records(lambda: query, book.worklist_records(),
                                               ExplicitVRLittleEndian,
                                               lambda ds: encode_dataset(ds, ExplicitVRLittleEndian))
        assert failure is None and len(encoded) == 1
        return decode_dataset(BytesIO(encoded[0]), ExplicitVRLittleEndian)

    before = answer()
    book.register_patient(replace(order.patient, family_name="RENAMED"))
    after = answer()
    assert str(before.PatientName).split("^")[0] != "RENAMED"
    assert str(after.PatientName).split("^")[0] == "RENAMED"


def test_answer_memo_is_bounded_and_keyed_exactly() -> None:
    memo = AnswerMemo(size=2)
    memo.put((1, b"q", "ts"), [b"a"])
    memo.put((1, b"r", "ts"), [b"b"])
    assert memo.get((1, b"q", "ts")) == [b"a"]       # refreshed: now most recent
    memo.put((1, b"s", "ts"), [b"c"])                # evicts (1, b"r")
    assert memo.get((1, b"r", "ts")) is None
    assert memo.get((2, b"q", "ts")) is None          # another worklist version
    assert memo.get((1, b"q", "ts")) == [b"a"] and memo.hits == 2
