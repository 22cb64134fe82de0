"""WADO-RS retrieve (PS3.18 10.4): instances as multipart/related, metadata as DICOM JSON.

Both responses are generators of byte chunks that the server writes with chunked
transfer encoding, so a study goes out file by file (64 KiB reads) and memory does
not grow with its size. What goes out is the stored Part 10 file as received
(the archive never re-encodes on ingest); a client that lists transfer syntaxes
without the stored one gets the uncompressed little-endian syntaxes converted
per instance, anything else a 406 before the first byte.

Metadata omits bulk data: binary elements (OB/OW/OF/OD/OL/OV/UN) longer than
:data:`BULK_THRESHOLD` bytes, Pixel Data among them, are left out rather than
given a BulkDataURI, because no bulk data resource is served (PS3.18 F.2.7 allows
a server to omit what it cannot reference). Viewers fetch pixels by WADO-RS
instance retrieval, which is what the timing probes measure anyway.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Iterator

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from simulators.dicom.store import DicomStore, StoredInstance
from simulators.dicomweb.media import DICOM, HttpError, closing_delimiter, part_header

CHUNK = 64 * 1024
BULK_THRESHOLD = 1024
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_CONVERTIBLE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}


def select(store: DicomStore, study: str, series: str | None = None,
           instance: str | None = None) -> list[StoredInstance]:
    """The stored instances a WADO-RS path names; 404 when there are none."""
    found = store.instances(study, series, [instance] if instance else None)
    if not found:
        what = "instance" if instance else "series" if series else "study"
        raise HttpError(404, f"no such {what} in this archive")
    return found


def plan_syntaxes(instances: list[StoredInstance], wanted: list[str] | None) -> list[str | None]:
    """Per instance: None to send as stored, or the syntax to convert it to; 406 otherwise."""
    plan: list[str | None] = []
    for item in instances:
        if wanted is None or item.transfer_syntax in wanted:
            plan.append(None)
            continue
        target = next((s for s in wanted if s in _CONVERTIBLE), None)
        if item.transfer_syntax not in _CONVERTIBLE or target is None:
            raise HttpError(406, f"instance stored as {item.transfer_syntax}; "
                                 f"none of the requested transfer syntaxes can be served")
        plan.append(target)
    return plan


def stream_instances(instances: list[StoredInstance], plan: list[str | None],
                     boundary: str) -> Iterator[bytes]:
    """multipart/related body, one application/dicom part per instance, file by file."""
    for index, (item, convert) in enumerate(zip(instances, plan)):
        syntax = convert or item.transfer_syntax
        yield part_header(boundary, f'{DICOM}; transfer-syntax={syntax}', index == 0)
        if convert is None:
            with open(item.path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
        else:
            yield _converted(item, convert)
    yield closing_delimiter(boundary)


def _converted(item: StoredInstance, syntax: str) -> bytes:
    """One instance re-encoded between the two uncompressed little-endian syntaxes."""
    ds = dcmread(item.path)
    ds.file_meta.TransferSyntaxUID = syntax
    out = BytesIO()
    ds.save_as(out, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True,
               enforce_file_format=True)
    return out.getvalue()


def stream_metadata(instances: list[StoredInstance]) -> Iterator[bytes]:
    """A JSON array of every instance's attributes, bulk data omitted (module docstring)."""
    yield b"["
    for index, item in enumerate(instances):
        ds = dcmread(item.path)
        for element in list(ds):
            if element.VR in _BINARY_VRS and len(element.value or b"") > BULK_THRESHOLD:
                del ds[element.tag]
        body = ds.to_json_dict(bulk_data_threshold=BULK_THRESHOLD)
        yield (b"," if index else b"") + json.dumps(body).encode("utf-8")
    yield b"]"


__all__ = ["select", "plan_syntaxes", "stream_instances", "stream_metadata", "CHUNK",
           "BULK_THRESHOLD"]
