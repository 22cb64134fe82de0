"""Every instance header of a source study, for the data-quality checks.

Why every instance and not the index: the legacy's index keeps one row per patient,
study and series (the first instance's values), which is precisely what hides the
defects a migration must find: a series with another PatientID, a duplicate SOP
Instance UID the index refused, a character set that lies about its bytes. A
directory source is read from its files (the study's folder, plus whatever the
index lists elsewhere); an AE source is fetched by C-GET, headers decoded from the
bytes received. Pixel data is never decoded here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Iterator

import pydicom
from pydicom.dataset import Dataset

from simulators.dicom.fast.files import decode_dataset
from simulators.dicom.qrscu import QrClient
from simulators.dicom.store import DicomStore
from simulators.errors import ProtocolError, StatusError


@dataclass(frozen=True, slots=True)
class Header:
    """One instance's data set (no pixel data needed) and the syntax it was stored in."""

    dataset: Dataset
    transfer_syntax: str
    origin: str


def _safe_dir(uid: str) -> str:
    """The folder name DicomStore gives a UID (see ``DicomStore._object_path``)."""

    if len(uid) <= 64 and re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid):
        return uid
    return "x" + hashlib.sha1(uid.encode()).hexdigest()


def headers_from_directory(store: DicomStore, study_uid: str) -> Iterator[Header]:
    """Headers of a study's files: its folder first, then indexed files kept elsewhere."""
    seen: set[Path] = set()
    folder = store.objects / _safe_dir(study_uid)
    paths = sorted(folder.rglob("*.dcm")) if folder.is_dir() else []
    paths += [item.path for item in store.instances(study_uid=study_uid)]
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is itself a finding
            raise ProtocolError(f"cannot read {path.name}: {exc}", study_uid=study_uid) from exc
        syntax = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
        yield Header(ds, syntax, str(path))


def headers_by_get(session: QrClient, study_uid: str, sop_classes: list[str]
                   ) -> Iterator[Header]:
    """Headers of a study fetched from a remote legacy by C-GET (bytes as received)."""
    result = session.get({"StudyInstanceUID": study_uid}, sop_classes, keep=True)
    if result.status not in (0x0000, 0xB000):
        raise StatusError(f"C-GET of the study's headers failed: 0x{result.status:04X}",
                          status=result.status, study_uid=study_uid)
    for item in result.instances:
        yield Header(decode_dataset(BytesIO(item.data), item.transfer_syntax),
                     item.transfer_syntax, f"C-GET {item.sop_instance}")


__all__ = ["Header", "headers_from_directory", "headers_by_get"]
