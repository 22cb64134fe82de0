"""Query/Retrieve on the archive's index: C-FIND matching, level rules, retrieve sets.

PS3.4 Annex C in one place:

* **models and levels** - Patient Root (PATIENT/STUDY/SERIES/IMAGE) and Study Root
  (STUDY/SERIES/IMAGE). A missing or unknown Query/Retrieve Level, a level the
  model lacks, or a hierarchical query without single-valued unique keys for the
  levels above answers **0xA900** (identifier does not match SOP class).
* **matching** (C.2.2.2) - the rules of :mod:`simulators.dicom.matching` (shared with
  the worklist: wildcards, PN case folding, DA/TM/DT ranges, universal matching),
  UID lists as exact (indexed) value lists, and ModalitiesInStudy as "any series of
  the study has one of these modalities". Each key becomes a
  :class:`~simulators.dicom.store.KeyMatch`; the store alone knows its tables and
  runs the query (:meth:`~simulators.dicom.store.DicomStore.find_matches`).
* **responses** - every requested key comes back (zero length when unsupported),
  plus the unique keys of the query level and above, with Specific Character Set
  ISO_IR 192 whenever a value is not ASCII.

Pure functions over a :class:`~simulators.dicom.store.DicomStore`; the archive actor
binds them to pynetdicom's events and adds statuses, cancels and event emission.
"""

from __future__ import annotations

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
from simulators.dicom.store import (
    SEARCH_KEYS, DicomStore, KeyMatch, MatchRow, SearchKey, StoredInstance,
)
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


#: A key the archive can match and return: its level and value kind.
Field = SearchKey
#: Every key the archive matches and returns, by keyword (the store's index decides).
FIELDS: dict[str, Field] = SEARCH_KEYS

#: Identifier elements that steer the query instead of being matching/return keys.
_NOT_KEYS = ("", "QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC")


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


def _match(keyword: str, element: DataElement, field: Field) -> KeyMatch | None:
    """The match for one key, or None for universal matching / return-only keys.

    UID lists and exact values match exactly (the store keeps them indexed);
    wildcards, PN and DA/TM/DT go through the worklist's own rules (matching.py),
    so both C-FIND SCPs agree on every edge case.
    """
    if field.kind == "count" or is_universal_key(element):
        return None
    values = tuple(v.strip() for v in values_of(element.value) if v.strip())
    vr = element.VR
    if field.kind == "modalities":
        return KeyMatch(keyword, "exact", values)
    if vr in RANGE_VRS:
        return KeyMatch(keyword, "range", values, vr)
    if vr == "PN" or (vr in WILDCARD_VRS and any(ch in v for v in values for ch in "*?")):
        return KeyMatch(keyword, "pattern", values, vr)
    return KeyMatch(keyword, "exact", values)


def _matches(level: str, identifier: Dataset) -> list[KeyMatch]:
    """The identifier's matching keys at ``level`` and above, in identifier order."""
    depth = LEVELS.index(level)
    matches = []
    for element in identifier:
        keyword = keyword_for_tag(element.tag)
        field = FIELDS.get(keyword)
        if field is None or LEVELS.index(field.level) > depth:
            continue  # unsupported or below the level: not used for matching
        match = _match(keyword, element, field)
        if match is not None:
            matches.append(match)
    return matches


def run_find(store: DicomStore, level: str, identifier: Dataset, *,
             root: str = "STUDY") -> Iterator[Dataset]:
    """Matches of ``identifier`` at ``level`` as C-FIND response identifiers."""
    depth = LEVELS.index(level)
    unique = [UNIQUE_KEY[lv] for lv in LEVELS[LEVELS.index(root):depth + 1]]
    requested = [keyword_for_tag(e.tag) for e in identifier]
    requested = [kw for kw in requested if kw not in _NOT_KEYS]
    selected = list(dict.fromkeys([*unique, *(kw for kw in requested if kw in FIELDS
                                              and LEVELS.index(FIELDS[kw].level) <= depth)]))
    rows = store.find_matches(level, _matches(level, identifier), selected)
    for row in rows:
        yield _response(level, identifier, row, selected, requested)


def _response(level: str, identifier: Dataset, row: MatchRow, selected: list[str],
              requested: list[str]) -> Dataset:
    response = Dataset()
    response.QueryRetrieveLevel = level
    non_ascii = False
    for keyword in dict.fromkeys([*selected, *requested]):
        if keyword in selected:
            value: Any = row[keyword]
            kind = FIELDS[keyword].kind
            if kind == "count":  # the store types counts as int, modalities as a
                value = str(value)  # sorted tuple (store_index.MatchRow)
            elif kind == "modalities":
                value = list(value) or None
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
    return store.instances_matching(_matches(level, identifier), level)


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
