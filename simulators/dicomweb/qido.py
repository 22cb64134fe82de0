"""QIDO-RS search (PS3.18 10.6) translated to the archive's own C-FIND matching.

Why no matcher here: a QIDO query parameter *is* a C-FIND matching key with the
same value syntax (wildcards, ``DA`` ranges, UID lists), so the parameters become
a C-FIND identifier and :func:`simulators.dicom.qr.run_find` answers it. DIMSE and
DICOMweb clients then agree on every edge case, because they share one matcher.

Differences from C-FIND that belong here: ``limit``/``offset`` paging,
``includefield`` (a keyword, a tag or ``all``), the default return attributes of
PS3.18 Table 10.6.3-3..5, a UID list written with commas, a ``RetrieveURL`` per
match, and 400 for a parameter that is not an attribute or a number that is not one.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator
from urllib.parse import parse_qsl

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from simulators.dicom.qr import FIELDS, LEVELS, run_find, vr_of
from simulators.dicom.store import DicomStore
from simulators.dicomweb.media import HttpError
from simulators.errors import ProtocolError

#: Attributes every match carries at each level (PS3.18 Tables 10.6.3-3, -4, -5).
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "STUDY": ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
              "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate",
              "PatientSex", "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances"),
    "SERIES": ("StudyInstanceUID", "Modality", "SeriesDescription", "SeriesInstanceUID",
               "SeriesNumber", "NumberOfSeriesRelatedInstances"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID",
              "InstanceNumber"),
}
_CONTROL = ("limit", "offset", "includefield", "fuzzymatching")
MAX_LIMIT = 10_000


def _keyword(name: str) -> str:
    """A parameter name as a DICOM keyword: ``PatientID`` or ``00100020``."""
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        found = keyword_for_tag(int(name, 16))
        if found:
            return found
    try:
        vr_of(name)
    except ProtocolError:
        raise HttpError(400, f"{name!r} is neither a query parameter nor a DICOM attribute")
    return name


def _count(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise HttpError(400, f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


def _value(keyword: str, raw: str) -> Any:
    """The matching value: commas separate a UID list (PS3.18 8.3.4.1)."""
    vr = vr_of(keyword)
    if vr == "UI":
        return [v.strip() for v in raw.replace("\\", ",").split(",") if v.strip()] or None
    if vr == "CS" and "," in raw:
        return [v.strip() for v in raw.split(",") if v.strip()]
    return raw


def build_identifier(level: str, query: str, fixed: dict[str, str]) -> tuple[Dataset, int, int]:
    """(identifier, offset, limit) for a query string at ``level``; ``fixed`` holds the
    UIDs of the path (``/studies/{uid}/series``)."""
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    params: dict[str, str] = {}
    matching: dict[str, str] = {}
    include: list[str] = []
    for name, value in pairs:
        if name.lower() in _CONTROL:
            if name.lower() == "includefield":
                include += [v.strip() for v in value.split(",") if v.strip()]
            else:
                params[name.lower()] = value.strip()
            continue
        keyword = _keyword(name)
        if keyword in fixed:
            raise HttpError(400, f"{keyword} is already given by the URL path")
        matching[keyword] = value
    offset = _count(params, "offset", 0)
    limit = min(_count(params, "limit", MAX_LIMIT), MAX_LIMIT)
    depth = LEVELS.index(level)
    returned = list(DEFAULT_FIELDS[level])
    for item in include:
        if item.lower() == "all":
            returned += [kw for kw, f in FIELDS.items() if LEVELS.index(f.level) <= depth]
        else:
            returned.append(_keyword(item))
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword in dict.fromkeys([*returned, *matching, *fixed]):
        raw = fixed.get(keyword, matching.get(keyword))
        value = None if raw in (None, "") else _value(keyword, raw)
        identifier.add_new(keyword, vr_of(keyword), value)
    return identifier, offset, limit


def search(store: DicomStore, level: str, query: str, fixed: dict[str, str],
           base_url: str) -> Iterator[dict[str, Any]]:
    """The matches of a QIDO-RS request as DICOM JSON objects (PS3.18 F.2)."""
    identifier, offset, limit = build_identifier(level, query, fixed)
    for match in itertools.islice(run_find(store, level, identifier, root="STUDY"),
                                  offset, offset + limit):
        del match.QueryRetrieveLevel
        match.RetrieveURL = retrieve_url(base_url, match)
        yield match.to_json_dict()


def retrieve_url(base_url: str, match: Dataset) -> str:
    """Where WADO-RS retrieves this study, series or instance."""
    url = f"{base_url}/studies/{match.get('StudyInstanceUID', '')}"
    if match.get("SeriesInstanceUID"):
        url += f"/series/{match.SeriesInstanceUID}"
        if match.get("SOPInstanceUID"):
            url += f"/instances/{match.SOPInstanceUID}"
    return url


__all__ = ["DEFAULT_FIELDS", "build_identifier", "search", "retrieve_url"]
