"""Realistic-size study images at the cost of tiny ones.

Building a 512x512 CT slice with its pixels costs about 17 ms of CPU; a load run
that did that for every image would measure its own image builder, and would stall
every other virtual modality sharing the event loop. Identity (patient, study, UIDs)
comes from the study's context and must be exact; pixels only need the right size.
So each image is built at 8x8 from the real context (about 1 ms) and the attributes
that depend on the size (Rows, Columns, Pixel Data, Pixel Spacing, ultrasound
regions...) are taken from one full-size template per modality and size. Which
attributes those are is found by diffing a small and a full build of the same image,
not listed by hand, so a new modality needs nothing here.

On the wire, :meth:`StudyImages.encoded` goes one step further: Pixel Data is the
last element of these images, so the full-size Pixel Data element is encoded once and
appended to each image's small encoded header (Explicit VR Little Endian), instead of
copying 0.5 MB through the dataset encoder for every image.
"""

from __future__ import annotations

import threading
from typing import Iterator

from pydicom.dataset import Dataset
from pydicom.dataelem import DataElement

from simulators.dicom.fast.files import encode_dataset
from simulators.load.profile import Images
from simulators.world.context import StudyContext
from simulators.world.images import iter_study

_SMALL = 8
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
PIXEL_DATA = 0x7FE00010


class StudyImages:
    """Per (modality, rows, cols): the size-dependent elements of a full-size image."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, int, int], list[DataElement]] = {}
        self._pixels: dict[tuple[str, int, int], bytes] = {}
        self._lock = threading.Lock()

    def _template(self, ctx: StudyContext, rows: int, cols: int) -> list[DataElement]:
        key = (ctx.modality.upper(), rows, cols)
        with self._lock:
            found = self._templates.get(key)
        if found is not None:
            return found
        small = next(iter_study(ctx, rows=_SMALL, cols=_SMALL, per_series=1))
        full = next(iter_study(ctx, rows=rows, cols=cols, per_series=1))
        changed = [full[tag] for tag in full.keys()
                   if tag not in small or small[tag].value != full[tag].value]
        with self._lock:
            self._templates[key] = changed
        return changed

    def study(self, ctx: StudyContext, images: Images) -> Iterator[Dataset]:
        """The study's images one at a time, identity from ``ctx``, size from ``images``."""
        template = self._template(ctx, images.rows, images.cols)
        for ds in iter_study(ctx, series=images.series, per_series=images.per_series,
                             rows=_SMALL, cols=_SMALL):
            for element in template:
                ds[element.tag] = element
            yield ds


    def encoded(self, ctx: StudyContext, images: Images) -> Iterator[tuple[Dataset, bytes]]:
        """(header dataset, full encoded dataset in Explicit VR LE) per image."""
        key = (ctx.modality.upper(), images.rows, images.cols)
        template = self._template(ctx, images.rows, images.cols)
        pixels = self._pixels.get(key)
        if pixels is None:
            holder = Dataset()
            for element in template:
                if element.tag == PIXEL_DATA:
                    holder[element.tag] = element
            pixels = self._pixels[key] = encode_dataset(holder, EXPLICIT_VR_LE)
        for ds in iter_study(ctx, series=images.series, per_series=images.per_series,
                             rows=_SMALL, cols=_SMALL):
            for element in template:
                ds[element.tag] = element
            header = Dataset({tag: ds[tag] for tag in ds.keys() if tag != PIXEL_DATA})
            if max(header.keys(), default=0) > PIXEL_DATA:  # never for our builders
                yield ds, encode_dataset(ds, EXPLICIT_VR_LE)
                continue
            yield header, encode_dataset(header, EXPLICIT_VR_LE) + pixels


__all__ = ["StudyImages"]
