"""Data-quality checks of a legacy archive, classified with the seeder's defect classes.

Two kinds, because defects come in two kinds (see the contract in defects.md):

* :func:`check_instance` looks at one object's header against the target's
  :class:`~simulators.quality.rules.IngestionRules`: modality vs SOP class, missing
  required attributes, values invalid for their VR, retired or disallowed SOP classes
  and transfer syntaxes, character sets, private tags.
* :class:`CrossStudyChecker` sees every instance's identity (streamed in, kept in
  SQLite so memory stays flat at 100k studies) and finds what no single header
  shows: one patient ID with several names or birth dates, a SOP Instance UID in two
  studies, a study split across patient IDs.

Which study is to blame is decided the way a migration team would: the canonical
name of a patient ID is the one on most studies (ties: the earliest StudyDate, then
the first seen), the later study holds the duplicated SOP Instance UID, and a split
study is reported once. Clean studies raise nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.datadict import dictionary_VR
from pydicom.tag import Tag
from pydicom.uid import UID

from simulators.errors import StoreError
from simulators.quality import classes as C
from simulators.quality.values import (
    CHECKED_VRS, TEXT_VRS, charset_mismatch, invalid_value, quiet_pydicom,
)
from simulators.quality.rules import IngestionRules

_CT, _MR, _US, _NM = ("CT",), ("MR",), ("US",), ("NM",)
#: Storage SOP class -> the Modality values consistent with it (PS3.3 C.7.3.1.1.1 and
#: each IOD's Modality constraint). Classes not listed (Secondary Capture...) accept any.
SOP_CLASS_MODALITIES: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.5.1.4.1.1.2": _CT, "1.2.840.10008.5.1.4.1.1.2.1": _CT,
    "1.2.840.10008.5.1.4.1.1.4": _MR, "1.2.840.10008.5.1.4.1.1.4.1": _MR,
    "1.2.840.10008.5.1.4.1.1.1": ("CR",),
    "1.2.840.10008.5.1.4.1.1.1.1": ("DX",), "1.2.840.10008.5.1.4.1.1.1.1.1": ("DX",),
    "1.2.840.10008.5.1.4.1.1.1.2": ("MG",), "1.2.840.10008.5.1.4.1.1.1.2.1": ("MG",),
    "1.2.840.10008.5.1.4.1.1.6.1": _US, "1.2.840.10008.5.1.4.1.1.3.1": _US,
    "1.2.840.10008.5.1.4.1.1.6": _US, "1.2.840.10008.5.1.4.1.1.3": _US,  # retired US
    "1.2.840.10008.5.1.4.1.1.20": _NM, "1.2.840.10008.5.1.4.1.1.5": _NM,  # NM, NM retired
    "1.2.840.10008.5.1.4.1.1.128": ("PT",),
}
_CHARSET_TAG = Tag(0x0008, 0x0005)
_PIXEL_GROUP = 0x7FE0
_MAX_DEPTH = 4
_FLUSH_EVERY = 2000


@dataclass(frozen=True)
class Finding:
    """One data-quality problem of one study; ``cls`` is a defect class name."""

    study_uid: str
    cls: str
    detail: str


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _charset_terms(ds: pydicom.Dataset) -> tuple[str, ...]:
    element = ds.get_item(_CHARSET_TAG)
    if element is None:
        return ()
    value = element.value
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace")
    elif isinstance(value, str):
        text = value
    else:
        text = "\\".join(str(v) for v in (value or ()))
    return tuple(term.strip() for term in text.split("\\")) if text.strip() else ()


def _element_bytes(ds: pydicom.Dataset, tag: int) -> tuple[str, bytes | str | None]:
    """(VR, stored bytes) of an element; converted elements give their text instead."""
    element = ds.get_item(tag)
    if isinstance(element, RawDataElement):
        vr = element.VR
        if vr is None:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        return str(vr), element.value
    vr = str(element.VR)
    value = element.value
    if value is None or isinstance(value, (bytes, pydicom.Sequence)):
        return vr, value if isinstance(value, bytes) else None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return vr, "\\".join(str(v) for v in value)
    return vr, str(value)


def _walk_values(ds: pydicom.Dataset, terms: tuple[str, ...], depth: int = 0
                 ) -> Iterator[tuple[str, str, str]]:
    """(class, keyword-or-tag, detail) for every VR or charset problem in ``ds``."""
    for tag in list(ds.keys()):
        if tag.group == _PIXEL_GROUP or tag.group == 0x0002:
            continue
        vr, value = _element_bytes(ds, tag)
        name = pydicom.datadict.keyword_for_tag(tag) or str(tag)
        if vr == "SQ":
            if depth < _MAX_DEPTH:
                for item in ds[tag].value or ():
                    yield from _walk_values(item, terms, depth + 1)
            continue
        if value is None:
            continue
        if vr in CHECKED_VRS:
            bad = invalid_value(vr, value)
            if bad is not None:
                yield C.INVALID_VR_VALUE, name, f"{name} {vr} value {bad!r} is invalid"
        elif vr in TEXT_VRS:
            reason = (charset_mismatch(terms, value) if isinstance(value, bytes)
                      else ("undecodable bytes" if "\ufffd" in value else None))
            if reason:
                yield C.ODD_CHARSET, name, f"{name}: {reason}"


def check_instance(ds: pydicom.Dataset, rules: IngestionRules, *,
                   transfer_syntax: str) -> list[Finding]:
    """Every per-instance finding of one object (at most one per class).

    ``ds`` should be read without accessing its elements first (``dcmread`` or a
    C-GET/C-STORE data set) so values are judged on the bytes as stored.
    """
    with quiet_pydicom():  # pydicom warns about exactly the problems reported here
        return _check_instance(ds, rules, transfer_syntax)


def _check_instance(ds: pydicom.Dataset, rules: IngestionRules,
                    transfer_syntax: str) -> list[Finding]:
    study_uid = _text(ds, "StudyInstanceUID")
    found: dict[str, str] = {}

    def flag(cls: str, detail: str) -> None:
        found.setdefault(cls, detail)

    terms = _charset_terms(ds)
    odd_terms = [term for term in terms if term not in rules.allowed_charsets]
    if odd_terms:
        declared = "\\".join(terms)
        flag(C.ODD_CHARSET, f"SpecificCharacterSet {declared!r} is not allowed")
    for cls, _name, detail in _walk_values(ds, terms):
        flag(cls, detail)

    for keyword in rules.required:
        if keyword not in ds:
            flag(C.MISSING_MODALITY if keyword == "Modality" else C.MISSING_TYPE2,
                 f"{keyword} is absent")
    modality = _text(ds, "Modality")
    sop_class = _text(ds, "SOPClassUID")
    if "Modality" in ds and not modality:
        flag(C.MISSING_MODALITY, "Modality (0008,0060) is empty")
    expected = SOP_CLASS_MODALITIES.get(sop_class)
    if modality and expected and modality not in expected:
        flag(C.WRONG_MODALITY, f"Modality {modality} with {UID(sop_class).name} "
                               f"(expects {'/'.join(expected)})")
    if sop_class and not rules.sop_class_allowed(sop_class):
        retired = UID(sop_class).is_retired
        flag(C.RETIRED_SOP_CLASS if retired else C.DISALLOWED_SOP_CLASS,
             f"SOP Class {sop_class} ({UID(sop_class).name}) is "
             f"{'retired' if retired else 'not in the allowed SOP classes'}")
    if (rules.allowed_transfer_syntaxes is not None
            and str(transfer_syntax) not in rules.allowed_transfer_syntaxes):
        flag(C.DISALLOWED_TRANSFER_SYNTAX, f"transfer syntax {transfer_syntax} is not allowed")
    if rules.private_tags == "flag":
        private = [tag for tag in ds.keys() if tag.is_private]
        if private:
            creators = sorted({str(ds[tag].value).strip() for tag in private
                               if tag.is_private_creator})
            flag(C.PRIVATE_TAGS, f"{len(private)} private element(s), creator(s) "
                                 f"{', '.join(creators) or 'none'}")
    return [Finding(study_uid, cls, detail) for cls, detail in found.items()]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS demo (
    study_uid TEXT NOT NULL, patient_id TEXT NOT NULL, patient_name TEXT NOT NULL,
    birth_date TEXT NOT NULL, study_date TEXT NOT NULL, seen INTEGER NOT NULL,
    UNIQUE (study_uid, patient_id, patient_name, birth_date));
CREATE TABLE IF NOT EXISTS sops (
    sop_uid TEXT NOT NULL, study_uid TEXT NOT NULL, study_date TEXT NOT NULL,
    seen INTEGER NOT NULL, PRIMARY KEY (sop_uid, study_uid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flagged (
    study_uid TEXT NOT NULL, cls TEXT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (study_uid, cls)) WITHOUT ROWID;
"""


class CrossStudyChecker:
    """Streaming cross-study checks; all state lives in SQLite at ``db_path``.

    Feed every instance with :meth:`add_instance` (any order), then iterate
    :meth:`findings`. ``study_date`` (optional) decides which study is the later
    copy and breaks ties between names; without it, the first one seen wins.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        try:
            self._db = sqlite3.connect(self.db_path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the cross-study database: {exc}",
                             path=str(self.db_path)) from exc
        self._seen = 0
        self._demo: list[tuple[str, ...]] = []
        self._sops: list[tuple[str, ...]] = []

    def add_instance(self, study_uid: str, series_uid: str, sop_uid: str, patient_id: str,
                     patient_name: str, birth_date: str, *, study_date: str = "") -> None:
        """Remember one instance's identity (buffered; flushed in batches)."""
        self._seen += 1
        self._demo.append((study_uid, patient_id.strip(), str(patient_name).strip(),
                           birth_date.strip(), study_date.strip(), self._seen))
        self._sops.append((sop_uid, study_uid, study_date.strip(), self._seen))
        if len(self._sops) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if not self._sops:
            return
        db = self._db
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO demo VALUES (?,?,?,?,?,?)", self._demo)
        db.executemany("INSERT OR IGNORE INTO sops VALUES (?,?,?,?)", self._sops)
        db.execute("COMMIT")
        self._demo.clear()
        self._sops.clear()

    def findings(self) -> Iterator[Finding]:
        """Every cross-study finding, one per (study, class), ordered by study UID."""
        self._flush()
        db = self._db
        db.execute("DELETE FROM flagged")
        db.execute("BEGIN")
        for column, cls in (("patient_name", C.PATIENT_NAME_CONFLICT),
                            ("birth_date", C.BIRTH_DATE_CONFLICT)):
            self._flag(self._conflicts(column, cls))
        self._flag(self._duplicates())
        self._flag(self._splits())
        db.execute("COMMIT")
        for study_uid, cls, detail in db.execute(
                "SELECT study_uid, cls, detail FROM flagged ORDER BY study_uid, cls"):
            yield Finding(study_uid, cls, detail)

    def _flag(self, rows: Iterable[tuple[str, str, str]]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO flagged VALUES (?,?,?)", rows)

    def _conflicts(self, column: str, cls: str) -> Iterator[tuple[str, str, str]]:
        """Studies whose ``column`` differs from the canonical value of their patient ID."""
        # one row per (patient, value) with the studies carrying it; empty values are
        # "missing", a missing-type2 matter, never a conflict
        groups = self._db.execute(
            f"SELECT patient_id, {column}, COUNT(DISTINCT study_uid), MIN(study_date), "
            f"MIN(seen) FROM demo WHERE {column} != '' AND patient_id IN ("
            f"  SELECT patient_id FROM demo WHERE {column} != '' GROUP BY patient_id "
            f"  HAVING COUNT(DISTINCT {column}) > 1) "
            f"GROUP BY patient_id, {column} ORDER BY patient_id").fetchall()
        by_patient: dict[str, list[tuple[str, int, str, int]]] = {}
        for patient_id, value, studies, first_date, first_seen in groups:
            by_patient.setdefault(patient_id, []).append((value, studies, first_date, first_seen))
        reader = self._db.cursor()
        for patient_id, values in by_patient.items():
            values.sort(key=lambda v: (-v[1], v[2], v[3]))
            canonical, count = values[0][0], values[0][1]
            for value, _studies, _date, _seen in values[1:]:
                for (study_uid,) in reader.execute(
                        f"SELECT DISTINCT study_uid FROM demo WHERE patient_id = ? "
                        f"AND {column} = ?", (patient_id, value)):
                    yield (study_uid, cls,
                           f"PatientID {patient_id}: {column} {value!r} here, {canonical!r} "
                           f"on {count} other stud{'y' if count == 1 else 'ies'}")

    def _duplicates(self) -> Iterator[tuple[str, str, str]]:
        """Every study but the earliest holding a SOP Instance UID seen in several."""
        for sop_uid, study_uid, first_study in self._db.cursor().execute(
                "SELECT sop_uid, study_uid, first FROM ("
                "  SELECT sop_uid, study_uid, "
                "    ROW_NUMBER() OVER (PARTITION BY sop_uid ORDER BY study_date, seen) AS rn, "
                "    FIRST_VALUE(study_uid) OVER (PARTITION BY sop_uid "
                "      ORDER BY study_date, seen) AS first "
                "  FROM sops WHERE sop_uid IN ("
                "    SELECT sop_uid FROM sops GROUP BY sop_uid HAVING COUNT(*) > 1)"
                ") WHERE rn > 1"):
            yield (study_uid, C.DUPLICATE_SOP_UID,
                   f"SOP Instance UID {sop_uid} is also in earlier study {first_study}")

    def _splits(self) -> Iterator[tuple[str, str, str]]:
        """Studies whose instances carry more than one patient ID."""
        for study_uid, ids in self._db.cursor().execute(
                "SELECT study_uid, group_concat(DISTINCT patient_id) FROM demo "
                "GROUP BY study_uid HAVING COUNT(DISTINCT patient_id) > 1"):
            yield (study_uid, C.SPLIT_STUDY, f"one study under patient IDs {ids}")

    def close(self) -> None:
        """Close the database (the file stays for inspection)."""
        self._db.close()

    def __enter__(self) -> "CrossStudyChecker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Finding", "check_instance", "CrossStudyChecker", "SOP_CLASS_MODALITIES"]
