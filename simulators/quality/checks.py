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

A cross-study defect involves a set of studies, and every study of the set carries
the class (the seeder's manifest lists them by the same rule): no "odd one out" is
chosen, so the result never depends on the order studies are seen. Clean studies
raise nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
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


#: The cross-study state: one row per distinct (study, patient identity) and one per
#: (SOP Instance UID, study). A migration keeps these tables in its checkpoint and fills
#: them in the same transaction that records a study (durable across kill -9); the
#: audit keeps them in a scratch file.
CROSS_SCHEMA = """
CREATE TABLE IF NOT EXISTS demo (
    study_uid TEXT NOT NULL, patient_id TEXT NOT NULL, patient_name TEXT NOT NULL,
    birth_date TEXT NOT NULL, sex TEXT NOT NULL, study_date TEXT NOT NULL,
    UNIQUE (study_uid, patient_id, patient_name, birth_date, sex));
CREATE INDEX IF NOT EXISTS demo_patient ON demo(patient_id);
CREATE TABLE IF NOT EXISTS sops (
    sop_uid TEXT NOT NULL, study_uid TEXT NOT NULL,
    PRIMARY KEY (sop_uid, study_uid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sops_study ON sops(study_uid);
"""
INSERT_DEMO = "INSERT OR IGNORE INTO demo VALUES (?,?,?,?,?,?)"
INSERT_SOP = "INSERT OR IGNORE INTO sops VALUES (?,?)"


def identity_rows(study_uid: str, sop_uid: str, patient_id: str, patient_name: str,
                  birth_date: str, study_date: str = "", sex: str = ""
                  ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (demo, sops) rows of one instance, values normalised as the checks compare them."""
    return ((study_uid, patient_id.strip(), str(patient_name).strip(), birth_date.strip(),
             sex.strip(), study_date.strip()), (sop_uid, study_uid))


@dataclass(frozen=True)
class Conflict:
    """One cross-study defect and every study it involves (reported once, as a group).

    ``key`` names what the studies share (``PatientID X`` or ``SOP Instance UID Y``),
    ``values`` what differs among them (value -> number of studies carrying it).
    """

    cls: str
    key: str
    values: dict[str, int]
    studies: tuple[str, ...]

    @property
    def detail(self) -> str:
        shown = ", ".join(f"{v!r} ({n} stud{'y' if n == 1 else 'ies'})"
                          for v, n in sorted(self.values.items()))
        if self.cls == C.DUPLICATE_SOP_UID:
            return f"{self.key} is in {len(self.studies)} studies: {', '.join(self.studies)}"
        if self.cls == C.SPLIT_STUDY:
            return f"one study under {len(self.values)} patient IDs: {shown}"
        return (f"{self.key}: {len(self.values)} different values across "
                f"{len(self.studies)} studies: {shown}")


class CrossStudyChecker:
    """Cross-study checks over SQLite: every study a conflict involves is flagged.

    Why every study and not "the odd one out": which of a patient's names is the
    right one is a decision for the migration lead, not a fact pacsim can read off
    the data, and a verdict that blames one study depends on the order studies were
    seen. A conflict is a property of the *set* of a patient's studies (or of the
    studies sharing a SOP Instance UID), so it is reported once, as a
    :class:`Conflict`, with every study involved, and :meth:`findings` gives each of
    those studies the class. The result depends only on which instances were added,
    never on their order.

    Feed every instance with :meth:`add_instance` (any order), then read
    :meth:`conflicts` or :meth:`findings`. ``attach=True`` opens an existing database
    whose tables another writer fills in its own transactions (the migration's
    checkpoint): no journal changes, nothing buffered.
    """

    def __init__(self, db_path: Path, *, attach: bool = False) -> None:
        self.db_path = Path(db_path)
        try:
            self._db = sqlite3.connect(self.db_path, isolation_level=None,
                                       check_same_thread=not attach)
            if attach:
                self._db.execute("PRAGMA busy_timeout=30000")
            else:
                self._db.execute("PRAGMA journal_mode=OFF")
                self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(CROSS_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the cross-study database: {exc}",
                             path=str(self.db_path)) from exc
        self._demo: list[tuple[str, ...]] = []
        self._sops: list[tuple[str, ...]] = []

    def add_instance(self, study_uid: str, series_uid: str, sop_uid: str, patient_id: str,
                     patient_name: str, birth_date: str, *, study_date: str = "",
                     sex: str = "") -> None:
        """Remember one instance's identity (buffered; flushed in batches)."""
        demo, sop = identity_rows(study_uid, sop_uid, patient_id, patient_name, birth_date,
                                  study_date, sex)
        self._demo.append(demo)
        self._sops.append(sop)
        if len(self._sops) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if not self._sops:
            return
        db = self._db
        db.execute("BEGIN")
        db.executemany(INSERT_DEMO, self._demo)
        db.executemany(INSERT_SOP, self._sops)
        db.execute("COMMIT")
        self._demo.clear()
        self._sops.clear()

    def conflicts(self) -> Iterator[Conflict]:
        """Every cross-study defect once, with all the studies it involves."""
        self._flush()
        for column, cls in (("patient_name", C.PATIENT_NAME_CONFLICT),
                            ("birth_date", C.BIRTH_DATE_CONFLICT)):
            yield from self._value_conflicts(column, cls)
        yield from self._duplicates()
        yield from self._splits()

    def findings(self) -> Iterator[Finding]:
        """One finding per (study, class), ordered by study UID then class."""
        rows: dict[tuple[str, str], str] = {}
        for conflict in self.conflicts():
            for study_uid in conflict.studies:
                rows.setdefault((study_uid, conflict.cls), conflict.detail)
        for (study_uid, cls), detail in sorted(rows.items()):
            yield Finding(study_uid, cls, detail)

    def _value_conflicts(self, column: str, cls: str) -> Iterator[Conflict]:
        """Patient IDs whose files carry more than one non-empty ``column`` value."""
        # empty values are "missing", a missing-type2 matter, never a conflict
        rows = self._db.execute(
            f"SELECT patient_id, {column}, COUNT(DISTINCT study_uid) FROM demo "
            f"WHERE {column} != '' AND patient_id IN ("
            f"  SELECT patient_id FROM demo WHERE {column} != '' GROUP BY patient_id "
            f"  HAVING COUNT(DISTINCT {column}) > 1) "
            f"GROUP BY patient_id, {column} ORDER BY patient_id").fetchall()
        values: dict[str, dict[str, int]] = {}
        for patient_id, value, studies in rows:
            values.setdefault(patient_id, {})[value] = int(studies)
        reader = self._db.cursor()
        for patient_id, found in values.items():
            studies = tuple(uid for (uid,) in reader.execute(
                "SELECT DISTINCT study_uid FROM demo WHERE patient_id = ? ORDER BY study_uid",
                (patient_id,)))
            yield Conflict(cls, f"PatientID {patient_id}", found, studies)

    def _duplicates(self) -> Iterator[Conflict]:
        """SOP Instance UIDs held by more than one study."""
        for sop_uid, studies in self._db.cursor().execute(
                "SELECT sop_uid, group_concat(study_uid, '|') FROM ("
                "  SELECT sop_uid, study_uid FROM sops WHERE sop_uid IN ("
                "    SELECT sop_uid FROM sops GROUP BY sop_uid HAVING COUNT(*) > 1) "
                "  ORDER BY sop_uid, study_uid) GROUP BY sop_uid"):
            involved = tuple(sorted(studies.split("|")))
            yield Conflict(C.DUPLICATE_SOP_UID, f"SOP Instance UID {sop_uid}",
                           {sop_uid: len(involved)}, involved)

    def _splits(self) -> Iterator[Conflict]:
        """Studies whose instances carry more than one patient ID."""
        reader = self._db.cursor()
        for (study_uid,) in self._db.cursor().execute(
                "SELECT study_uid FROM demo GROUP BY study_uid "
                "HAVING COUNT(DISTINCT patient_id) > 1 ORDER BY study_uid"):
            ids = {pid: 1 for (pid,) in reader.execute(
                "SELECT DISTINCT patient_id FROM demo WHERE study_uid = ?", (study_uid,))}
            yield Conflict(C.SPLIT_STUDY, f"Study {study_uid}", ids, (study_uid,))

    def close(self) -> None:
        """Close the database (the file stays for inspection)."""
        self._db.close()

    def __enter__(self) -> "CrossStudyChecker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Finding", "Conflict", "check_instance", "CrossStudyChecker", "SOP_CLASS_MODALITIES",
           "CROSS_SCHEMA", "INSERT_DEMO", "INSERT_SOP", "identity_rows"]
