"""Small pieces shared by the per-modality IOD builders.

Kept separate from images.py so the modality modules (sections, projection,
ultrasound) can import them without importing the study-level builder.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from simulators.world.context import StudyContext

#: Paired body parts: General Series Laterality (0020,0060) is Type 2C for these.
PAIRED_BODY_PARTS = frozenset({"KNEE", "HAND", "ANKLE", "FOOT", "SHOULDER", "ELBOW",
                               "WRIST", "HIP", "BREAST", "EAR", "EYE"})


@dataclass(frozen=True, slots=True)
class ImageSlot:
    """Where one image sits in its study: numbering, position and size."""

    series_number: int
    instance_number: int      # 1-based within the series
    per_series: int
    rows: int
    cols: int
    moment: dt.datetime       # content (acquisition) date and time of this image

    @property
    def position(self) -> float:
        """0.0 for the first image of a series, 1.0 for the last."""
        return 0.0 if self.per_series <= 1 else (self.instance_number - 1) / (self.per_series - 1)

    @property
    def index(self) -> int:
        """0-based index within the series (cycles through views)."""
        return self.instance_number - 1

    def key(self, ctx: StudyContext) -> tuple[object, ...]:
        """Seed key for this image's pixels: unique per study, attempt and image."""
        return (ctx.study_uid, ctx.performed_step_id, self.series_number, self.instance_number)


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """One item of a code sequence (Basic Code Sequence macro, Table 8.8-1)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def set_pixels(ds: Dataset, pixels: np.ndarray, *, bits_stored: int,
               photometric: str = "MONOCHROME2") -> None:
    """The Image Pixel module for an unsigned grayscale or RGB (interleaved) array."""
    rgb = photometric == "RGB"
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric
    if rgb:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    bits_allocated = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    vr = "OB" if bits_allocated == 8 else "OW"
    ds[0x7FE00010] = DataElement(0x7FE00010, vr, np.ascontiguousarray(pixels).tobytes())


def set_window(ds: Dataset, center: float, width: float, explanation: str) -> None:
    """VOI LUT module: one window, so viewers show something sensible at once."""
    ds.WindowCenter = f"{center:g}"
    ds.WindowWidth = f"{width:g}"
    ds.WindowCenterWidthExplanation = explanation


def dicom_date(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%d")


def dicom_time(moment: dt.datetime) -> str:
    return moment.strftime("%H%M%S")


__all__ = ["ImageSlot", "PAIRED_BODY_PARTS", "code_item", "set_pixels", "set_window",
           "dicom_date", "dicom_time"]
