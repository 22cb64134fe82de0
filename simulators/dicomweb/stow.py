"""STOW-RS store (PS3.18 10.5): multipart application/dicom parts into the DicomStore.

Every part goes through :meth:`DicomStore.put_encoded`, the same durable path as a
C-STORE (fsync'd file, committed index row, duplicate policy), so an instance
listed in the ReferencedSOPSequence is on disk before the response is sent.

The response is the Store Instances Response Module (PS3.18 Annex I) in DICOM
JSON, and the HTTP status follows PS3.18 10.5.3: **200** every instance stored,
**202** some stored and some failed, **409** none stored. Failure Reasons
(Table I.2-2): the store's own C-STORE status where it has one (0xA900 missing
Type 1 UID, 0xC000 same UID with other content, 0xA700 out of resources),
0xC000 for a part that is not a readable Part 10 file, and **0xC409** for an
instance outside the study the URL names (an implementation code in the
standard's "Cxxx cannot understand" range, as dcm4chee does). A part whose
Content-Type is not application/dicom makes the whole request a 415.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Iterable

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag

from simulators.dicom.part10 import read_index_keys
from simulators.dicom.store import DicomStore, STATUS_OUT_OF_RESOURCES
from simulators.dicomweb.media import DICOM, HttpError, Part
from simulators.errors import StoreError

FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_STUDY_MISMATCH = 0xC409
CALLING = "DICOMWEB"


@dataclass(frozen=True, slots=True)
class StowResult:
    """The HTTP status and the response dataset of one STOW-RS request."""

    status: int
    response: Dataset
    stored: int
    failed: int


def _split_part10(content: bytes) -> tuple[str, bytes]:
    """(transfer syntax, data set bytes) of a Part 10 file; ValueError if it is not one.

    Lenient about the preamble only: pydicom writes a dataset that lacks one
    (dicomweb-client's ``store_instances`` does) as File Meta without the 128-byte
    preamble and ``DICM``; the File Meta group itself is required."""
    if content[128:132] == b"DICM":
        start = 132
    elif content[:4] == b"DICM":
        start = 4
    elif content[:2] == b"\x02\x00":
        start = 0
    else:
        raise ValueError("not a DICOM Part 10 file (no File Meta Information)")
    stream = BytesIO(content)
    stream.seek(start)
    meta = read_dataset(stream, is_implicit_VR=False, is_little_endian=True,
                        stop_when=_past_meta)
    syntax = str(meta.get("TransferSyntaxUID", "") or "")
    if not syntax:
        raise ValueError("file meta information without a Transfer Syntax UID")
    return syntax, content[stream.tell():]


def _past_meta(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag.group != 0x0002


def _reference(sop_class: str, sop_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class or None
    item.ReferencedSOPInstanceUID = sop_uid or None
    return item


def store_parts(store: DicomStore, parts: Iterable[Part], base_url: str,
                study: str | None = None) -> StowResult:
    """Store every part; the PS3.18 response and status (see module docstring)."""
    parts = list(parts)
    for part in parts:
        if part.content_type not in ("", DICOM):
            raise HttpError(415, f"unsupported part media type {part.content_type!r}")
    if not parts:
        raise HttpError(400, "multipart body without any part")
    stored, failed = [], []
    for part in parts:
        sop_class = sop_uid = ""
        try:
            syntax, payload = _split_part10(part.content)
            keys = read_index_keys(payload, syntax)
            sop_class, sop_uid = keys["SOPClassUID"], keys["SOPInstanceUID"]
        except Exception:  # noqa: BLE001 - pydicom raises many types for broken bytes
            failed.append((_reference(sop_class, sop_uid), FAILURE_CANNOT_UNDERSTAND))
            continue
        if study and keys["StudyInstanceUID"] != study:
            failed.append((_reference(sop_class, sop_uid), FAILURE_STUDY_MISMATCH))
            continue
        try:
            outcome = store.put_encoded(payload, transfer_syntax=syntax, calling_ae=CALLING,
                                        keys=keys)
        except StoreError:
            failed.append((_reference(sop_class, sop_uid), STATUS_OUT_OF_RESOURCES))
            continue
        if not outcome.ok:
            failed.append((_reference(sop_class, sop_uid), outcome.status))
            continue
        item = _reference(sop_class, sop_uid)
        item.RetrieveURL = (f"{base_url}/studies/{keys['StudyInstanceUID']}/series/"
                            f"{keys['SeriesInstanceUID']}/instances/{sop_uid}")
        stored.append(item)
    response = Dataset()
    response.RetrieveURL = f"{base_url}/studies/{study}" if study else None
    if failed:
        response.FailedSOPSequence = []
        for item, reason in failed:
            item.FailureReason = reason
            response.FailedSOPSequence.append(item)
    if stored:
        response.ReferencedSOPSequence = stored
    status = 200 if not failed else 202 if stored else 409
    return StowResult(status, response, len(stored), len(failed))


__all__ = ["StowResult", "store_parts", "FAILURE_CANNOT_UNDERSTAND", "FAILURE_STUDY_MISMATCH"]
