"""The migration's memory: every study's state in SQLite, committed after each study.

Why SQLite in the report directory: Ctrl-C, ``kill -9`` or a reboot may stop a
migration anywhere, and a re-run must migrate nothing twice. Each state change is
its own committed transaction (WAL, ``synchronous=FULL``: it is once per study, not
per object), so after a crash the checkpoint is at most one study behind, and that
study is in state ``moving``. A study found in ``moving`` on resume is not moved
again blindly: the runner first asks the target whether it already holds it.

States: ``pending`` -> ``moving`` -> ``moved`` | ``failed`` -> ``validated`` |
``mismatch``. Findings (data quality and transfer mismatches) live here too, so a
resumed run's report covers the studies validated before the crash; so do each
study's :class:`~simulators.migration.judge.Evidence` and the identities of its source
files (the cross-study state: ``demo`` and ``sops``, the tables
:class:`~simulators.quality.checks.CrossStudyChecker` reads), written in the same
transaction as the study's final state. A kill -9 therefore loses either a whole
study (redone on resume) or nothing: the cross-study checks never see half an archive.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from simulators.errors import ConfigError
from simulators.migration.judge import Evidence
from simulators.migration.plan import StudyRef
from simulators.quality.checks import CROSS_SCHEMA, INSERT_DEMO, INSERT_SOP

STATES = ("pending", "moving", "moved", "failed", "validated", "mismatch")
DONE_STATES = ("validated", "mismatch")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY, study_date TEXT NOT NULL, patient_id TEXT NOT NULL,
    stage TEXT NOT NULL, state TEXT NOT NULL, moves INTEGER NOT NULL DEFAULT 0,
    sample INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '',
    seconds REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state);
CREATE TABLE IF NOT EXISTS findings (
    study_uid TEXT NOT NULL, cls TEXT NOT NULL, detail TEXT NOT NULL,
    kind TEXT NOT NULL, PRIMARY KEY (study_uid, cls, kind));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (study_uid TEXT PRIMARY KEY, json TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class FindingRow:
    """A stored finding; ``kind`` is ``quality`` (source defect) or ``transfer``."""

    study_uid: str
    cls: str
    detail: str
    kind: str


class Checkpoint:
    """Thread-safe (one connection behind a lock; writes are tiny)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._conn.executescript(CROSS_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the checkpoint {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        with self._lock:
            self._conn.execute(sql, tuple(params))

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # ------------------------------------------------------------------ run settings
    def remember(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def recall(self, key: str, default: Any = None) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    # ------------------------------------------------------------------ studies
    def add(self, refs: Iterable[StudyRef], stage: str, *, sample: bool = False) -> int:
        """Register studies as pending (known ones keep their state); returns new ones."""
        added = 0
        with self._lock:
            self._conn.execute("BEGIN")
            for ref in refs:
                cursor = self._conn.execute(
                    "INSERT OR IGNORE INTO studies (study_uid, study_date, patient_id, stage, "
                    "state, sample) VALUES (?,?,?,?,?,?)",
                    (ref.study_uid, ref.study_date, ref.patient_id, stage, "pending", int(sample)))
                added += cursor.rowcount
                if sample:
                    self._conn.execute("UPDATE studies SET sample = 1 WHERE study_uid = ?",
                                       (ref.study_uid,))
            self._conn.execute("COMMIT")
        return added

    def state(self, study_uid: str) -> str | None:
        rows = self._rows("SELECT state FROM studies WHERE study_uid = ?", (study_uid,))
        return rows[0][0] if rows else None

    def set_state(self, study_uid: str, state: str, detail: str = "", *,
                  moved: bool = False, seconds: float | None = None) -> None:
        """One committed transaction per change (the resume guarantee)."""
        if state not in STATES:
            raise ValueError(state)
        self._write("UPDATE studies SET state = ?, detail = ?, moves = moves + ?, "
                    "seconds = COALESCE(?, seconds) WHERE study_uid = ?",
                    (state, detail, int(moved), seconds, study_uid))

    def record(self, study_uid: str, findings: Iterable[tuple[str, str, str]], state: str,
               seconds: float | None = None, *, evidence: Evidence | None = None,
               identities: Iterable[tuple[tuple[str, ...], tuple[str, ...]]] = ()) -> None:
        """Replace a study's findings ``(cls, detail, kind)``, store its evidence and its
        files' identities, and set its final state: one transaction."""
        pairs = list(identities)
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute("DELETE FROM findings WHERE study_uid = ?", (study_uid,))
            self._conn.executemany("INSERT OR REPLACE INTO findings VALUES (?,?,?,?)",
                                   [(study_uid, c, d, k) for c, d, k in findings])
            # evidence of an earlier attempt must not outlive a failed retry
            self._conn.execute("DELETE FROM evidence WHERE study_uid = ?", (study_uid,))
            if evidence is not None:
                self._conn.execute("INSERT INTO evidence VALUES (?, ?)",
                                   (study_uid, evidence.to_json()))
            self._conn.executemany(INSERT_DEMO, [demo for demo, _ in pairs])
            self._conn.executemany(INSERT_SOP, [sop for _, sop in pairs])
            self._conn.execute("UPDATE studies SET state = ?, seconds = seconds + COALESCE(?, 0) "
                               "WHERE study_uid = ?", (state, seconds, study_uid))
            self._conn.execute("COMMIT")

    def replace_verdict(self, study_uid: str, rows: Iterable[tuple[str, str, str]],
                        state: str) -> None:
        """Re-judged transfer findings (kinds ``transfer``/``explained``) and the state
        that follows from them; quality findings stay."""
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute("DELETE FROM findings WHERE study_uid = ? AND kind IN "
                               "('transfer', 'explained')", (study_uid,))
            self._conn.executemany("INSERT OR REPLACE INTO findings VALUES (?,?,?,?)",
                                   [(study_uid, c, d, k) for c, d, k in rows])
            self._conn.execute("UPDATE studies SET state = ? WHERE study_uid = ?",
                               (state, study_uid))
            self._conn.execute("COMMIT")

    def replace_quality(self, classes: Iterable[str], rows: Iterable[FindingRow]) -> None:
        """Replace every quality finding of ``classes`` (the cross-study ones) at once."""
        wanted = list(classes)
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute(f"DELETE FROM findings WHERE kind = 'quality' AND cls IN "
                               f"({','.join('?' * len(wanted))})", wanted)
            self._conn.executemany("INSERT OR REPLACE INTO findings VALUES (?,?,?,?)",
                                   [(r.study_uid, r.cls, r.detail, r.kind) for r in rows])
            self._conn.execute("COMMIT")

    def add_findings(self, rows: Iterable[FindingRow]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO findings VALUES (?,?,?,?)",
                                   [(r.study_uid, r.cls, r.detail, r.kind) for r in rows])
            self._conn.execute("COMMIT")

    def in_state(self, *states: str, stage: str | None = None, sample: bool | None = None
                 ) -> Iterator[StudyRef]:
        """Studies in any of ``states`` (oldest first), fetched in pages: bounded memory."""
        last = ("", "")
        while True:
            clauses = [f"state IN ({','.join('?' * len(states))})", "(study_date, study_uid) > (?, ?)"]
            params: list[Any] = [*states, *last]
            if stage is not None:
                clauses.append("stage = ?")
                params.append(stage)
            if sample is not None:
                clauses.append("sample = ?")
                params.append(int(sample))
            rows = self._rows("SELECT study_uid, study_date, patient_id FROM studies WHERE "
                              f"{' AND '.join(clauses)} ORDER BY study_date, study_uid LIMIT 500",
                              params)
            if not rows:
                return
            for uid, date, patient in rows:
                yield StudyRef(uid, date, patient)
            last = (rows[-1][1], rows[-1][0])

    def counts(self) -> dict[str, int]:
        found = dict(self._rows("SELECT state, COUNT(*) FROM studies GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}

    def total_moves(self) -> int:
        return int(self._rows("SELECT COALESCE(SUM(moves), 0) FROM studies")[0][0])

    def moves_of(self, study_uid: str) -> int:
        rows = self._rows("SELECT moves FROM studies WHERE study_uid = ?", (study_uid,))
        return int(rows[0][0]) if rows else 0

    def findings(self, kind: str | None = None) -> list[FindingRow]:
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        return [FindingRow(*row) for row in self._rows(
            f"SELECT study_uid, cls, detail, kind FROM findings {where} "
            "ORDER BY study_uid, cls", params)]

    def studies_of_stage(self) -> dict[str, dict[str, int]]:
        """Per stage: studies per state (the report's stage table)."""
        table: dict[str, dict[str, int]] = {}
        for stage, state, count in self._rows(
                "SELECT stage, state, COUNT(*) FROM studies GROUP BY stage, state"):
            table.setdefault(stage, {})[state] = int(count)
        return table

    def classes_of(self, study_uid: str, kind: str) -> set[str]:
        return {row[0] for row in self._rows(
            "SELECT cls FROM findings WHERE study_uid = ? AND kind = ?", (study_uid, kind))}

    # ------------------------------------------------------------------ facts (judge.Facts)
    def patient_values(self, patient_id: str, column: str) -> set[str]:
        """Values of ``column`` (patient_name, birth_date, sex) the files of an ID carry."""
        if column not in ("patient_name", "birth_date", "sex"):
            raise ValueError(column)
        return {row[0] for row in self._rows(
            f"SELECT DISTINCT {column} FROM demo WHERE patient_id = ?", (patient_id,))}

    def holders(self, sop_uid: str) -> list[str]:
        """Source studies whose files hold ``sop_uid``."""
        return [row[0] for row in self._rows(
            "SELECT study_uid FROM sops WHERE sop_uid = ? ORDER BY study_uid", (sop_uid,))]

    def evidence(self, study_uid: str) -> Evidence | None:
        rows = self._rows("SELECT json FROM evidence WHERE study_uid = ?", (study_uid,))
        return Evidence.from_json(rows[0][0]) if rows else None

    def judged_studies(self, only: Iterable[str] | None = None) -> Iterator[str]:
        """Studies with recorded evidence (all, or those of ``only``), in pages."""
        if only is not None:
            for uid in only:
                if self._rows("SELECT 1 FROM evidence WHERE study_uid = ?", (uid,)):
                    yield uid
            return
        last = ""
        while True:
            rows = self._rows("SELECT study_uid FROM evidence WHERE study_uid > ? "
                              "ORDER BY study_uid LIMIT 1000", (last,))
            if not rows:
                return
            for (uid,) in rows:
                yield uid
            last = rows[-1][0]

    def study_facts(self, study_uids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Patient, accession, date and modality of each study, for the report's tables
        (from the studies table and the validator's evidence; '' where not recorded)."""
        facts: dict[str, dict[str, str]] = {}
        for uid in dict.fromkeys(study_uids):
            rows = self._rows("SELECT patient_id, study_date FROM studies WHERE study_uid = ?",
                              (uid,))
            evidence = self.evidence(uid)
            own = evidence.own if evidence else {}
            modalities = sorted({m for s in (evidence.series.values() if evidence else ())
                                 for m in s.get("source") or [] if m})  # type: ignore[union-attr]
            facts[uid] = {
                "patient_id": rows[0][0] if rows else " / ".join(own.get("PatientID", [])),
                "patient_name": " / ".join(v for v in own.get("PatientName", []) if v),
                "accession": " / ".join(v for v in own.get("AccessionNumber", []) if v),
                "study_date": rows[0][1] if rows else "",
                "modality": "/".join(modalities)}
        return facts

    def seconds_total(self) -> float:
        return float(self._rows("SELECT COALESCE(SUM(seconds), 0) FROM studies")[0][0])


__all__ = ["Checkpoint", "FindingRow", "STATES", "DONE_STATES"]
