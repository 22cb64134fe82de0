"""The archive's durable store: DICOM Part 10 files on disk plus a SQLite index.

Durability is the contract (ARCHITECTURE.md principle 6): :meth:`DicomStore.put`
returns only after the file is fsync'd under its final name, its directory entry is
fsync'd and the index row is committed. The C-STORE SCP answers *after* ``put``
returns, so a crash can never lose an instance that was acknowledged.

The files, not the index, are the durable record. The index runs in WAL mode with
``synchronous=NORMAL``: a commit does not fsync the log, so a power loss may drop
the last index rows, never their files. :meth:`DicomStore.reconcile` (run on every
open) indexes each object file the index lacks and deletes unfinished temp files,
so every acknowledged instance is found again after a crash. Measured on the
ingest benchmark, ``FULL`` (an fsync of the log per commit) cost ~0.3 ms of the
~2 ms per object on one association. A crash between the rename and the index
commit of an object that was never acknowledged gets it indexed the same way
(the peer retries; an identical copy is then a duplicate success).

Conflict policy (FAULTS.md ``store.duplicate-uid-different-content`` is
implementation-defined, so it is documented here and reported in the outcome):

* same SOP Instance UID, byte-identical content: success 0x0000, nothing rewritten
  (retries after a lost C-STORE-RSP are idempotent);
* same SOP Instance UID, different content: the first object is kept and the
  second refused with failure **0xC000** ("Cannot understand", the only failure
  class PS3.4 B.2.3 leaves for a reason that is neither resources nor a SOP Class
  mismatch; 0111 "Duplicate SOP Instance" is an N-CREATE status, not a C-STORE one),
  with an Error Comment saying the first copy was kept;
* missing SOP Class/Instance, Study or Series Instance UID: failure **0xA900**
  (PS3.4 B.2.3 "Data Set does not match SOP Class": a Type 1 attribute is absent);
* a data set whose SOP Class/Instance UID differs from the C-STORE request's:
  **0xA900**; one that cannot be read at all: **0xC210** (cannot understand);
* disk or index failure: :class:`StoreError`, which the SCP turns into 0xA700
  (out of resources).

Patient, study and series rows keep the attributes of the *first* instance that
created them (legacy PACS behaviour); later instances never rewrite them.

The index is keyed on (SOP Instance UID, Study Instance UID), not the SOP Instance UID
alone: real legacy archives hold the same SOP Instance UID in two studies, and a
seeded legacy archive (simulators/legacy) must represent them, each retrieved with
its own study. C-STORE still refuses a second copy of a stored SOP Instance UID (the
policy above looks the UID up alone). :meth:`DicomStore.bulk_loader` indexes files
written outside ``put`` (the legacy seeder) in large transactions, then *seals* the
store: opening a sealed store skips the reconcile walk (122 s and 630 MB for a
100k-study archive), and the first ``put`` removes the seal (durably, before its file
is published), so after any crash the next open reconciles as before.

C-FIND matching (identifier to SQL) lives in :mod:`simulators.dicom.qr`, next to
the level rules it depends on; this module only owns the schema and the writes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import encode

from simulators.dicom.fast.files import read_part10
from simulators.dicom.part10 import (
    REQUIRED_KEYS, file_meta_bytes, index_keys, normalise_time, read_index_keys, text_value,
)
from simulators.dicom.matching import match_range, match_string
from simulators.errors import StoreError

if TYPE_CHECKING:
    from simulators.dicom.bulk import BulkIndexer

log = logging.getLogger(__name__)

#: Status codes the store hands back to the C-STORE SCP (see module docstring).
STATUS_SUCCESS = 0x0000
STATUS_DUPLICATE_CONFLICT = 0xC000
STATUS_MISSING_ATTRIBUTE = 0xA900
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC210

_SAFE_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_STRIPES = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_id TEXT PRIMARY KEY, issuer TEXT NOT NULL, patient_name TEXT NOT NULL,
    birth_date TEXT NOT NULL, sex TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY, patient_id TEXT NOT NULL, study_date TEXT NOT NULL,
    study_time TEXT NOT NULL, accession TEXT NOT NULL, description TEXT NOT NULL,
    referring TEXT NOT NULL, study_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession);
CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, modality TEXT NOT NULL,
    series_number TEXT NOT NULL, description TEXT NOT NULL);
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


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What happened to one object: the DIMSE status to answer and why."""

    status: int
    sop_instance_uid: str = ""
    path: Path | None = None
    duplicate: bool = False
    comment: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_SUCCESS


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


def _digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _missing(keys: dict[str, str]) -> StoreOutcome | None:
    """The refusal for an object without a Type 1 UID the index needs, else None."""
    missing = [kw for kw in REQUIRED_KEYS if not keys[kw]]
    if not missing:
        return None
    return StoreOutcome(STATUS_MISSING_ATTRIBUTE, keys["SOPInstanceUID"],
                        comment=f"missing Type 1 attribute(s): {', '.join(missing)}")


class DicomStore:
    """Files under ``root/objects`` and their index in ``root/index.sqlite``.

    Thread-safe: pynetdicom runs one thread per association. Writes share one
    connection behind a lock (SQLite has one writer anyway); reads use one
    connection per thread so queries run while another association stores.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self._tmp = self.root / "incoming"
        for directory in (self.root, self.objects, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "index.sqlite"
        self._write_lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._known_dirs: set[Path] = {self.objects}
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the index: {exc}", path=str(self.db_path)) from exc
        self._sealed = bool(self.query("SELECT 1 FROM store_meta WHERE key = 'sealed'"))
        if self._sealed:  # a bulk load completed and nothing was stored since: no walk
            for leftover in self._tmp.iterdir():
                leftover.unlink(missing_ok=True)
        else:
            self.reconcile()

    def _unseal(self) -> None:
        """Forget the bulk-load seal durably before the first file is published, so a
        crash after it makes the next open reconcile (the seal skips that walk)."""
        with self._write_lock:
            if self._sealed:
                self._write_seal(False)

    def reconcile(self) -> int:
        """Index object files the index lacks (after a crash); returns how many.

        Temp files in ``incoming`` were never acknowledged and are removed. A file
        that cannot be read or clashes with an indexed SOP Instance is logged and
        left alone.
        """
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
        indexed = {row["path"] for row in self.query("SELECT path FROM instances")}
        added = 0
        for path in sorted(self.objects.rglob("*.dcm")):
            if str(path) in indexed:
                continue
            try:
                instance = read_part10(path)
                keys = read_index_keys(instance.data, instance.transfer_syntax)
                self._index(keys, path, instance.transfer_syntax, "", path.stat().st_size, "")
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the archive
                log.warning("reconcile: cannot index %s: %s", path, exc)
                continue
            added += 1
        if added:
            log.warning("reconcile: indexed %d object file(s) missing from the index", added)
        return added

    # -- connections -------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None,
                               timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: commits do not fsync the WAL; reconcile() rebuilds lost rows from
        # the fsync'd files (module docstring), so an acknowledged object is never lost.
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
                raise StoreError("store is closed", path=str(self.root))
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        """Run a read-only SQL statement on this thread's connection (for qr.py)."""
        conn = self._reader()
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"index query failed: {exc}", path=str(self.db_path)) from exc

    def close(self) -> None:
        """Close every connection; the files and the index stay on disk."""
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
    def put(self, ds: Dataset, *, transfer_syntax: str, calling_ae: str = "",
            encoded: bytes | None = None) -> StoreOutcome:
        """Store ``ds`` durably and index it; the returned status is what to answer.

        ``encoded`` is the dataset exactly as received (no file meta), so the SCP
        writes the peer's bytes instead of re-encoding them; without it the
        dataset is encoded here in ``transfer_syntax``.
        """
        payload = encoded if encoded is not None else self._encode(ds, transfer_syntax)
        return self.put_encoded(payload, transfer_syntax=transfer_syntax, calling_ae=calling_ae,
                                keys=index_keys(ds))

    def put_encoded(self, payload: bytes, *, transfer_syntax: str, calling_ae: str = "",
                    keys: dict[str, str] | None = None) -> StoreOutcome:
        """Store a data set exactly as received (no file meta) behind a Part 10 header.

        ``keys`` are the index attributes when the caller already read them
        (:func:`read_index_keys`); otherwise they are read from ``payload`` here.
        """
        if keys is None:
            try:
                keys = read_index_keys(payload, transfer_syntax)
            except Exception as exc:  # noqa: BLE001 - pydicom raises many types
                raise StoreError(f"data set cannot be read: {exc}") from exc
        missing = _missing(keys)
        if missing:
            return missing
        meta = file_meta_bytes(keys["SOPClassUID"], keys["SOPInstanceUID"], str(transfer_syntax),
                               calling_ae)
        staged = self._stage(keys["SOPInstanceUID"], meta, payload)
        try:
            return self._commit(keys, staged, len(meta), payload,
                                str(transfer_syntax), calling_ae)
        finally:
            staged.unlink(missing_ok=True)  # gone already once published

    def put_received(self, payload: bytes, *, transfer_syntax: str, sop_class: str, sop_uid: str,
                     calling_ae: str = "") -> StoreOutcome:
        """The C-STORE SCP's path: the received bytes, checked against the request.

        Only the index keys are read from ``payload`` (:func:`read_index_keys`);
        a data set that cannot be read answers 0xC210, one whose SOP Class or
        Instance UID contradicts the request 0xA900, and only a consistent object
        is written. (Reading the keys on another thread while this one waits in
        fsync was measured: no faster, the GIL hand-offs eat the overlap.)
        """
        try:
            keys = read_index_keys(payload, transfer_syntax)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types
            return StoreOutcome(STATUS_CANNOT_UNDERSTAND, sop_uid,
                                comment=f"data set cannot be decoded: {exc}")
        for keyword, expected, what in (("SOPClassUID", sop_class, "Class"),
                                        ("SOPInstanceUID", sop_uid, "Instance")):
            if keys[keyword] and keys[keyword] != expected:
                return StoreOutcome(STATUS_MISSING_ATTRIBUTE, sop_uid,
                                    comment=f"SOP {what} UID differs from the request's")
        missing = _missing(keys)
        if missing:
            return missing
        meta = file_meta_bytes(sop_class, sop_uid, str(transfer_syntax), calling_ae)
        staged = self._stage(sop_uid, meta, payload)
        try:
            return self._commit(keys, staged, len(meta), payload, str(transfer_syntax), calling_ae)
        finally:
            staged.unlink(missing_ok=True)  # gone already once published

    def _commit(self, keys: dict[str, str], staged: Path, meta_size: int, payload: bytes,
                transfer_syntax: str, calling_ae: str) -> StoreOutcome:
        """Duplicate policy, then publish the fsync'd temp file and index it.

        No digest is computed on the way in (0.5 ms for a 512x512 slice): only a
        resend of a stored SOP Instance is compared, against the stored digest
        (rows written before this change) or the stored file's bytes.
        """
        missing = _missing(keys)
        if missing:
            return missing
        sop_uid = keys["SOPInstanceUID"]
        with self._stripes[hash(sop_uid) % _STRIPES]:
            existing = self.query("SELECT digest, path FROM instances WHERE sop_uid = ?",
                                  (sop_uid,))
            if existing:
                stored = Path(existing[0]["path"])
                if self._same_content(existing[0]["digest"], stored, payload):
                    return StoreOutcome(STATUS_SUCCESS, sop_uid, stored,
                                        duplicate=True, comment="identical copy already stored")
                return StoreOutcome(STATUS_DUPLICATE_CONFLICT, sop_uid, stored, duplicate=True,
                                    comment="SOP Instance UID already stored with other content;"
                                            " first copy kept")
            path = self._object_path(keys)
            if self._sealed:
                self._unseal()
            self._publish(staged, path)
            try:
                self._index(keys, path, transfer_syntax, calling_ae.strip(),
                            meta_size + len(payload), "")
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        return StoreOutcome(STATUS_SUCCESS, sop_uid, path)

    @staticmethod
    def _same_content(digest: str, stored: Path, payload: bytes) -> bool:
        if digest:
            return digest == _digest(payload)
        try:
            return read_part10(stored).data == payload
        except StoreError:
            return False  # unreadable stored copy: never call the resend identical

    @staticmethod
    def _encode(ds: Dataset, transfer_syntax: str) -> bytes:
        syntax = UID(transfer_syntax)
        payload = encode(ds, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
        if payload is None:
            raise StoreError("dataset cannot be encoded", transfer_syntax=transfer_syntax,
                             sop_instance_uid=text_value(ds, "SOPInstanceUID"))
        return payload

    def _object_path(self, keys: dict[str, str]) -> Path:
        return object_path(self.objects, keys)

    def bulk_loader(self, *, batch: int = 5000) -> "BulkIndexer":
        """Index many already-written object files in a few large transactions.

        For bulk loads (the legacy seeder), not acknowledged C-STOREs: nothing is
        durable until :meth:`BulkIndexer.close` commits and syncs the file system.
        """
        from simulators.dicom.bulk import BulkIndexer

        return BulkIndexer(self, batch)

    def index_batch(self, rows: list[tuple[tuple[Any, ...], ...]]) -> None:
        """Commit the :func:`index_rows` of many objects in one transaction."""
        try:
            with self._write_lock:
                conn = self._writer
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for position, statement in enumerate(_INSERTS):
                        conn.executemany(statement, [row[position] for row in rows])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot index objects: {exc}", path=str(self.db_path)) from exc

    def seal(self) -> None:
        """Record (durably) that every object file is indexed, so the next open skips
        the reconcile walk; the first :meth:`put` removes the seal again."""
        with self._write_lock:
            self._write_seal(True)

    def _write_seal(self, sealed: bool) -> None:
        """Set or clear the seal with a synced commit (caller holds the write lock)."""
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

    def _ensure_dir(self, directory: Path) -> None:
        """Create ``directory`` and make its new entries durable (fsync the parents)."""
        if directory in self._known_dirs:
            return
        created: list[Path] = []
        probe = directory
        while not probe.exists():
            created.append(probe)
            probe = probe.parent
        directory.mkdir(parents=True, exist_ok=True)
        for new in created:
            _fsync_dir(new.parent)
        self._known_dirs.add(directory)

    def _stage(self, name: str, meta: bytes, payload: bytes) -> Path:
        """Write meta + payload to a new temp file and fsync it; returns its path."""
        safe = name if len(name) <= 64 and _SAFE_UID.fullmatch(name) else "x"
        tmp = self._tmp / f"{safe}.{threading.get_ident()}.{time.monotonic_ns()}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, meta)
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write object: {exc.strerror or exc}", path=str(tmp)) from exc
        return tmp

    def _publish(self, staged: Path, path: Path) -> None:
        """Rename the fsync'd temp file to its final name and fsync the directory."""
        try:
            self._ensure_dir(path.parent)
            os.replace(staged, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise StoreError(f"cannot write object: {exc.strerror or exc}",
                             path=str(path)) from exc

    def _index(self, keys: dict[str, str], path: Path, transfer_syntax: str, calling_ae: str,
               size: int, digest: str) -> None:
        rows = index_rows(keys, path, transfer_syntax, calling_ae, size, digest)
        try:
            with self._write_lock:
                conn = self._writer
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement, row in zip(_INSERTS, rows):
                        conn.execute(statement, row)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot index object: {exc}", path=str(path)) from exc

    # -- reading -----------------------------------------------------------------
    def instances(self, study_uid: str | None = None, series_uid: str | None = None,
                  sop_uids: list[str] | tuple[str, ...] | None = None) -> list[StoredInstance]:
        """Indexed objects of a study (optionally one series, or only some SOP UIDs)."""
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
        rows = self.query(
            "SELECT sop_class, sop_uid, study_uid, series_uid, path, transfer_syntax "
            f"FROM instances {where} ORDER BY study_uid, series_uid, "
            "CAST(instance_number AS INTEGER), sop_uid", params)
        return [StoredInstance(r["sop_class"], r["sop_uid"], r["study_uid"], r["series_uid"],
                               Path(r["path"]), r["transfer_syntax"]) for r in rows]

    def lookup(self, sop_uids: list[str]) -> dict[str, StoredInstance]:
        """The indexed objects among ``sop_uids``, keyed by SOP Instance UID."""
        return {item.sop_instance_uid: item for item in self.instances(sop_uids=sop_uids)}

    def studies(self) -> list[StudySummary]:
        """Every study with its counts, oldest first."""
        rows = self.query(
            "SELECT st.study_uid, st.patient_id, COALESCE(p.patient_name, '') AS name, "
            "st.accession, st.study_date, "
            "(SELECT group_concat(DISTINCT modality) FROM series x "
            " WHERE x.study_uid = st.study_uid) AS modalities, "
            "(SELECT COUNT(*) FROM series x WHERE x.study_uid = st.study_uid) AS n_series, "
            "(SELECT COUNT(*) FROM instances i WHERE i.study_uid = st.study_uid) AS n_inst "
            "FROM studies st LEFT JOIN patients p ON p.patient_id = st.patient_id "
            "ORDER BY st.rowid")
        return [StudySummary(r["study_uid"], r["patient_id"], r["name"], r["accession"],
                             r["study_date"],
                             tuple(sorted(filter(None, (r["modalities"] or "").split(",")))),
                             r["n_series"], r["n_inst"]) for r in rows]

    def stats(self) -> dict[str, int]:
        """Counts per level and bytes on disk, for reports and load runs."""
        row = self.query(
            "SELECT (SELECT COUNT(*) FROM patients) AS patients, "
            "(SELECT COUNT(*) FROM studies) AS studies, (SELECT COUNT(*) FROM series) AS series, "
            "(SELECT COUNT(*) FROM instances) AS instances, "
            "(SELECT COALESCE(SUM(size), 0) FROM instances) AS bytes")[0]
        return {key: int(row[key]) for key in row.keys()}

    def find(self, level: str, identifier: Dataset, *, root: str = "STUDY") -> Iterator[Dataset]:
        """C-FIND matching of ``identifier`` at ``level``; one response dataset per match.

        The translation to SQL (wildcards, ranges, UID lists, universal matching)
        is in :mod:`simulators.dicom.qr`; level and unique-key checks are the SCP's
        job (:func:`simulators.dicom.qr.check_identifier`).
        """
        from simulators.dicom.qr import run_find  # qr imports this module

        return run_find(self, level, identifier, root=root)


_INSERTS = ("INSERT OR IGNORE INTO patients VALUES (?,?,?,?,?)",
            "INSERT OR IGNORE INTO studies VALUES (?,?,?,?,?,?,?,?)",
            "INSERT OR IGNORE INTO series VALUES (?,?,?,?,?)",
            "INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?)")


def index_rows(keys: dict[str, str], path: Path, transfer_syntax: str, calling_ae: str,
               size: int, digest: str) -> tuple[tuple[Any, ...], ...]:
    """The patient, study, series and instance rows of one object (see ``_INSERTS``)."""
    k = keys
    return ((k["PatientID"], k["IssuerOfPatientID"], k["PatientName"], k["PatientBirthDate"],
             k["PatientSex"]),
            (k["StudyInstanceUID"], k["PatientID"], k["StudyDate"], normalise_time(k["StudyTime"]),
             k["AccessionNumber"], k["StudyDescription"], k["ReferringPhysicianName"],
             k["StudyID"]),
            (k["SeriesInstanceUID"], k["StudyInstanceUID"], k["Modality"], k["SeriesNumber"],
             k["SeriesDescription"]),
            (k["SOPInstanceUID"], k["SeriesInstanceUID"], k["StudyInstanceUID"], k["SOPClassUID"],
             k["InstanceNumber"], str(path), transfer_syntax, time.time(), calling_ae, size,
             digest))


def object_path(objects: Path, keys: dict[str, str]) -> Path:
    """objects/<study>/<series>/<sop>.dcm; a UID that is not a UID gets hashed."""
    parts = [keys[kw] for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    safe = [p if len(p) <= 64 and _SAFE_UID.fullmatch(p)
            else "x" + hashlib.sha1(p.encode()).hexdigest() for p in parts]
    return objects / safe[0] / safe[1] / f"{safe[2]}.dcm"


def _sql_match(key: str, value: str | None, vr: str) -> bool:
    return match_string(key, value or "", vr)


def _sql_range(key: str, value: str | None, vr: str) -> bool:
    return match_range(key, value or "", vr)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["DicomStore", "StoreOutcome", "object_path", "index_rows",
           "read_index_keys", "StoredInstance", "StudySummary", "normalise_time",
           "STATUS_SUCCESS", "STATUS_DUPLICATE_CONFLICT", "STATUS_MISSING_ATTRIBUTE",
           "STATUS_OUT_OF_RESOURCES", "STATUS_CANNOT_UNDERSTAND"]
