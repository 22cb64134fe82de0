"""CT and MR Image IODs: cross-sectional images with a patient coordinate system.

Both need Frame of Reference and Image Plane modules (PS3.3 C.7.4.1, C.7.6.2) on top of
the common modules; CT stores Hounsfield units through Rescale Slope/Intercept, MR
stores arbitrary signal. Slices step along z so a viewer can stack them.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage

from simulators.world.context import StudyContext
from simulators.world.iod_common import ImageSlot, set_pixels, set_window
from simulators.world.pixels import cross_section, to_unsigned

FIELD_OF_VIEW_MM = 350.0
CT_INTERCEPT = -1024.0
CT_BITS = 12


def _plane(ds: Dataset, ctx: StudyContext, slot: ImageSlot, thickness: float,
           spacing_between: float) -> None:
    """Frame of Reference + Image Plane: axial slices, head first supine."""
    ds.FrameOfReferenceUID = ctx.frame_of_reference_uid(slot.series_number)
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    pixel_mm = FIELD_OF_VIEW_MM / max(slot.rows, slot.cols)
    ds.PixelSpacing = [f"{pixel_mm:.6g}", f"{pixel_mm:.6g}"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    z = -slot.index * spacing_between
    ds.ImagePositionPatient = [f"{-FIELD_OF_VIEW_MM / 2:g}", f"{-FIELD_OF_VIEW_MM / 2:g}",
                               f"{z:g}"]
    ds.SliceThickness = f"{thickness:g}"
    ds.SliceLocation = f"{z:g}"


def add_ct(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    """CT Image module (C.8.2.1) with 12-bit unsigned storage and HU rescale."""
    _plane(ds, ctx, slot, thickness=2.5, spacing_between=2.5)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    hounsfield = cross_section(slot.rows, slot.cols, slot.position, ctx.seed, slot.key(ctx))
    stored = to_unsigned(hounsfield, CT_INTERCEPT, CT_INTERCEPT + 2**CT_BITS - 1, CT_BITS)
    set_pixels(ds, stored, bits_stored=CT_BITS)
    ds.RescaleIntercept = f"{CT_INTERCEPT:g}"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.KVP = "120"
    ds.AcquisitionNumber = 1
    ds.ScanOptions = "HELICAL MODE"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = f"{FIELD_OF_VIEW_MM:g}"
    ds.DistanceSourceToDetector = "1040"
    ds.DistanceSourceToPatient = "570"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.Exposure = "100"
    ds.FilterType = "BODY FILTER"
    ds.ConvolutionKernel = "STANDARD"
    if ctx.body_part in {"HEAD", "BRAIN"}:
        set_window(ds, 40, 80, "BRAIN")
    elif ctx.body_part == "CHEST":
        set_window(ds, -600, 1500, "LUNG")
    else:
        set_window(ds, 40, 400, "SOFT TISSUE")


def add_mr(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    """MR Image module (C.8.3.1): a 2D spin-echo acquisition, 12-bit magnitude."""
    _plane(ds, ctx, slot, thickness=5.0, spacing_between=6.0)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    section = cross_section(slot.rows, slot.cols, slot.position, ctx.seed, slot.key(ctx))
    # Fat/tissue bright, lungs and air dark: map HU-like values to a T1-ish signal.
    stored = to_unsigned(section, -1000.0, 1000.0, 12)
    set_pixels(ds, stored, bits_stored=12)
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = "se2d1"
    ds.AngioFlag = "N"
    ds.RepetitionTime = "500"
    ds.EchoTime = "15"
    ds.EchoTrainLength = 1
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "63.87"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "1.5"
    ds.SpacingBetweenSlices = "6"
    ds.PixelBandwidth = "130"
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle = "90"
    ds.AcquisitionNumber = 1
    set_window(ds, 2048, 4096, "FULL RANGE")


SECTION_IODS = {
    "CT": (CTImageStorage, add_ct),
    "MR": (MRImageStorage, add_mr),
}

__all__ = ["SECTION_IODS", "add_ct", "add_mr"]
