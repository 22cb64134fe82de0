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
* one of those UIDs present but malformed (not PS3.5 9.1: ``1.2.3/../..``, ``1.02.3``,
  over 64 characters, ...): also **0xA900**, unless the store is ``lenient_uids`` (a
  legacy archive keeping what it was sent). Why A900 and not Cxxx: the data set
  *was* parsed into elements - "Cannot understand" (PS3.4 B.2.3, PS3.7 C.5.3) is
  for one that cannot be - but a Type 1 attribute of the IOD has no valid value,
  which is the same failure as an absent one: the data set does not conform to its
  SOP Class. Refusing keeps invalid UIDs out of the reference target's index, file
  names and every C-FIND/C-MOVE answer built from them;
* a data set whose SOP Class/Instance UID differs from the C-STORE request's:
  **0xA900**; one that cannot be read at all: **0xC210** (cannot understand);
* disk or index failure: :class:`StoreError`, which the SCP turns into 0xA700
  (out of resources).

The index names each file relative to the store root (store_index.py's docstring), so
the directory is self-contained: moved, copied, or opened by a relative path, it still
serves what it lists, and an index from before (absolute paths) is rewritten on open.

Patient, study and series rows keep the attributes of the *first* instance that
created them (legacy PACS behaviour); later instances never rewrite them. Study and
series rows carry their own demographics, so C-FIND at STUDY level and below answers
what that study's (series') files hold, not the patient row's first-seen spelling
(store_index.py's docstring).

The index is keyed on (SOP Instance UID, Study Instance UID), not the SOP Instance UID
alone: real legacy archives hold the same SOP Instance UID in two studies, and a
seeded legacy archive (simulators/legacy) must represent them, each retrieved with
its own study. C-STORE still refuses a second copy of a stored SOP Instance UID (the
policy above looks the UID up alone). :class:`simulators.dicom.bulk.BulkIndexer` indexes files
written outside ``put`` (the legacy seeder) in large transactions, then *seals* the
store: opening a sealed store skips the reconcile walk (122 s and 630 MB for a
100k-study archive), and the first ``put`` removes the seal (durably, before its file
is published), so after any crash the next open reconciles as before.

The index itself - schema, connections, every SQL statement - is
:mod:`simulators.dicom.store_index`, reached only through this class: other code asks
named questions (:meth:`DicomStore.instances`, :meth:`DicomStore.find_matches`, ...)
and gets typed answers, so the store can change its tables without hunting callers.
C-FIND's PS3.4 rules (levels, unique keys, universal matching) stay in
:mod:`simulators.dicom.qr`, which hands the store :class:`KeyMatch` conditions.
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
from typing import Any, Sequence

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dsutils import encode

from simulators.dicom.dirsync import DirectorySync, fsync_directory
from simulators.dicom.fast.files import read_part10
from simulators.dicom.part10 import (
    REQUIRED_KEYS, file_meta_bytes, index_keys, normalise_time, read_index_keys, text_value,
)
from simulators.dicom.store_index import (
    SEARCH_KEYS, IndexRows, KeyMatch, MatchRow, SearchKey, StoredInstance, StoreIndex, StudyDate,
    StudySummary, index_rows, studies_by_date,
)
from simulators.errors import StoreError
from simulators.world.seeding import is_valid_uid

log = logging.getLogger(__name__)

#: Status codes the store hands back to the C-STORE SCP (see module docstring).
STATUS_SUCCESS = 0x0000
STATUS_DUPLICATE_CONFLICT = 0xC000
STATUS_MISSING_ATTRIBUTE = 0xA900
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC210

#: The UIDs that place an object in the index's hierarchy; a file without one is quarantined.
_HIERARCHY_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_SAFE_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_STRIPES = 64

@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What happened to one object: the DIMSE status to answer and why."""

    status: int
    sop_instance_uid: str = ""
    path: Path | None = None
    duplicate: bool = False
    comment: str = ""
    #: Of a newly stored object: which study it belongs to (for the actor's log line).
    study_uid: str = ""
    patient_id: str = ""
    accession: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_SUCCESS


def _digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _missing(keys: dict[str, str]) -> StoreOutcome | None:
    """The refusal for an object without a Type 1 UID the index needs, else None."""
    missing = [kw for kw in REQUIRED_KEYS if not keys[kw]]
    if not missing:
        return None
    return StoreOutcome(STATUS_MISSING_ATTRIBUTE, keys["SOPInstanceUID"],
                        comment=f"missing Type 1 attribute(s): {', '.join(missing)}")


def _malformed(keys: dict[str, str]) -> StoreOutcome | None:
    """The 0xA900 refusal for an object whose Type 1 UIDs are present but not valid
    UIDs (PS3.5 9.1; why A900: the module docstring), else None."""
    bad = [kw for kw in REQUIRED_KEYS if keys[kw] and not is_valid_uid(keys[kw])]
    if not bad:
        return None
    shown = ", ".join(f"{kw} {keys[kw][:70]!r}" for kw in bad)
    return StoreOutcome(STATUS_MISSING_ATTRIBUTE, keys["SOPInstanceUID"],
                        comment=f"invalid UID value(s): {shown}"[:1024])


class DicomStore:
    """Files under ``root/objects`` and their index in ``root/index.sqlite``.

    Thread-safe: pynetdicom runs one thread per association. Stores of one SOP
    Instance UID are serialised by a striped lock (the duplicate check, the publish and
    the index row are one step); the index serialises its own writes and reads on a
    connection per thread (:class:`~simulators.dicom.store_index.StoreIndex`).
    """

    def __init__(self, root: Path, *, lenient_uids: bool = False) -> None:
        #: Store objects whose UIDs are malformed (a legacy archive); False refuses them.
        self.lenient_uids = lenient_uids
        # absolute (not resolved: a symlinked root stays as named), so a later chdir
        # cannot move the store under a process that opened it by a relative path
        self.root = Path(os.path.abspath(root))
        self.objects = self.root / "objects"
        #: Where reconcile moves object files it cannot index (outside ``objects``, so
        #: the walk never meets them again; kept, not deleted, for a person to look at).
        self.quarantine_dir = self.root / "quarantine"
        #: Files this open's reconcile moved into :attr:`quarantine_dir`.
        self.quarantined = 0
        self._tmp = self.root / "incoming"
        for directory in (self.root, self.objects, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "index.sqlite"
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._known_dirs: set[Path] = {self.objects}
        #: Concurrent stores into one series share directory fsyncs (dirsync.py).
        self._dir_sync = DirectorySync()
        self._index = StoreIndex(self.db_path, self.root)
        self._index.migrate_paths()
        self._index.migrate_demographics(_file_keys)
        if self._index.sealed:  # a bulk load completed and nothing was stored since: no walk
            for leftover in self._tmp.iterdir():
                leftover.unlink(missing_ok=True)
        else:
            self.reconcile()

    def reconcile(self) -> int:
        """Index object files the index lacks (after a crash); returns how many.

        Temp files in ``incoming`` were never acknowledged and are removed. A file
        that cannot be parsed, or lacks a Study, Series or SOP Instance UID, is never
        indexed - it used to become a phantom study with empty UIDs answering every
        C-FIND - but moved into ``quarantine/`` (:meth:`_quarantine`, counted in
        :attr:`quarantined`). A file the OS will not let us read, or one that clashes
        with an indexed SOP Instance, is logged and left alone (nothing is wrong with
        its content).
        """
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)
        indexed = self._index.indexed_paths()
        added = 0
        for path in sorted(self.objects.rglob("*.dcm")):
            if self.relative(path) in indexed:
                continue
            try:
                instance = read_part10(path)
                keys = read_index_keys(instance.data, instance.transfer_syntax)
            except StoreError as exc:
                if isinstance(exc.__cause__, OSError):  # unreadable, not malformed
                    log.warning("reconcile: cannot read %s: %s", path, exc)
                else:
                    self._quarantine(path, f"cannot be parsed: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - pydicom raises many types
                self._quarantine(path, f"cannot be parsed: {exc}")
                continue
            missing = [kw for kw in _HIERARCHY_UIDS if not keys[kw]]
            if missing:
                self._quarantine(path, f"lacks {', '.join(missing)}")
                continue
            try:
                self._add(keys, path, instance.transfer_syntax, "", path.stat().st_size, "")
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the archive
                log.warning("reconcile: cannot index %s: %s", path, exc)
                continue
            added += 1
        if added:
            log.warning("reconcile: indexed %d object file(s) missing from the index", added)
        return added

    def _quarantine(self, path: Path, why: str) -> None:
        """Move an object file reconcile cannot index to ``quarantine/`` (same relative
        place as under ``objects/``, a numbered name if taken), with one warning line."""
        target = self.quarantine_dir / path.relative_to(self.objects)
        number = 1
        while target.exists():
            target = target.with_name(f"{path.stem}.{number}{path.suffix}")
            number += 1
        try:
            self._ensure_dir(target.parent)
            os.replace(path, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            log.warning("reconcile: %s %s; cannot move it to quarantine: %s", path, why, exc)
            return
        self.quarantined += 1
        log.warning("reconcile: quarantined %s (%s) as %s", path, why, target)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one read-only SQL statement on the index - for tests and by-hand
        diagnosis only: code in ``simulators/`` uses the named queries below
        (``tests/unit/test_store_privacy.py`` holds it to that)."""
        return self._index.query(sql, params)

    def close(self) -> None:
        """Close every index connection; the files and the index stay on disk."""
        self._index.close()

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
        refused = self._refusal(keys)
        if refused:
            return refused
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
        refused = self._refusal(keys)
        if refused:
            return refused
        meta = file_meta_bytes(sop_class, sop_uid, str(transfer_syntax), calling_ae)
        staged = self._stage(sop_uid, meta, payload)
        try:
            return self._commit(keys, staged, len(meta), payload, str(transfer_syntax), calling_ae)
        finally:
            staged.unlink(missing_ok=True)  # gone already once published

    def _refusal(self, keys: dict[str, str]) -> StoreOutcome | None:
        """Why an object must not be stored (missing or, unless lenient, malformed UIDs)."""
        return _missing(keys) or (None if self.lenient_uids else _malformed(keys))

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
            existing = self._index.stored_copy(sop_uid)
            if existing is not None:
                stored = existing.path
                if self._same_content(existing.digest, stored, payload):
                    return StoreOutcome(STATUS_SUCCESS, sop_uid, stored,
                                        duplicate=True, comment="identical copy already stored")
                return StoreOutcome(STATUS_DUPLICATE_CONFLICT, sop_uid, stored, duplicate=True,
                                    comment="SOP Instance UID already stored with other content;"
                                            " first copy kept")
            path = self._object_path(keys)
            if self._index.sealed:  # durably unsealed before the file is published, so a
                self._index.unseal()  # crash after it makes the next open reconcile
            self._publish(staged, path)
            try:
                self._add(keys, path, transfer_syntax, calling_ae.strip(),
                            meta_size + len(payload), "")
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        return StoreOutcome(STATUS_SUCCESS, sop_uid, path, study_uid=keys["StudyInstanceUID"],
                            patient_id=keys.get("PatientID", ""),
                            accession=keys.get("AccessionNumber", ""))

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

    def index_batch(self, rows: list[IndexRows]) -> None:
        """Commit the :func:`index_rows` of many objects in one transaction."""
        self._index.add_batch(rows)

    def seal(self) -> None:
        """Record (durably) that every object file is indexed, so the next open skips
        the reconcile walk; the first :meth:`put` removes the seal again."""
        self._index.seal()

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
            self._dir_sync.sync(path.parent)  # an fsync begun after this rename
        except OSError as exc:
            raise StoreError(f"cannot write object: {exc.strerror or exc}",
                             path=str(path)) from exc

    def _add(self, keys: dict[str, str], path: Path, transfer_syntax: str, calling_ae: str,
             size: int, digest: str) -> None:
        self._index.add(index_rows(keys, self.relative(path), transfer_syntax, calling_ae, size,
                                   digest), path)

    def relative(self, path: Path) -> str:
        """How the index names ``path``: relative to the root (POSIX separators), so the
        store directory can be moved, copied or opened by another path; a file outside
        the root keeps its absolute path."""
        absolute = Path(os.path.abspath(path))
        if absolute.is_relative_to(self.root):
            return absolute.relative_to(self.root).as_posix()
        return str(absolute)

    # -- reading -----------------------------------------------------------------
    def instances(self, study_uid: str | None = None, series_uid: str | None = None,
                  sop_uids: Sequence[str] | None = None) -> list[StoredInstance]:
        """Indexed objects of a study (optionally one series, or only some SOP UIDs)."""
        return self._index.instances(study_uid, series_uid, sop_uids)

    def lookup(self, sop_uids: list[str]) -> dict[str, StoredInstance]:
        """The indexed objects among ``sop_uids``, keyed by SOP Instance UID."""
        return {item.sop_instance_uid: item for item in self.instances(sop_uids=sop_uids)}

    def study_uids(self) -> list[str]:
        """Every Study Instance UID, oldest indexed first (a walk study by study keeps
        only one study's instances in memory)."""
        return self._index.study_uids()

    def studies(self) -> list[StudySummary]:
        """Every study with its counts, oldest first."""
        return self._index.studies()

    def stats(self) -> dict[str, int]:
        """Counts per level and bytes on disk, for reports and load runs, and how many
        object files this open quarantined (``quarantined``)."""
        return {**self._index.stats(), "quarantined": self.quarantined}

    def find_matches(self, level: str, matches: Sequence[KeyMatch],
                     returned: Sequence[str]) -> list[MatchRow]:
        """C-FIND's query: ``level`` entities meeting every match, with the ``returned``
        keys typed as :data:`SEARCH_KEYS` says, oldest indexed first (images by number).

        The PS3.4 rules that turn an identifier into matches (levels, universal
        matching, wildcards vs exact values) are :func:`simulators.dicom.qr.run_find`'s.
        """
        return self._index.find(level, matches, returned)

    def instances_matching(self, matches: Sequence[KeyMatch],
                           level: str = "IMAGE") -> list[StoredInstance]:
        """A retrieve's set: every instance under the ``level`` entities ``matches``
        select (``level`` decides which row's demographics are matched, as in C-FIND)."""
        return self._index.instances_matching(matches, level)


def object_path(objects: Path, keys: dict[str, str]) -> Path:
    """objects/<study>/<series>/<sop>.dcm; a UID that is not a UID gets hashed."""
    parts = [keys[kw] for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    safe = [p if len(p) <= 64 and _SAFE_UID.fullmatch(p)
            else "x" + hashlib.sha1(p.encode()).hexdigest() for p in parts]
    return objects / safe[0] / safe[1] / f"{safe[2]}.dcm"


def _file_keys(path: Path) -> dict[str, str] | None:
    """The index keys of one stored file, None if it cannot be read (the demographics
    migration then keeps the patient record's values)."""
    try:
        instance = read_part10(path)
        return read_index_keys(instance.data, instance.transfer_syntax)
    except Exception:  # noqa: BLE001 - OSError, StoreError, or whatever pydicom raises
        return None


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a crash."""
    fsync_directory(directory)


__all__ = ["DicomStore", "StoreOutcome", "object_path", "index_rows",
           "read_index_keys", "StoredInstance", "StudySummary", "normalise_time",
           "KeyMatch", "MatchRow", "SearchKey", "SEARCH_KEYS", "StudyDate", "studies_by_date",
           "STATUS_SUCCESS", "STATUS_DUPLICATE_CONFLICT", "STATUS_MISSING_ATTRIBUTE",
           "STATUS_OUT_OF_RESOURCES", "STATUS_CANNOT_UNDERSTAND"]
