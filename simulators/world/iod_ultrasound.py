"""US Image IOD (PS3.3 A.6): single-frame 8-bit B-mode images.

Ultrasound is 8-bit by nature (MONOCHROME2 grey scale, or RGB when colour overlays are
burnt in); the US Image module constrains Bits Allocated/Stored to 8 and needs the
four-valued Image Type whose last value is the bit-mask of imaging modes (0001 = 2D).
The US Region Calibration module is included so measurements make sense to a viewer.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UltrasoundImageStorage

from simulators.world.context import StudyContext
from simulators.world.iod_common import ImageSlot, set_pixels
from simulators.world.pixels import sector, to_unsigned

#: US Image Type value 3 (anatomy) by body part; defined terms of C.8.5.6.1.1.
US_ANATOMY = {"ABDOMEN": "ABDOMINAL", "PELVIS": "PELVIC", "NECK": "SMALL PARTS"}
DEPTH_CM = 16.0


def us_pixels(ctx: StudyContext, slot: ImageSlot, *, color: bool) -> np.ndarray:
    """Grey-scale speckle fan, or the same fan with a colour-Doppler-like box in RGB."""
    grey = to_unsigned(sector(slot.rows, slot.cols, slot.position, ctx.seed, slot.key(ctx)),
                       0.0, 1.0, 8)
    if not color:
        return grey
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    top, left = slot.rows // 3, slot.cols // 2 - slot.cols // 10
    box = rgb[top:top + slot.rows // 6, left:left + slot.cols // 5]
    box[..., 0] = np.maximum(box[..., 0], 180)  # red "flow" region
    return rgb


def add_us(ds: Dataset, ctx: StudyContext, slot: ImageSlot, *, color: bool = False) -> None:
    """US Image module (C.8.5.6) plus US Region Calibration (C.8.5.5)."""
    anatomy = US_ANATOMY.get(ctx.body_part, "ABDOMINAL")
    ds.ImageType = ["ORIGINAL", "PRIMARY", anatomy, "0011" if color else "0001"]
    ds.PatientOrientation = ""
    set_pixels(ds, us_pixels(ctx, slot, color=color), bits_stored=8,
               photometric="RGB" if color else "MONOCHROME2")
    ds.LossyImageCompression = "00"
    ds.TransducerData = ["C5-2", "", ""]
    ds.ProcessingFunction = "GENERAL"
    ds.MechanicalIndex = "1.1"
    ds.SoftTissueThermalIndex = "0.4"
    ds.SequenceOfUltrasoundRegions = [_region(slot)]


def add_us_color(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    add_us(ds, ctx, slot, color=True)


def _region(slot: ImageSlot) -> Dataset:
    """One tissue region covering the image: 2D, cm per pixel in both directions."""
    region = Dataset()
    region.RegionSpatialFormat = 1          # 2D
    region.RegionDataType = 1               # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = slot.cols - 1
    region.RegionLocationMaxY1 = slot.rows - 1
    region.PhysicalUnitsXDirection = 3      # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = DEPTH_CM / slot.rows
    region.PhysicalDeltaY = DEPTH_CM / slot.rows
    region.ReferencePixelX0 = slot.cols // 2
    region.ReferencePixelY0 = 0
    return region


ULTRASOUND_IODS = {
    "US": (UltrasoundImageStorage, add_us),
}

__all__ = ["ULTRASOUND_IODS", "add_us", "add_us_color", "us_pixels"]
