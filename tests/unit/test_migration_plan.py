"""Planning and the small parsers of `pacsim migrate`: strategies, windows, batches,
the checkpoint's resume rules, morphs, rates and peers."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from simulators.errors import ConfigError
from simulators.migration.checkpoint import Checkpoint
from simulators.cli.migration import parse_rate
from simulators.dicom.address import parse_ae_address as parse_peer
from simulators.migration.judge import Evidence
from simulators.migration.morph import load_rules, parse_morphs
from simulators.quality.checks import identity_rows
from simulators.migration.plan import (
    Stage, StudyRef, batches, parse_since, stages_for, studies_by_find, studies_from_index,
)
from simulators.migration.progress import Progress, format_eta
from simulators.migration.runner import _reservoir

TODAY = dt.date(2026, 6, 15)


@pytest.mark.parametrize(("text", "days"), [("2y", 730), ("18m", 540), ("6w", 42), ("30d", 30),
                                            (" 1y ", 365)])
def test_parse_since(text: str, days: int) -> None:
    assert parse_since(text) == dt.timedelta(days=days)


@pytest.mark.parametrize("text", ["", "2", "y", "0y", "2x", "-1y", None])
def test_parse_since_rejects_with_the_field(text) -> None:
    with pytest.raises(ConfigError, match="--since"):
        parse_since(text)


def test_strategies_and_their_stages() -> None:
    assert stages_for("full", None, TODAY) == [Stage("all")]
    staged = stages_for("staged", "2y", TODAY)
    assert staged == [Stage("since 2y", since="20240615"), Stage("older", before="20240615")]
    assert stages_for("parallel", "1y", TODAY) == [Stage("since 1y", since="20250615")]
    with pytest.raises(ConfigError, match="--strategy"):
        stages_for("big-bang", None, TODAY)


def test_stage_membership_puts_undated_studies_with_the_older_stage() -> None:
    recent, older = stages_for("staged", "2y", TODAY)
    for date, in_recent in (("20260101", True), ("20240615", True), ("20240614", False),
                            ("", False), ("2019-13-45", False), ("20191345", False)):
        assert recent.holds(date) is in_recent, date
        assert older.holds(date) is not in_recent, date


def test_batches_stream_and_bound() -> None:
    refs = (StudyRef(str(i)) for i in range(7))
    assert [len(b) for b in batches(refs, 3)] == [3, 3, 1]
    with pytest.raises(ConfigError, match="--batch"):
        list(batches([], 0))


def test_studies_from_index_oldest_first_by_stage(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE studies (study_uid TEXT, patient_id TEXT, study_date TEXT)")
        conn.executemany("INSERT INTO studies VALUES (?,?,?)",
                         [("1.3", "P1", "20250101"), ("1.1", "P2", "20100505"),
                          ("1.2", "P1", "20240615"), ("1.4", "P3", "")])
    recent, older = stages_for("staged", "2y", TODAY)
    assert [r.study_uid for r in studies_from_index(db, recent)] == ["1.2", "1.3"]
    assert [r.study_uid for r in studies_from_index(db, older)] == ["1.4", "1.1"]
    assert [r.study_uid for r in studies_from_index(db, Stage("all"))] == ["1.4", "1.1", "1.2", "1.3"]


def test_studies_by_find_walks_year_windows_within_the_stage() -> None:
    asked: list[str] = []
    data = {"20250301": "a", "20241231": "b", "20240615": "c", "20240614": "e", "20200101": "d"}

    def find(date_range: str) -> list[StudyRef]:
        asked.append(date_range)
        low, high = date_range.split("-")
        return [StudyRef(uid, date) for date, uid in data.items() if low <= date <= high]

    recent = stages_for("parallel", "2y", TODAY)[0]
    found = list(studies_by_find(find, recent, TODAY))
    assert [r.study_uid for r in found] == ["c", "b", "a"]
    assert asked == ["20240615-20241231", "20250101-20251231", "20260101-20260615"]


def test_checkpoint_resume_rules(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "cp.sqlite")
    refs = [StudyRef(f"1.{i}", f"2020010{i}", "P") for i in range(1, 6)]
    assert checkpoint.add(refs, "all") == 5
    checkpoint.set_state("1.1", "moving")
    checkpoint.set_state("1.1", "moved", moved=True)
    checkpoint.record("1.1", [("private-tags", "x", "quality")], "validated")
    checkpoint.record("1.2", [("demographics", "PatientID: 'A' -> 'B'", "transfer")], "mismatch")
    checkpoint.close()
    again = Checkpoint(tmp_path / "cp.sqlite")  # a re-run opens the same file
    assert again.add(refs, "all") == 0  # nothing new, nothing reset
    assert again.state("1.1") == "validated" and again.moves_of("1.1") == 1
    assert [r.study_uid for r in again.in_state("pending")] == ["1.3", "1.4", "1.5"]
    again.replace_verdict("1.2", [("demographics", "[by patient-name-conflict] x",
                                   "explained")], "validated")
    assert again.state("1.2") == "validated"
    assert [f.kind for f in again.findings()] == ["quality", "explained"]


def test_checkpoint_keeps_evidence_and_identities_with_the_state(tmp_path: Path) -> None:
    """The cross-study state is written in the study's own transaction (kill -9 safe),
    and a failed retry drops the evidence of the earlier attempt."""
    checkpoint = Checkpoint(tmp_path / "cp.sqlite")
    checkpoint.add([StudyRef("1.1", "20200101", "P")], "all")
    evidence = Evidence("1.1", found=True, source_count=1, target_count=1)
    ids = [identity_rows("1.1", "9.1", "P", "DOE^JO", "19700101")]
    checkpoint.record("1.1", [], "validated", evidence=evidence, identities=ids)
    checkpoint.close()
    again = Checkpoint(tmp_path / "cp.sqlite")
    assert again.evidence("1.1") == evidence
    assert again.holders("9.1") == ["1.1"]
    assert again.patient_values("P", "patient_name") == {"DOE^JO"}
    again.record("1.1", [("transfer-failed", "boom", "transfer")], "failed")
    assert again.evidence("1.1") is None and again.state("1.1") == "failed"


def test_reservoir_sample_is_seeded_and_bounded() -> None:
    refs = [StudyRef(str(i)) for i in range(1000)]
    first = _reservoir(iter(refs), 10, seed=4)
    assert len(set(first)) == 10 and first == _reservoir(iter(refs), 10, seed=4)
    assert first != _reservoir(iter(refs), 10, seed=5)
    assert _reservoir(iter(refs[:3]), 10, seed=4) == ["0", "1", "2"]


def test_morphs_prefix_and_name_swap() -> None:
    morphs = parse_morphs({"PatientID": {"prefix": "LEG-"}, "PatientName": {"swap": True}})
    ds = Dataset()
    ds.PatientID, ds.PatientName = "PSM1", "Doe^John^Q"
    for morph in morphs:
        morph.apply(ds)
    assert ds.PatientID == "LEG-PSM1" and str(ds.PatientName) == "John^Doe^Q"


@pytest.mark.parametrize(("spec", "message"), [
    ({"PatientNam": {"prefix": "X"}}, "unknown DICOM keyword"),
    ({"PatientID": {"suffix": "X"}}, "expected"),
    ({"PatientID": {"swap": "yes"}}, "swap"),
    ({"Rows": {"prefix": "1"}}, "text attributes"),
    (["PatientID"], "mapping"),
])
def test_morph_errors_name_the_field(spec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_morphs(spec)


def test_rules_file_with_morph_and_ingestion_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text('private_tags: allow\nmorph:\n  PatientID: {prefix: "LEG-"}\n')
    rules, morphs = load_rules(path)
    assert rules.private_tags == "allow" and morphs[0].prefix == "LEG-"
    path.write_text("private_tags: maybe\n")
    with pytest.raises(ConfigError, match="private_tags"):
        load_rules(path)


@pytest.mark.parametrize(("text", "value"), [("0.5%", 0.005), ("2%", 0.02), ("0.01", 0.01),
                                             ("0", 0.0)])
def test_parse_rate(text: str, value: float) -> None:
    assert parse_rate(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["lots", "150%", "-1%", "1.5"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--rollback-threshold"):
        parse_rate(text)


def test_parse_peer() -> None:
    peer = parse_peer("OLD_PACS@10.0.0.5:104", "--source")
    assert (peer.ae_title, peer.host, peer.port) == ("OLD_PACS", "10.0.0.5", 104)
    for bad in ("OLD_PACS@host", "@host:104", "A@h:0", "A@h:99999", "WAY_TOO_LONG_AE_TITLE@h:1"):
        with pytest.raises(ConfigError, match="--source"):
            parse_peer(bad, "--source")


def test_progress_line() -> None:
    import io

    stream = io.StringIO()
    progress = Progress(4, stream)
    for _ in range(4):
        progress.advance()
    assert "4/4 studies (100%)" in stream.getvalue() and "studies/s" in stream.getvalue()
    assert format_eta(3725) == "1:02:05" and format_eta(None) == "--:--"
