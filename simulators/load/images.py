"""Realistic-size study images at the cost of tiny ones, and their bytes at the cost of a join.

Building a 512x512 CT slice with its pixels costs about 17 ms of CPU; a load run
that did that for every image would measure its own image builder, and would stall
every other virtual modality sharing the event loop. Identity (patient, study, UIDs)
comes from the study's context and must be exact; pixels only need the right size.
So each image is built at 8x8 from the real context and the attributes that depend
on the size (Rows, Columns, Pixel Data, Pixel Spacing, ultrasound regions...) are
taken from one full-size template per modality and size. Which attributes those are
is found by diffing a small and a full build of the same image, not listed by hand,
so a new modality needs nothing here. :meth:`StudyImages.study` gives those
datasets; it is the reference for what the generator sends.

:meth:`StudyImages.encoded` sends the same bytes without building and encoding
every image (about 4 ms each, which held the C-STORE load at 0.28 of DCMTK's
throughput). Per study it builds and encodes only the first image of each series
(identity exact, from the real context); the elements that vary inside a series
are found once per study shape by recording a template study (which of them
differ from the series' first image, and their encoded bytes per slot). Each image
is then the series' header runs joined with its own varying elements
(``image_bytes``), plus the full-size Pixel Data element encoded once. Slot values
that also depend on the patient (views per body part...) would be wrong from
another study's template, so every study is checked: the first image of each series
and the study's last image are assembled and compared byte for byte with a real
build; a template that does not fit is replaced by one recorded from this study,
and if even that does not reproduce the real build the study falls back to
building every image (logged once per shape).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterator

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from simulators.dicom.fast.files import encode_dataset
from simulators.load.image_bytes import LIVE, HeaderLayout, element_spans, slot_moment
from simulators.load.profile import Images
from simulators.world.context import StudyContext
from simulators.world.images import IODS, build_image, iter_study
from simulators.world.iod_common import ImageSlot

log = logging.getLogger(__name__)

_SMALL = 8
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
PIXEL_DATA = 0x7FE00010
#: Slot templates kept per study shape (e.g. one per body part's set of views).
MAX_TEMPLATES = 4
#: Series-level attributes an MPPS N-SET reports per image (``requests.mpps_final``).
_REFERENCE_KEYS = ("SOPClassUID", "SeriesInstanceUID", "PerformingPhysicianName",
                   "ProtocolName", "OperatorsName", "SeriesDescription")

Slot = tuple[int, int]
#: Elements a standalone element's encoding depends on (text encoding; 'US or SS').
_ENCODING_CONTEXT = (0x00080005, 0x00280100, 0x00280103)
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """One image ready for C-STORE: its UIDs and its dataset (Explicit VR LE) in
    pieces: the image's own header, then the Pixel Data element shared by the study."""

    sop_class: str
    sop_instance: str
    series: Dataset  # header of the series' first image: the series-level attributes
    parts: tuple[bytes, ...]

    @property
    def data(self) -> bytes:
        """The whole dataset in one buffer (a copy: the sender takes ``parts``)."""
        return b"".join(self.parts)

    def reference(self) -> Dataset:
        """What an MPPS N-SET needs to list this image (series attributes, SOP UIDs)."""
        ds = Dataset()
        for keyword in _REFERENCE_KEYS:
            if keyword in self.series:
                setattr(ds, keyword, self.series[keyword].value)
        ds.SOPClassUID = self.sop_class
        ds.SOPInstanceUID = self.sop_instance
        return ds


@dataclass(frozen=True, slots=True)
class _SlotTemplate:
    """Recorded from one study: tags varying inside a series, their values and
    encoded bytes per slot (tags absent from a slot are absent from its dicts)."""

    varying: frozenset[int]
    values: dict[Slot, dict[int, object]]
    encoded: dict[Slot, dict[int, bytes]]


class StudyImages:
    """A load run's image factory (see the module docstring): per (modality, rows,
    cols) the size-dependent elements and the encoded Pixel Data; per study shape up
    to ``MAX_TEMPLATES`` slot templates. One per engine; safe to share between threads."""

    def __init__(self) -> None:
        self._templates: dict[tuple[str, int, int], list[DataElement]] = {}
        self._pixels: dict[tuple[str, int, int], bytes] = {}
        self._slots: dict[tuple[object, ...], list[_SlotTemplate]] = {}
        self._lock = threading.Lock()
        self._warned: set[tuple[object, ...]] = set()
        #: Studies sent from templates / by building every image (tests and benchmarks).
        self.fast_studies = self.slow_studies = 0

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

    def prepare(self, ctx: StudyContext, images: Images) -> bool:
        """Record the templates for studies shaped like ``images`` (the engine does this
        before the load starts, as DCMTK's files are written before storescu runs);
        True when such studies take the fast path."""
        size = self._template(ctx, images.rows, images.cols)
        self._pixel_element(ctx, images, size)
        return self._plan(ctx, images, size) is not None

    def encoded(self, ctx: StudyContext, images: Images) -> Iterator[EncodedImage]:
        """The study's images as :class:`EncodedImage`, byte-identical to encoding
        :meth:`study`'s datasets (see the module docstring)."""
        iter_study(ctx, series=images.series, per_series=images.per_series, rows=_SMALL,
                   cols=_SMALL)  # checks modality and sizes before anything is built
        size = self._template(ctx, images.rows, images.cols)
        pixels = self._pixel_element(ctx, images, size)
        planned = self._plan(ctx, images, size)
        if planned is None:
            self.slow_studies += 1
            yield from self._built(ctx, images, pixels)
            return
        self.fast_studies += 1
        template, layouts, bases = planned
        sop_class = IODS[ctx.modality.upper()][0]
        for series in range(1, images.series + 1):
            layout, header = layouts[series], bases[series]
            for instance in range(1, images.per_series + 1):
                parts = layout.assemble(ctx, series, instance,
                                        template.encoded[(series, instance)])
                yield EncodedImage(sop_class, ctx.instance_uid(series, instance), header,
                                   (b"".join(parts), pixels))

    # -- the exact, slow way (reference and fallback) ---------------------------------------
    def _built(self, ctx: StudyContext, images: Images, pixels: bytes) -> Iterator[EncodedImage]:
        for ds in self.study(ctx, images):
            header = Dataset({tag: ds[tag] for tag in ds.keys() if tag != PIXEL_DATA})
            if max(header.keys(), default=0) > PIXEL_DATA:  # never for our builders
                parts = (encode_dataset(ds, EXPLICIT_VR_LE),)
            else:
                parts = (encode_dataset(header, EXPLICIT_VR_LE), pixels)
            yield EncodedImage(str(ds.SOPClassUID), str(ds.SOPInstanceUID), header, parts)

    def _pixel_element(self, ctx: StudyContext, images: Images, size: list[DataElement]) -> bytes:
        key = (ctx.modality.upper(), images.rows, images.cols)
        pixels = self._pixels.get(key)
        if pixels is None:
            holder = Dataset()
            for element in size:
                if element.tag == PIXEL_DATA:
                    holder[element.tag] = element
            pixels = self._pixels[key] = encode_dataset(holder, EXPLICIT_VR_LE)
        return pixels

    def _header(self, ctx: StudyContext, slot: Slot, images: Images,
                size: list[DataElement]) -> Dataset | None:
        """Slot's small build with the size elements, without Pixel Data; ``None`` if
        anything follows Pixel Data (then only the slow path is exact)."""
        sop_class, add_modality = IODS[ctx.modality.upper()]
        series, instance = slot
        ds = build_image(ctx, ImageSlot(series, instance, images.per_series, _SMALL, _SMALL,
                                        slot_moment(ctx, series, instance)),
                         sop_class, add_modality)
        for element in size:
            ds[element.tag] = element
        header = Dataset({tag: ds[tag] for tag in ds.keys() if tag != PIXEL_DATA})
        return None if max(header.keys(), default=0) > PIXEL_DATA else header

    # -- the fast way: templates checked against real builds --------------------------------
    def _plan(self, ctx: StudyContext, images: Images, size: list[DataElement]
              ) -> tuple[_SlotTemplate, dict[int, HeaderLayout], dict[int, Dataset]] | None:
        key = (ctx.modality.upper(), ctx.charset, images.series, images.per_series,
               images.rows, images.cols)
        slots = [(series, 1) for series in range(1, images.series + 1)]
        if images.per_series > 1:
            slots.append((images.series, images.per_series))  # the probe: the last image
        bases: dict[int, Dataset] = {}
        checks: list[tuple[Slot, Dataset]] = []
        for slot in slots:
            header = self._header(ctx, slot, images, size)
            if header is None:
                return None
            if slot[1] == 1:
                bases[slot[0]] = header
            checks.append((slot, header))
        with self._lock:
            candidates = list(self._slots.get(key, ()))
        for template in candidates:
            if self._fits(ctx, template, bases, checks):
                self._remember(key, template)
                return template, self._layouts(template, bases), bases
        template = self._record(ctx, images, size, bases)
        if not self._fits(ctx, template, bases, checks):
            if key not in self._warned:
                self._warned.add(key)
                log.warning("image templates do not reproduce %s images %s: building every "
                            "image (slow)", key[0], key[2:])
            return None
        self._remember(key, template)
        return template, self._layouts(template, bases), bases

    @staticmethod
    def _layouts(template: _SlotTemplate, bases: dict[int, Dataset]) -> dict[int, HeaderLayout]:
        return {series: HeaderLayout.cut(element_spans(encode_dataset(base, EXPLICIT_VR_LE)),
                                         template.varying)
                for series, base in bases.items()}

    @staticmethod
    def _fits(ctx: StudyContext, template: _SlotTemplate, bases: dict[int, Dataset],
              checks: list[tuple[Slot, Dataset]]) -> bool:
        """Would the template give exactly these real builds? Compared by value: an
        element's bytes follow from its tag, VR, value and the character set (in the key)."""
        for (series, instance), real in checks:
            values = template.values.get((series, instance))
            if values is None:
                return False
            base = bases[series]
            for tag in real.keys() | base.keys() | template.varying:
                if tag in LIVE and tag in template.varying:
                    expected = LIVE[tag][2](ctx, series, instance) if tag in base else None
                    actual = str(real[tag].value) if tag in real else None
                elif tag in template.varying:
                    expected = values.get(tag, _ABSENT)
                    actual = real[tag].value if tag in real else _ABSENT
                else:
                    expected = base[tag].value if tag in base else _ABSENT
                    actual = real[tag].value if tag in real else _ABSENT
                if expected != actual:
                    return False
        return True

    def _record(self, ctx: StudyContext, images: Images, size: list[DataElement],
                bases: dict[int, Dataset]) -> _SlotTemplate:
        """Build every image of this study once: which tags vary in a series, and how.

        Only the varying elements are encoded (with the elements their encoding
        depends on: character set, pixel representation), not whole headers.
        """
        headers: dict[Slot, Dataset] = {}
        for series in range(1, images.series + 1):
            headers[(series, 1)] = bases[series]
            for instance in range(2, images.per_series + 1):
                headers[(series, instance)] = self._header(ctx, (series, instance), images,
                                                           size) or Dataset()
        varying = {tag for header in headers.values() for tag in header.keys() if tag in LIVE}
        for (series, _), header in headers.items():
            first = headers[(series, 1)]
            varying.update(tag for tag in header.keys() | first.keys()
                           if tag not in header or tag not in first
                           or header[tag].value != first[tag].value)
        values: dict[Slot, dict[int, object]] = {}
        encoded: dict[Slot, dict[int, bytes]] = {}
        for slot, header in headers.items():
            mine = [tag for tag in varying if tag not in LIVE and tag in header]
            values[slot] = {tag: header[tag].value for tag in mine}
            holder = Dataset()
            for tag in (*mine, *_ENCODING_CONTEXT):
                if tag in header:
                    holder[tag] = header[tag]
            spans = element_spans(encode_dataset(holder, EXPLICIT_VR_LE)) if mine else {}
            encoded[slot] = {tag: spans[tag] for tag in mine}
        return _SlotTemplate(frozenset(varying), values, encoded)

    def _remember(self, key: tuple[object, ...], template: _SlotTemplate) -> None:
        with self._lock:
            kept = [t for t in self._slots.get(key, ()) if t is not template]
            self._slots[key] = [template, *kept][:MAX_TEMPLATES]


__all__ = ["StudyImages", "EncodedImage", "EXPLICIT_VR_LE", "MAX_TEMPLATES"]
