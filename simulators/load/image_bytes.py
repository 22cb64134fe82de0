"""Encoded image headers, element by element: split, patch, reassemble.

The load generator's images differ from one another in a handful of elements
(SOP Instance UID, Instance Number, content time, slice position...). Encoding a
whole pydicom header per image (about 2 ms, plus 2 ms to build it) made the
generator measure itself. Here a header encoded once is cut into its top-level
elements (Explicit VR Little Endian, PS3.5 7.1.2; sequences of defined or
undefined length, PS3.5 7.5), the elements that vary are taken out, and each
image is the join of the constant runs with its own few elements.

Per-image elements come from two places: slot-only values (those that depend on
the image's place in the study, not on the patient: slice position, view...) as
already-encoded bytes recorded from a template study, and :data:`LIVE` elements
that depend on both the study and the slot, encoded here by hand (a UID and
dates/times: ASCII, padded to even length as PS3.5 6.2 says).
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass
from typing import Callable

from simulators.world.context import StudyContext
from simulators.world.images import image_moment
from simulators.world.iod_common import dicom_date, dicom_time

#: VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SHORT_HEADER = struct.Struct("<HH2sH")
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
#: Nesting bound for sequences inside sequences (our builders nest two levels).
_MAX_DEPTH = 16


def slot_moment(ctx: StudyContext, series: int, instance: int) -> dt.datetime:
    """Content date/time of image (series, instance): the world's own rule."""
    return image_moment(ctx, series, instance)


LiveValue = Callable[[StudyContext, int, int], str]
#: Elements that depend on the study *and* the image: tag -> (VR, padding, value).
LIVE: dict[int, tuple[bytes, bytes, LiveValue]] = {
    0x00080018: (b"UI", b"\x00", lambda ctx, s, i: ctx.instance_uid(s, i)),
    0x00080022: (b"DA", b" ", lambda ctx, s, i: dicom_date(slot_moment(ctx, s, i))),
    0x00080023: (b"DA", b" ", lambda ctx, s, i: dicom_date(slot_moment(ctx, s, i))),
    0x00080032: (b"TM", b" ", lambda ctx, s, i: dicom_time(slot_moment(ctx, s, i))),
    0x00080033: (b"TM", b" ", lambda ctx, s, i: dicom_time(slot_moment(ctx, s, i))),
}


def live_element(tag: int, ctx: StudyContext, series: int, instance: int) -> bytes:
    """One :data:`LIVE` element, encoded Explicit VR Little Endian."""
    vr, pad, value = LIVE[tag]
    raw = value(ctx, series, instance).encode("ascii")
    if len(raw) % 2:
        raw += pad
    return _SHORT_HEADER.pack(tag >> 16, tag & 0xFFFF, vr, len(raw)) + raw


def element_spans(data: bytes) -> dict[int, bytes]:
    """Top-level elements of an Explicit VR LE dataset: tag -> its encoded bytes, in order.

    Raises ``ValueError`` on bytes that are not a well-formed dataset (we only
    split our own encoder's output, so that is a bug, not input).
    """
    spans: dict[int, bytes] = {}
    offset, total = 0, len(data)
    while offset < total:  # bounded: every element advances by at least 8 bytes
        end = _element_end(data, offset, 0)
        group, element = _TAG.unpack_from(data, offset)
        spans[(group << 16) | element] = data[offset:end]
        offset = end
    return spans


def _element_end(data: bytes, offset: int, depth: int) -> int:
    if offset + 8 > len(data):
        raise ValueError(f"truncated element at {offset}")
    vr = data[offset + 4:offset + 6]
    if vr in _LONG_VRS:
        if offset + 12 > len(data):
            raise ValueError(f"truncated element at {offset}")
        length, start = _U32.unpack_from(data, offset + 8)[0], offset + 12
    else:
        length, start = _U16.unpack_from(data, offset + 6)[0], offset + 8
    if length == _UNDEFINED:
        if vr not in (b"SQ", b"UN"):
            raise ValueError(f"undefined length for VR {vr!r} at {offset}")
        return _sequence_end(data, start, depth + 1)
    if start + length > len(data):
        raise ValueError(f"element at {offset} overruns the dataset")
    return start + length


def _delimiter(data: bytes, offset: int) -> tuple[int, int]:
    if offset + 8 > len(data):
        raise ValueError(f"truncated item at {offset}")
    group, element = _TAG.unpack_from(data, offset)
    return (group << 16) | element, _U32.unpack_from(data, offset + 4)[0]


def _sequence_end(data: bytes, offset: int, depth: int) -> int:
    """Offset just past the Sequence Delimitation Item of an undefined-length sequence."""
    if depth > _MAX_DEPTH:
        raise ValueError("sequences nested too deep")
    while True:  # bounded: every item advances by at least 8 bytes or raises
        tag, length = _delimiter(data, offset)
        if tag == _SEQUENCE_END:
            return offset + 8
        if tag != _ITEM:
            raise ValueError(f"expected an item at {offset}")
        offset += 8
        if length != _UNDEFINED:
            offset += length
            continue
        while True:  # elements of an undefined-length item, up to its delimiter
            tag, _ = _delimiter(data, offset)
            if tag == _ITEM_END:
                offset += 8
                break
            offset = _element_end(data, offset, depth)


@dataclass(frozen=True, slots=True)
class HeaderLayout:
    """One series' header as constant runs around the elements that vary per image.

    ``runs`` has one more entry than ``varying``; image bytes are
    ``runs[0] + element(varying[0]) + runs[1] + ... + runs[-1]``.
    """

    runs: tuple[bytes, ...]
    varying: tuple[int, ...]
    present: frozenset[int]

    @classmethod
    def cut(cls, spans: dict[int, bytes], varying: frozenset[int]) -> "HeaderLayout":
        """Split a series' first header (``spans``) around ``varying`` tags."""
        runs: list[bytes] = []
        current: list[bytes] = []
        order: list[int] = []
        for tag in sorted(set(spans) | varying):
            if tag in varying:
                runs.append(b"".join(current))
                current = []
                order.append(tag)
            else:
                current.append(spans[tag])
        runs.append(b"".join(current))
        return cls(tuple(runs), tuple(order), frozenset(spans))

    def assemble(self, ctx: StudyContext, series: int, instance: int,
                 recorded: dict[int, bytes]) -> list[bytes]:
        """The parts of image (series, instance): LIVE elements computed, others from
        ``recorded`` (that slot's encoded elements; absent means not in that image)."""
        parts = [self.runs[0]]
        for tag, run in zip(self.varying, self.runs[1:]):
            if tag in LIVE:
                parts.append(live_element(tag, ctx, series, instance) if tag in self.present
                             else b"")
            else:
                parts.append(recorded.get(tag, b""))
            parts.append(run)
        return parts


__all__ = ["LIVE", "live_element", "element_spans", "slot_moment", "HeaderLayout"]
