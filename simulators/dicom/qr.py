"""Query/Retrieve on the archive's index: C-FIND matching, level rules, retrieve sets.

PS3.4 Annex C in one place:

* **models and levels** - Patient Root (PATIENT/STUDY/SERIES/IMAGE) and Study Root
  (STUDY/SERIES/IMAGE). A missing or unknown Query/Retrieve Level, a level the
  model lacks, or a hierarchical query without single-valued unique keys for the
  levels above answers **0xA900** (identifier does not match SOP class).
* **matching** (C.2.2.2) - the rules of :mod:`simulators.dicom.matching` (shared with
  the worklist: wildcards, PN case folding, DA/TM/DT ranges, universal matching),
  UID lists as indexed ``IN`` lists, and ModalitiesInStudy as "any series of the
  study has one of these modalities".
* **responses** - every requested key comes back (zero length when unsupported),
  plus the unique keys of the query level and above, with Specific Character Set
  ISO_IR 192 whenever a value is not ASCII.

Pure functions over a :class:`~simulators.dicom.store.DicomStore`; the archive actor
binds them to pynetdicom's events and adds statuses, cancels and event emission.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind, PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelMove,
)

from simulators.dicom.matching import RANGE_VRS, WILDCARD_VRS, is_universal_key, values_of
from simulators.dicom.store import DicomStore, StoredInstance
from simulators.errors import ProtocolError, StatusError

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000

#: Information model ("PATIENT" or "STUDY" root) of each Q/R SOP class we serve.
MODEL_OF_SOP_CLASS: dict[str, str] = {
    PatientRootQueryRetrieveInformationModelFind: "PATIENT",
    PatientRootQueryRetrieveInformationModelMove: "PATIENT",
    PatientRootQueryRetrieveInformationModelGet: "PATIENT",
    StudyRootQueryRetrieveInformationModelFind: "STUDY",
    StudyRootQueryRetrieveInformationModelMove: "STUDY",
    StudyRootQueryRetrieveInformationModelGet: "STUDY",
}

#: Unique key of each level (PS3.4 C.6.1.1 / C.6.2.1).
UNIQUE_KEY = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID",
              "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}


@dataclass(frozen=True, slots=True)
class Field:
    """One matchable/returnable attribute: its level, SQL expression and matching kind."""

    level: str
    sql: str
    kind: str  # text | uid | date | time | count | modalities


_COUNT = "(SELECT COUNT(*) FROM {table} x {join} WHERE {where})"
FIELDS: dict[str, Field] = {
    "PatientID": Field("PATIENT", "p.patient_id", "text"),
    "IssuerOfPatientID": Field("PATIENT", "p.issuer", "text"),
    "PatientName": Field("PATIENT", "p.patient_name", "text"),
    "PatientBirthDate": Field("PATIENT", "p.birth_date", "date"),
    "PatientSex": Field("PATIENT", "p.sex", "text"),
    "NumberOfPatientRelatedStudies": Field("PATIENT", _COUNT.format(
        table="studies", join="", where="x.patient_id = p.patient_id"), "count"),
    "NumberOfPatientRelatedSeries": Field("PATIENT", _COUNT.format(
        table="series", join="JOIN studies y ON y.study_uid = x.study_uid",
        where="y.patient_id = p.patient_id"), "count"),
    "NumberOfPatientRelatedInstances": Field("PATIENT", _COUNT.format(
        table="instances", join="JOIN studies y ON y.study_uid = x.study_uid",
        where="y.patient_id = p.patient_id"), "count"),
    "StudyInstanceUID": Field("STUDY", "st.study_uid", "uid"),
    "StudyDate": Field("STUDY", "st.study_date", "date"),
    "StudyTime": Field("STUDY", "st.study_time", "time"),
    "AccessionNumber": Field("STUDY", "st.accession", "text"),
    "StudyDescription": Field("STUDY", "st.description", "text"),
    "ReferringPhysicianName": Field("STUDY", "st.referring", "text"),
    "StudyID": Field("STUDY", "st.study_id", "text"),
    "ModalitiesInStudy": Field("STUDY", "(SELECT group_concat(DISTINCT x.modality) "
                               "FROM series x WHERE x.study_uid = st.study_uid)", "modalities"),
    "NumberOfStudyRelatedSeries": Field("STUDY", _COUNT.format(
        table="series", join="", where="x.study_uid = st.study_uid"), "count"),
    "NumberOfStudyRelatedInstances": Field("STUDY", _COUNT.format(
        table="instances", join="", where="x.study_uid = st.study_uid"), "count"),
    "SeriesInstanceUID": Field("SERIES", "se.series_uid", "uid"),
    "Modality": Field("SERIES", "se.modality", "text"),
    "SeriesNumber": Field("SERIES", "se.series_number", "text"),
    "SeriesDescription": Field("SERIES", "se.description", "text"),
    "NumberOfSeriesRelatedInstances": Field("SERIES", _COUNT.format(
        table="instances", join="", where="x.series_uid = se.series_uid"), "count"),
    "SOPInstanceUID": Field("IMAGE", "i.sop_uid", "uid"),
    "SOPClassUID": Field("IMAGE", "i.sop_class", "uid"),
    "InstanceNumber": Field("IMAGE", "i.instance_number", "text"),
}

_FROM = {
    "PATIENT": "FROM patients p",
    "STUDY": "FROM studies st JOIN patients p ON p.patient_id = st.patient_id",
    "SERIES": "FROM series se JOIN studies st ON st.study_uid = se.study_uid "
              "JOIN patients p ON p.patient_id = st.patient_id",
    "IMAGE": "FROM instances i JOIN series se ON se.series_uid = i.series_uid "
             "JOIN studies st ON st.study_uid = se.study_uid "
             "JOIN patients p ON p.patient_id = st.patient_id",
}
#: Identifier elements that steer the query instead of being matching/return keys.
_NOT_KEYS = ("", "QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC")
_ORDER = {"PATIENT": "p.rowid", "STUDY": "st.rowid", "SERIES": "se.rowid",
          "IMAGE": "CAST(i.instance_number AS INTEGER), i.rowid"}


def _fail(message: str, status: int = STATUS_IDENTIFIER_MISMATCH, **context: Any) -> StatusError:
    return StatusError(message, status=status, **context)


def status_of(error: ProtocolError) -> int:
    """The DIMSE status to answer for ``error``: its own for a :class:`StatusError`
    (as this module raises), else C000 (unable to process)."""
    if isinstance(error, StatusError) and isinstance(error.status, int):
        return error.status
    return STATUS_UNABLE_TO_PROCESS


def _values(identifier: Dataset, keyword: str) -> list[str]:
    """The non-empty values of a key (several for a backslash list)."""
    if keyword not in identifier:
        return []
    return [v.strip() for v in values_of(identifier[keyword].value) if v.strip()]


def _is_single(values: list[str]) -> bool:
    return len(values) == 1 and not any(ch in values[0] for ch in "*?")


def check_identifier(identifier: Dataset, sop_class_uid: str, *, retrieve: bool = False) -> str:
    """Validate level and unique keys for the SOP class; returns the level.

    Raises :class:`StatusError` with ``status`` 0xA900 when the identifier does not
    fit the information model (PS3.4 C.4.1.2.2 / C.4.2.2.1 hierarchical rules).
    """
    root = MODEL_OF_SOP_CLASS.get(str(sop_class_uid))
    if root is None:
        raise _fail("not a Query/Retrieve SOP class we serve", sop_class=str(sop_class_uid))
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVELS:
        raise _fail("missing or unknown Query/Retrieve Level", level=level or "<none>")
    if LEVELS.index(level) < LEVELS.index(root):
        raise _fail(f"level {level} does not exist in the {root.title()} Root model", level=level)
    for above in LEVELS[LEVELS.index(root):LEVELS.index(level)]:
        if not _is_single(_values(identifier, UNIQUE_KEY[above])):
            raise _fail(f"{UNIQUE_KEY[above]} must hold one value for a {level} query",
                        level=level)
    if retrieve and not _values(identifier, UNIQUE_KEY[level]):
        raise _fail(f"{UNIQUE_KEY[level]} is required to retrieve at {level} level", level=level)
    return level


def _condition(element: DataElement, field: Field, params: list[Any]) -> str | None:
    """One WHERE clause for a key, or None for universal matching / return-only keys.

    UID lists and exact values stay plain SQL (indexed); wildcards, PN and DA/TM/DT
    go through ``dicom_match``/``dicom_range``, the worklist's own rules (matching.py)
    registered as SQLite functions, so both C-FIND SCPs agree on every edge case.
    """
    if field.kind == "count" or is_universal_key(element):
        return None
    values = [v.strip() for v in values_of(element.value) if v.strip()]
    vr = element.VR
    if field.kind == "modalities":
        params.extend(values)
        return ("EXISTS (SELECT 1 FROM series m WHERE m.study_uid = st.study_uid AND "
                f"m.modality IN ({','.join('?' * len(values))}))")
    if vr in RANGE_VRS:
        params.extend(p for v in values for p in (v, vr))
        return "(" + " OR ".join(f"dicom_range(?, {field.sql}, ?)" for _ in values) + ")"
    if vr == "PN" or (vr in WILDCARD_VRS and any(ch in v for v in values for ch in "*?")):
        params.extend(p for v in values for p in (v, vr))
        return "(" + " OR ".join(f"dicom_match(?, {field.sql}, ?)" for _ in values) + ")"
    params.extend(values)
    return f"{field.sql} IN ({','.join('?' * len(values))})"


def _where(level: str, identifier: Dataset, params: list[Any]) -> str:
    depth = LEVELS.index(level)
    clauses = []
    for element in identifier:
        keyword = keyword_for_tag(element.tag)
        field = FIELDS.get(keyword)
        if field is None or LEVELS.index(field.level) > depth:
            continue  # unsupported or below the level: not used for matching
        clause = _condition(element, field, params)
        if clause:
            clauses.append(clause)
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def run_find(store: DicomStore, level: str, identifier: Dataset, *,
             root: str = "STUDY") -> Iterator[Dataset]:
    """Matches of ``identifier`` at ``level`` as C-FIND response identifiers."""
    depth = LEVELS.index(level)
    unique = [UNIQUE_KEY[lv] for lv in LEVELS[LEVELS.index(root):depth + 1]]
    requested = [keyword_for_tag(e.tag) for e in identifier]
    requested = [kw for kw in requested if kw not in _NOT_KEYS]
    selected = list(dict.fromkeys([*unique, *(kw for kw in requested if kw in FIELDS
                                              and LEVELS.index(FIELDS[kw].level) <= depth)]))
    params: list[Any] = []
    where = _where(level, identifier, params)
    columns = ", ".join(f"{FIELDS[kw].sql} AS {kw}" for kw in selected)
    rows = store.query(f"SELECT {columns} {_FROM[level]} {where} ORDER BY {_ORDER[level]}",
                       params)
    for row in rows:
        yield _response(level, identifier, row, selected, requested)


def _response(level: str, identifier: Dataset, row: Any, selected: list[str],
              requested: list[str]) -> Dataset:
    response = Dataset()
    response.QueryRetrieveLevel = level
    non_ascii = False
    for keyword in dict.fromkeys([*selected, *requested]):
        if keyword in selected:
            value: Any = row[keyword]
            kind = FIELDS[keyword].kind
            if kind == "count":
                value = str(int(value or 0))
            elif kind == "modalities":
                value = sorted(filter(None, (value or "").split(","))) or None
            value = value if value not in ("", None) else None
            non_ascii = non_ascii or (isinstance(value, str) and not value.isascii())
            setattr(response, keyword, value)
        else:  # supported-nowhere or below the level: returned with zero length
            element = identifier[keyword]
            response.add_new(element.tag, element.VR, [] if element.VR == "SQ" else None)
    if non_ascii:
        response.SpecificCharacterSet = "ISO_IR 192"
    return response


def match_instances(store: DicomStore, level: str, identifier: Dataset) -> list[StoredInstance]:
    """Every stored instance under the entities an (already checked) retrieve selects."""
    params: list[Any] = []
    where = _where(level, identifier, params)
    rows = store.query(
        "SELECT i.sop_class, i.sop_uid, i.study_uid, i.series_uid, i.path, i.transfer_syntax "
        f"{_FROM['IMAGE']} {where} ORDER BY st.rowid, se.rowid, {_ORDER['IMAGE']}", params)
    return [StoredInstance(r["sop_class"], r["sop_uid"], r["study_uid"], r["series_uid"],
                           Path(r["path"]), r["transfer_syntax"])
            for r in rows]


def storage_contexts(instances: list[StoredInstance]) -> list[PresentationContext]:
    """Contexts to propose for sending ``instances``: each SOP class with its stored
    transfer syntax first, then the two uncompressed ones every SCP accepts."""
    syntaxes: dict[str, list[str]] = {}
    for item in instances:
        wanted = syntaxes.setdefault(item.sop_class_uid, [])
        if item.transfer_syntax not in wanted:
            wanted.append(item.transfer_syntax)
    contexts = []
    for sop_class, stored in list(syntaxes.items())[:128]:
        offered = list(dict.fromkeys([*stored, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
        contexts.append(build_context(sop_class, offered))
    return contexts


def vr_of(keyword: str) -> str:
    """The dictionary VR of a keyword (used to build identifiers from plain kwargs)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise _fail(f"unknown DICOM keyword {keyword!r}", STATUS_UNABLE_TO_PROCESS)
    return dictionary_VR(tag)


__all__ = ["LEVELS", "FIELDS", "UNIQUE_KEY", "MODEL_OF_SOP_CLASS", "check_identifier",
           "run_find", "match_instances", "storage_contexts", "status_of", "vr_of",
           "STATUS_IDENTIFIER_MISMATCH", "STATUS_UNABLE_TO_PROCESS"]
