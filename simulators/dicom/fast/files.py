"""Pre-encoded instances: a Part 10 file's dataset bytes, sent without re-encoding.

Decoding a 0.5 MB CT slice into a pydicom Dataset and writing it back costs more
than sending it; the wire only needs the bytes after the File Meta Information and
the three UIDs from the meta header. ``read_part10`` gets those with one file read,
parsing only group 0002.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pynetdicom.dsutils import decode, encode

from simulators.errors import StoreError


@dataclass(frozen=True, slots=True)
class EncodedInstance:
    """A dataset already encoded in ``transfer_syntax``, ready for C-STORE."""

    sop_class: str
    sop_instance: str
    transfer_syntax: str
    data: bytes

    def __len__(self) -> int:
        return len(self.data)


def read_part10(path: str | Path) -> EncodedInstance:
    """Read a DICOM Part 10 file, keeping the dataset's bytes as they are on disk.

    One read of the file; only the File Meta group is parsed (pydicom's
    ``read_dataset`` stopping at the first non-0002 element, as pynetdicom's
    ``split_dataset`` does on a file handle).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}", file=str(path)) from exc
    if data[128:132] != b"DICM":
        raise StoreError("not a DICOM Part 10 file (no DICM prefix)", file=str(path))
    stream = BytesIO(data)
    stream.seek(132)
    try:
        meta = read_dataset(stream, is_implicit_VR=False, is_little_endian=True,
                            stop_when=_past_file_meta)
        return EncodedInstance(str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID),
                               str(meta.TransferSyntaxUID), data[stream.tell():])
    except AttributeError as exc:
        raise StoreError("file meta information lacks a required UID", file=str(path)) from exc
    except Exception as exc:  # pydicom raises several types for a broken header
        raise StoreError(f"unreadable file meta information: {exc}", file=str(path)) from exc


def _past_file_meta(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag.group != 0x0002


def encode_dataset(ds: Dataset, transfer_syntax: str) -> bytes:
    """Encode ``ds`` for ``transfer_syntax`` with pynetdicom's dataset encoder."""
    uid = UID(transfer_syntax)
    if not uid.is_transfer_syntax:
        raise StoreError("unknown transfer syntax", transfer_syntax=transfer_syntax)
    encoded = encode(ds, uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated)
    if encoded is None:
        raise StoreError("dataset could not be encoded", transfer_syntax=transfer_syntax,
                         sop_instance=str(ds.get("SOPInstanceUID", "")))
    return encoded


def decode_dataset(stream: BytesIO, transfer_syntax: str) -> Dataset:
    """Decode a received dataset (identifier, attribute list...) in ``transfer_syntax``."""
    uid = UID(transfer_syntax)
    return decode(stream, uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated)


__all__ = ["EncodedInstance", "read_part10", "encode_dataset", "decode_dataset"]
