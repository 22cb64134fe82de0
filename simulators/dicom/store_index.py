"""The archive store's SQLite index: its schema and every statement run against it.

Why a module of its own, private to :mod:`simulators.dicom.store`: the schema used to
leak - C-FIND translated identifiers into SQL in ``qr.py``, the migration planner and
the legacy audit opened the index file and queried its tables - so a column rename or
a new index meant hunting SQL across packages, and the store could not change its
layout without breaking callers it did not know. Here the tables, the connections
and the statements live together, behind named queries with typed results;
:class:`~simulators.dicom.store.DicomStore` (files, durability, conflict policy) is
the only caller, and other code goes through it. ``tests/unit/test_store_privacy.py``
fails if SQL against these tables appears anywhere else in ``simulators/``.

Connections: writes share one connection behind a lock (SQLite has one writer
anyway); reads use one connection per thread, so a C-FIND runs while another
association stores. WAL with ``synchronous=NORMAL`` (why: store.py's docstring);
the seal row is the one write committed with a synced log.

Paths: ``instances.path`` is relative to the store root (``objects/<study>/...``) and
resolved against the root this index was opened under, so a store directory that is
moved, copied or opened by a relative path still serves every file it lists. Indexes
written before that held absolute (or working-directory-relative) paths; they are
rewritten once on open (:meth:`StoreIndex.migrate_paths`).

Demographics: the ``patients`` row keeps the first-seen values of a Patient ID (a
legacy PACS's patient record), but C-FIND must answer what the files hold, and a
legacy archive's studies of one Patient ID disagree (a desk that typed the name in
capitals, a misfiled series under another ID). So each study row and each series row
carries its own PatientID/PatientName/PatientBirthDate/PatientSex, as the first
instance that created it held them, and a query answers and matches them by level:

* PATIENT level: the patient row (one answer per Patient ID, first-seen values);
* STUDY level: the study's own values (when files of one study disagree - a split
  study with one series under another ID - the study's first-seen values);
* SERIES level: the series' own values (so a misfiled series answers its own ID);
* IMAGE level: the series' values too - no source or seeded defect varies the
  demographics inside one series, and four more columns on the largest table (one
  row per object) would cost every store for no answer that differs.

A retrieve selects with the same columns as a C-FIND at its level, so a STUDY-level
C-MOVE/C-GET of a split study still moves every series. Indexes written before these
columns existed get them on open, filled from one file per series
(:meth:`StoreIndex.migrate_demographics`).

C-FIND: the caller (qr.py) applies PS3.4 semantics - which keys match at a level,
universal matching, which values are wildcards or ranges - and hands over
:class:`KeyMatch` conditions; this module turns them into SQL on the tables.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, NamedTuple, Sequence

from simulators.dicom.matching import match_range, match_string
from simulators.dicom.part10 import normalise_time
from simulators.errors import StoreError

log = logging.getLogger(__name__)

#: ``store_meta`` row recording that every instance path is root-relative.
_PATHS_KEY, _PATHS_RELATIVE = "paths", "relative"
#: ``store_meta`` row present while an old index's demographic columns are unfilled.
_DEMOGRAPHICS_KEY = "demographics"

#: The per-study and per-series demographic columns (same names as ``patients``'),
#: by the C-FIND keyword they answer; appended to the tables' column lists, so an old
#: index gains them with ``ALTER TABLE ... ADD COLUMN`` and positions still agree.
DEMOGRAPHICS: dict[str, str] = {"PatientID": "patient_id", "PatientName": "patient_name",
                                "PatientBirthDate": "birth_date", "PatientSex": "sex"}
_STUDY_DEMOGRAPHICS = ("patient_name", "birth_date", "sex")  # patient_id: always there
_SERIES_DEMOGRAPHICS = ("patient_id", "patient_name", "birth_date", "sex")
#: Which table answers the demographic keys at each query level (module docstring).
_DEMOGRAPHICS_OF_LEVEL = {"PATIENT": "p", "STUDY": "st", "SERIES": "se", "IMAGE": "se"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_id TEXT PRIMARY KEY, issuer TEXT NOT NULL, patient_name TEXT NOT NULL,
    birth_date TEXT NOT NULL, sex TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY, patient_id TEXT NOT NULL, study_date TEXT NOT NULL,
    study_time TEXT NOT NULL, accession TEXT NOT NULL, description TEXT NOT NULL,
    referring TEXT NOT NULL, study_id TEXT NOT NULL, patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '', sex TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession);
CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, modality TEXT NOT NULL,
    series_number TEXT NOT NULL, description TEXT NOT NULL,
    patient_id TEXT NOT NULL DEFAULT '', patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '', sex TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS series_study ON series(study_uid);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT NOT NULL, series_uid TEXT NOT NULL, study_uid TEXT NOT NULL,
    sop_class TEXT NOT NULL, instance_number TEXT NOT NULL, path TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL, received REAL NOT NULL, calling_ae TEXT NOT NULL,
    size INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (sop_uid, study_uid));
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERTS = ("INSERT OR IGNORE INTO patients VALUES (?,?,?,?,?)",
            "INSERT OR IGNORE INTO studies VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            "INSERT OR IGNORE INTO series VALUES (?,?,?,?,?,?,?,?,?)",
            "INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?)")

#: The rows of one object, in ``_INSERTS`` order (patient, study, series, instance).
IndexRows = tuple[tuple[Any, ...], ...]


# ------------------------------------------------------------------ typed results
@dataclass(frozen=True, slots=True)
class StoredInstance:
    """One indexed object, enough to retrieve it or to answer storage commitment."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    path: Path
    transfer_syntax: str


@dataclass(frozen=True, slots=True)
class StudySummary:
    """A study as tests and scenario expectations look at it."""

    study_uid: str
    patient_id: str
    patient_name: str
    accession: str
    study_date: str
    modalities: tuple[str, ...]
    series_count: int
    instance_count: int


class StoredCopy(NamedTuple):
    """The indexed copy of a SOP Instance UID: what a resend is compared against.

    ``digest`` is empty for rows written without one (then the file is compared)."""

    path: Path
    digest: str


class StudyDate(NamedTuple):
    """A study as the migration planner streams it: identity, date, patient."""

    study_uid: str
    study_date: str
    patient_id: str


Kind = Literal["text", "uid", "date", "time", "count", "modalities"]
Mode = Literal["exact", "pattern", "range"]


@dataclass(frozen=True, slots=True)
class SearchKey:
    """An attribute the index can match and return: the level whose table holds it and
    how its value is typed (``count`` and ``modalities`` are computed, not stored)."""

    level: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class KeyMatch:
    """One C-FIND matching condition, already interpreted by PS3.4's rules.

    ``exact``: any of ``values`` (single value or UID list matching; for
    ModalitiesInStudy, any series of the study has one of them); ``pattern``:
    wildcard/PN matching of any value; ``range``: DA/TM/DT range matching of any
    value. ``vr`` steers the pattern and range rules (matching.py).
    """

    keyword: str
    mode: Mode
    values: tuple[str, ...]
    vr: str = ""


#: A C-FIND match: requested keyword -> value (text/uid/date/time ``str`` or None,
#: count ``int``, modalities a sorted ``tuple[str, ...]``).
MatchRow = Mapping[str, Any]

_COUNT = "(SELECT COUNT(*) FROM {table} x {join} WHERE {where})"
#: Keyword -> (search key, SQL expression on the level's FROM clause).
_KEYS: dict[str, tuple[SearchKey, str]] = {
    "PatientID": (SearchKey("PATIENT", "text"), "p.patient_id"),
    "IssuerOfPatientID": (SearchKey("PATIENT", "text"), "p.issuer"),
    "PatientName": (SearchKey("PATIENT", "text"), "p.patient_name"),
    "PatientBirthDate": (SearchKey("PATIENT", "date"), "p.birth_date"),
    "PatientSex": (SearchKey("PATIENT", "text"), "p.sex"),
    "NumberOfPatientRelatedStudies": (SearchKey("PATIENT", "count"), _COUNT.format(
        table="studies", join="", where="x.patient_id = p.patient_id")),
    "NumberOfPatientRelatedSeries": (SearchKey("PATIENT", "count"), _COUNT.format(
        table="series", join="JOIN studies y ON y.study_uid = x.study_uid",
        where="y.patient_id = p.patient_id")),
    "NumberOfPatientRelatedInstances": (SearchKey("PATIENT", "count"), _COUNT.format(
        table="instances", join="JOIN studies y ON y.study_uid = x.study_uid",
        where="y.patient_id = p.patient_id")),
    "StudyInstanceUID": (SearchKey("STUDY", "uid"), "st.study_uid"),
    "StudyDate": (SearchKey("STUDY", "date"), "st.study_date"),
    "StudyTime": (SearchKey("STUDY", "time"), "st.study_time"),
    "AccessionNumber": (SearchKey("STUDY", "text"), "st.accession"),
    "StudyDescription": (SearchKey("STUDY", "text"), "st.description"),
    "ReferringPhysicianName": (SearchKey("STUDY", "text"), "st.referring"),
    "StudyID": (SearchKey("STUDY", "text"), "st.study_id"),
    "ModalitiesInStudy": (SearchKey("STUDY", "modalities"),
                          "(SELECT group_concat(DISTINCT x.modality) "
                          "FROM series x WHERE x.study_uid = st.study_uid)"),
    "NumberOfStudyRelatedSeries": (SearchKey("STUDY", "count"), _COUNT.format(
        table="series", join="", where="x.study_uid = st.study_uid")),
    "NumberOfStudyRelatedInstances": (SearchKey("STUDY", "count"), _COUNT.format(
        table="instances", join="", where="x.study_uid = st.study_uid")),
    "SeriesInstanceUID": (SearchKey("SERIES", "uid"), "se.series_uid"),
    "Modality": (SearchKey("SERIES", "text"), "se.modality"),
    "SeriesNumber": (SearchKey("SERIES", "text"), "se.series_number"),
    "SeriesDescription": (SearchKey("SERIES", "text"), "se.description"),
    "NumberOfSeriesRelatedInstances": (SearchKey("SERIES", "count"), _COUNT.format(
        table="instances", join="", where="x.series_uid = se.series_uid")),
    "SOPInstanceUID": (SearchKey("IMAGE", "uid"), "i.sop_uid"),
    "SOPClassUID": (SearchKey("IMAGE", "uid"), "i.sop_class"),
    "InstanceNumber": (SearchKey("IMAGE", "text"), "i.instance_number"),
}
#: The keys C-FIND can match and return, by keyword (qr.py's ``FIELDS``).
SEARCH_KEYS: dict[str, SearchKey] = {keyword: key for keyword, (key, _) in _KEYS.items()}

_FROM = {
    "PATIENT": "FROM patients p",
    "STUDY": "FROM studies st JOIN patients p ON p.patient_id = st.patient_id",
    "SERIES": "FROM series se JOIN studies st ON st.study_uid = se.study_uid "
              "JOIN patients p ON p.patient_id = st.patient_id",
    "IMAGE": "FROM instances i JOIN series se ON se.series_uid = i.series_uid "
             "JOIN studies st ON st.study_uid = se.study_uid "
             "JOIN patients p ON p.patient_id = st.patient_id",
}
#: Matches come back in the order their rows were first indexed (images by number).
_ORDER = {"PATIENT": "p.rowid", "STUDY": "st.rowid", "SERIES": "se.rowid",
          "IMAGE": "CAST(i.instance_number AS INTEGER), i.rowid"}
_INSTANCE_COLUMNS = "i.sop_class, i.sop_uid, i.study_uid, i.series_uid, i.path, i.transfer_syntax"


def index_rows(keys: dict[str, str], path: str | Path, transfer_syntax: str, calling_ae: str,
               size: int, digest: str) -> IndexRows:
    """The patient, study, series and instance rows of one object (see ``_INSERTS``).

    ``path`` should be relative to the store root (:meth:`DicomStore.relative`); the
    index stores it as given."""
    k = keys
    demographics = (k["PatientName"], k["PatientBirthDate"], k["PatientSex"])
    return ((k["PatientID"], k["IssuerOfPatientID"], *demographics),
            (k["StudyInstanceUID"], k["PatientID"], k["StudyDate"], normalise_time(k["StudyTime"]),
             k["AccessionNumber"], k["StudyDescription"], k["ReferringPhysicianName"],
             k["StudyID"], *demographics),
            (k["SeriesInstanceUID"], k["StudyInstanceUID"], k["Modality"], k["SeriesNumber"],
             k["SeriesDescription"], k["PatientID"], *demographics),
            (k["SOPInstanceUID"], k["SeriesInstanceUID"], k["StudyInstanceUID"], k["SOPClassUID"],
             k["InstanceNumber"], str(path), transfer_syntax, time.time(), calling_ae, size,
             digest))


class StoreIndex:
    """The index file of one store root: connections, writes and named reads.

    ``root`` (default: the index file's folder) is what stored paths are relative to.
    """

    def __init__(self, db_path: Path, root: Path | None = None) -> None:
        self.db_path = Path(os.path.abspath(db_path))
        self.root = Path(os.path.abspath(root)) if root is not None else self.db_path.parent
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        try:
            self._writer = self._connect()
            self._add_demographic_columns()
            self._writer.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the index: {exc}", path=str(self.db_path)) from exc
        self._sealed = bool(self.query("SELECT 1 FROM store_meta WHERE key = 'sealed'"))

    # -- connections -------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None,
                               timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: commits do not fsync the WAL; reconcile() rebuilds lost rows from
        # the fsync'd files (store.py's docstring), so an acknowledged object is never lost.
        conn.execute("PRAGMA synchronous=NORMAL")
        # C-FIND matching reuses the worklist's rules (matching.py) instead of
        # re-implementing wildcards, PN case folding and DA/TM/DT ranges in SQL.
        conn.create_function("dicom_match", 3, _sql_match, deterministic=True)
        conn.create_function("dicom_range", 3, _sql_range, deterministic=True)
        return conn

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError("store is closed", path=str(self.db_path.parent))
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one read-only statement on this thread's connection."""
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"index query failed: {exc}", path=str(self.db_path)) from exc

    def close(self) -> None:
        """Close every connection; the index file stays on disk."""
        self._closed = True
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            try:
                conn.close()
            except sqlite3.ProgrammingError:  # created in another, finished thread
                pass
        with self._write_lock:
            self._writer.close()

    # -- writing -----------------------------------------------------------------
    def add(self, rows: IndexRows, path: Path) -> None:
        """Commit the rows of one object (:func:`index_rows`) in one transaction."""
        try:
            with self._transaction() as conn:
                for statement, row in zip(_INSERTS, rows):
                    conn.execute(statement, row)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot index object: {exc}", path=str(path)) from exc

    def add_batch(self, rows: list[IndexRows]) -> None:
        """Commit the rows of many objects in one transaction (the bulk load's path:
        one ``executemany`` per table instead of four statements per object)."""
        try:
            with self._transaction() as conn:
                for position, statement in enumerate(_INSERTS):
                    conn.executemany(statement, [row[position] for row in rows])
        except sqlite3.Error as exc:
            raise StoreError(f"cannot index objects: {exc}", path=str(self.db_path)) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer inside ``BEGIN IMMEDIATE`` .. ``COMMIT`` (rolled back on any error)."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @property
    def sealed(self) -> bool:
        """True while a completed bulk load is the last write (see store.py)."""
        return self._sealed

    def seal(self) -> None:
        """Record the seal with a synced commit (always written: the bulk load relies on
        this commit, after its ``os.sync``, to make the index durable)."""
        with self._write_lock:
            self._write_seal(True)

    def unseal(self) -> None:
        """Remove the seal with a synced commit; checked under the write lock, so of
        several threads storing at once only the first pays for it."""
        with self._write_lock:
            if self._sealed:
                self._write_seal(False)

    def _write_seal(self, sealed: bool) -> None:
        """Set or clear the seal row (caller holds the write lock)."""
        conn = self._writer
        conn.execute("PRAGMA synchronous=FULL")
        try:
            if sealed:
                conn.execute("INSERT OR REPLACE INTO store_meta VALUES ('sealed', '1')")
            else:
                conn.execute("DELETE FROM store_meta WHERE key = 'sealed'")
        finally:
            conn.execute("PRAGMA synchronous=NORMAL")
        self._sealed = sealed

    def migrate_paths(self) -> int:
        """Rewrite absolute or working-directory-relative instance paths to root-relative
        ones, once per index (a ``store_meta`` row records it); returns the rows rewritten.

        Why: indexes written before paths were relative name files by the path the store
        was opened with, so a moved store served nothing (C-GET 0xA702) and re-indexed
        every file on each start. A row under the root becomes relative; a row elsewhere
        whose file is gone but which names an ``objects/...`` tail is taken to be this
        store's file from before a move; any other row (a file really kept outside the
        root) is left as it is - pathlib resolves an absolute row unchanged.
        """
        if self.query("SELECT 1 FROM store_meta WHERE key = ?", (_PATHS_KEY,)):
            return 0
        rows = self.query("SELECT rowid, path FROM instances WHERE path NOT LIKE 'objects/%'")
        updates: list[tuple[str, int]] = []
        for row in rows:
            relative = self._relative_row(row["path"])
            if relative is not None and relative != row["path"]:
                updates.append((relative, row["rowid"]))
        try:
            with self._transaction() as conn:
                conn.executemany("UPDATE instances SET path = ? WHERE rowid = ?", updates)
                conn.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?)",
                             (_PATHS_KEY, _PATHS_RELATIVE))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot migrate index paths: {exc}", path=str(self.db_path)) from exc
        if updates:
            log.warning("index %s: rewrote %d instance path(s) relative to the store root",
                        self.db_path, len(updates))
        return len(updates)

    def _relative_row(self, stored: str) -> str | None:
        """The root-relative form of an old row's path, or None to leave it."""
        path = Path(os.path.abspath(stored))  # an old relative row was relative to the cwd
        if path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        if path.exists():
            return None  # a file kept outside the root: still readable where it is
        parts = Path(stored).parts
        if "objects" in parts:
            tail = Path(*parts[len(parts) - 1 - parts[::-1].index("objects"):])
            return tail.as_posix()
        return None

    def _add_demographic_columns(self) -> None:
        """Give an index from before per-study demographics its new columns (empty, and
        marked unfilled in ``store_meta`` for :meth:`migrate_demographics`); a new index
        gets them from ``_SCHEMA``. One transaction, so a crash leaves either."""
        conn = self._writer
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'studies'").fetchall():
            return
        have = {row[1] for row in conn.execute("PRAGMA table_info(studies)")}
        if "sex" in have:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for column in _STUDY_DEMOGRAPHICS:
                conn.execute(f"ALTER TABLE studies ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
            for column in _SERIES_DEMOGRAPHICS:
                conn.execute(f"ALTER TABLE series ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
            conn.execute("CREATE TABLE IF NOT EXISTS store_meta "
                         "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT OR REPLACE INTO store_meta VALUES (?, 'unfilled')",
                         (_DEMOGRAPHICS_KEY,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def migrate_demographics(self, read: Callable[[Path], Mapping[str, str] | None]) -> int:
        """Fill the per-study and per-series demographics of an index written before
        they existed; returns the series filled (0 when there was nothing to do).

        Why from the files and not from the ``patients`` row: that row is exactly the
        first-seen value a study of another spelling does not carry. ``read`` gives the
        index keys of one object file (None if unreadable); one file per series is
        read (its first indexed instance), and a study takes the values of its first
        indexed series. A series whose file cannot be read keeps the patient row's
        values (what C-FIND answered before), with a warning.
        """
        if not self.query("SELECT 1 FROM store_meta WHERE key = ?", (_DEMOGRAPHICS_KEY,)):
            return 0
        rows = self.query(
            "SELECT se.series_uid, se.study_uid, st.patient_id AS study_patient, "
            "COALESCE(p.patient_name, '') AS patient_name, COALESCE(p.birth_date, '') AS "
            "birth_date, COALESCE(p.sex, '') AS sex, (SELECT i.path FROM instances i "
            "WHERE i.series_uid = se.series_uid ORDER BY i.rowid LIMIT 1) AS path "
            "FROM series se JOIN studies st ON st.study_uid = se.study_uid "
            "LEFT JOIN patients p ON p.patient_id = st.patient_id ORDER BY se.rowid")
        series_values: list[tuple[str, ...]] = []
        study_values: dict[str, tuple[str, ...]] = {}
        unread = 0
        for row in rows:
            keys = read(self.resolve(row["path"])) if row["path"] else None
            if keys is None:
                unread += 1
                values = (row["study_patient"], row["patient_name"], row["birth_date"], row["sex"])
            else:
                values = tuple(keys.get(kw, "") for kw in DEMOGRAPHICS)
            series_values.append((*values, row["series_uid"]))
            study_values.setdefault(row["study_uid"], values[1:])
        try:
            with self._transaction() as conn:
                conn.executemany("UPDATE series SET patient_id = ?, patient_name = ?, "
                                 "birth_date = ?, sex = ? WHERE series_uid = ?", series_values)
                conn.executemany("UPDATE studies SET patient_name = ?, birth_date = ?, sex = ? "
                                 "WHERE study_uid = ?",
                                 [(*values, uid) for uid, values in study_values.items()])
                conn.execute("DELETE FROM store_meta WHERE key = ?", (_DEMOGRAPHICS_KEY,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot migrate index demographics: {exc}",
                             path=str(self.db_path)) from exc
        if series_values:
            log.warning("index %s: filled per-study demographics of %d series from their "
                        "files%s", self.db_path, len(series_values),
                        f" ({unread} unreadable: patient record used)" if unread else "")
        return len(series_values)

    def resolve(self, stored: str) -> Path:
        """A stored path as a file path: relative rows under the root, absolute as they are."""
        return self.root / stored

    # -- reading -----------------------------------------------------------------
    def indexed_paths(self) -> set[str]:
        """The stored (root-relative) path of every indexed object (reconcile skips those)."""
        return {row[0] for row in self.query("SELECT path FROM instances")}

    def stored_copy(self, sop_uid: str) -> StoredCopy | None:
        """The first indexed copy of ``sop_uid`` in any study, or None."""
        rows = self.query("SELECT digest, path FROM instances WHERE sop_uid = ?", (sop_uid,))
        return StoredCopy(self.resolve(rows[0]["path"]), rows[0]["digest"]) if rows else None

    def instances(self, study_uid: str | None = None, series_uid: str | None = None,
                  sop_uids: Sequence[str] | None = None) -> list[StoredInstance]:
        """Indexed objects (optionally of one study, one series, or some SOP UIDs), by
        study, series, instance number."""
        clauses, params = [], []
        for column, value in (("study_uid", study_uid), ("series_uid", series_uid)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if sop_uids is not None:
            if not sop_uids:
                return []
            clauses.append(f"sop_uid IN ({','.join('?' * len(sop_uids))})")
            params.extend(sop_uids)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._instances(self.query(
            "SELECT sop_class, sop_uid, study_uid, series_uid, path, transfer_syntax "
            f"FROM instances {where} ORDER BY study_uid, series_uid, "
            "CAST(instance_number AS INTEGER), sop_uid", params))

    def study_uids(self) -> list[str]:
        """Every Study Instance UID in the order the studies were first indexed."""
        return [row[0] for row in self.query("SELECT study_uid FROM studies ORDER BY rowid")]

    def studies(self) -> list[StudySummary]:
        """Every study with its counts, in the order they were first indexed."""
        rows = self.query(
            "SELECT st.study_uid, st.patient_id, st.patient_name AS name, "
            "st.accession, st.study_date, "
            "(SELECT group_concat(DISTINCT modality) FROM series x "
            " WHERE x.study_uid = st.study_uid) AS modalities, "
            "(SELECT COUNT(*) FROM series x WHERE x.study_uid = st.study_uid) AS n_series, "
            "(SELECT COUNT(*) FROM instances i WHERE i.study_uid = st.study_uid) AS n_inst "
            "FROM studies st ORDER BY st.rowid")
        return [StudySummary(r["study_uid"], r["patient_id"], r["name"], r["accession"],
                             r["study_date"], _modalities(r["modalities"]),
                             r["n_series"], r["n_inst"]) for r in rows]

    def stats(self) -> dict[str, int]:
        """Rows per level and the bytes of the indexed files."""
        row = self.query(
            "SELECT (SELECT COUNT(*) FROM patients) AS patients, "
            "(SELECT COUNT(*) FROM studies) AS studies, (SELECT COUNT(*) FROM series) AS series, "
            "(SELECT COUNT(*) FROM instances) AS instances, "
            "(SELECT COALESCE(SUM(size), 0) FROM instances) AS bytes")[0]
        return {key: int(row[key]) for key in row.keys()}

    def _instances(self, rows: list[sqlite3.Row]) -> list[StoredInstance]:
        return [StoredInstance(r["sop_class"], r["sop_uid"], r["study_uid"], r["series_uid"],
                               self.resolve(r["path"]), r["transfer_syntax"]) for r in rows]

    # -- C-FIND ------------------------------------------------------------------
    def find(self, level: str, matches: Sequence[KeyMatch],
             returned: Sequence[str]) -> list[MatchRow]:
        """The ``level`` entities satisfying every match, each with the ``returned``
        keys (:data:`SEARCH_KEYS`), in the order the entities were first indexed."""
        params: list[Any] = []
        where = _where(level, matches, params)
        columns = ", ".join(f"{_column(kw, level)} AS {kw}" for kw in returned)
        rows = self.query(f"SELECT {columns} {_FROM[level]} {where} ORDER BY {_ORDER[level]}",
                          params)
        kinds = [(kw, _KEYS[kw][0].kind) for kw in returned]
        return [{kw: _typed(row[kw], kind) for kw, kind in kinds} for row in rows]

    def instances_matching(self, matches: Sequence[KeyMatch],
                           level: str = "IMAGE") -> list[StoredInstance]:
        """Every instance under the ``level`` entities the matches select (a retrieve's
        set), by study, series and instance number. ``level`` picks the demographic
        columns as :meth:`find` does, so a retrieve moves what a C-FIND at that level
        listed (a STUDY-level move of a split study: every series)."""
        params: list[Any] = []
        where = _where(level, matches, params)
        return self._instances(self.query(
            f"SELECT {_INSTANCE_COLUMNS} {_FROM['IMAGE']} {where} "
            f"ORDER BY st.rowid, se.rowid, {_ORDER['IMAGE']}", params))


def studies_by_date(db_path: Path) -> Iterator[StudyDate]:
    """Stream every study of the index at ``db_path``, oldest StudyDate first (undated
    first of all; equal dates in indexing order).

    A read-only connection of its own (``mode=ro``), not a store's: the archive serving
    the directory keeps writing its WAL, and a reader streaming 100k studies must
    neither lock it nor need the store open in this process.
    """
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
    try:
        cursor = conn.execute("SELECT study_uid, study_date, patient_id FROM studies "
                              "ORDER BY study_date, rowid")
        for uid, date, patient in cursor:
            yield StudyDate(uid, date or "", patient or "")
    finally:
        conn.close()


def _column(keyword: str, level: str) -> str:
    """The SQL expression of ``keyword`` in a ``level`` query: the demographic keys
    come from the level's own row (module docstring), the rest from ``_KEYS``."""
    column = DEMOGRAPHICS.get(keyword)
    if column is not None:
        return f"{_DEMOGRAPHICS_OF_LEVEL[level]}.{column}"
    return _KEYS[keyword][1]


def _where(level: str, matches: Sequence[KeyMatch], params: list[Any]) -> str:
    clauses = [_condition(level, match, params) for match in matches]
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def _condition(level: str, match: KeyMatch, params: list[Any]) -> str:
    """SQL for one match. UID lists and exact values stay plain SQL (indexed); patterns
    and ranges go through ``dicom_match``/``dicom_range``, the worklist's own rules
    registered as SQLite functions, so both C-FIND SCPs agree on every edge case."""
    key, column = _KEYS[match.keyword][0], _column(match.keyword, level)
    values = match.values
    if match.mode == "exact":
        params.extend(values)
        marks = ",".join("?" * len(values))
        if key.kind == "modalities":  # any series of the study has one of them
            return ("EXISTS (SELECT 1 FROM series m WHERE m.study_uid = st.study_uid AND "
                    f"m.modality IN ({marks}))")
        return f"{column} IN ({marks})"
    function = "dicom_range" if match.mode == "range" else "dicom_match"
    params.extend(p for v in values for p in (v, match.vr))
    return "(" + " OR ".join(f"{function}(?, {column}, ?)" for _ in values) + ")"


def _typed(value: Any, kind: str) -> Any:
    if kind == "count":
        return int(value or 0)
    if kind == "modalities":
        return _modalities(value)
    return value


def _modalities(concatenated: str | None) -> tuple[str, ...]:
    return tuple(sorted(filter(None, (concatenated or "").split(","))))


def _sql_match(key: str, value: str | None, vr: str) -> bool:
    return match_string(key, value or "", vr)


def _sql_range(key: str, value: str | None, vr: str) -> bool:
    return match_range(key, value or "", vr)


__all__ = ["StoreIndex", "StoredInstance", "StudySummary", "StoredCopy", "StudyDate",
           "SearchKey", "KeyMatch", "MatchRow", "SEARCH_KEYS", "IndexRows", "index_rows",
           "studies_by_date"]
