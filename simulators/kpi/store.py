"""Every probe result, kept in a local SQLite file: flat, append-only, indexed by time.

Why SQLite and not Prometheus alone: the weekly comparison (``pacsim probe report``)
needs every raw latency of two weeks to compute exact percentiles, on a laptop in
the command centre with no Prometheus running. One row per result; figures are a
JSON object (their names vary per probe). WAL mode lets ``report`` read while a
probe loop writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator

from simulators.errors import StoreError
from simulators.kpi.result import ProbeResult

DB_NAME = "probes.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    started REAL NOT NULL,
    probe TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    seconds REAL NOT NULL,
    figures TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS results_by_time ON results (started);
"""


class ResultStore:
    """``DIR/probes.sqlite``; ``add`` appends, ``between`` reads a time window."""

    def __init__(self, directory: Path | str) -> None:
        self.path = Path(directory) / DB_NAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the probe store: {exc}", path=str(self.path)) from exc
        self._lock = threading.Lock()

    def add(self, results: Iterable[ProbeResult]) -> int:
        rows = [(r.started, r.probe, r.target, r.outcome, r.seconds,
                 json.dumps(r.figures, sort_keys=True), r.error) for r in results]
        try:
            with self._lock, self._db:
                self._db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write probe results: {exc}", path=str(self.path)) from exc
        return len(rows)

    def between(self, start: float, end: float, target: str | None = None
                ) -> Iterator[ProbeResult]:
        """Results with ``start <= started < end`` (epoch seconds), oldest first."""
        sql = "SELECT * FROM results WHERE started >= ? AND started < ?"
        params: list[object] = [start, end]
        if target is not None:
            sql += " AND target = ?"
            params.append(target)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY started", params).fetchall()
        for started, probe, target_, outcome, seconds, figures, error in rows:
            yield ProbeResult(probe, target_, outcome, seconds, started,
                              json.loads(figures or "{}"), error)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ResultStore", "DB_NAME"]
