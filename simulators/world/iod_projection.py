"""CR, DX and MG (For Presentation) IODs: projection radiographs.

DX and MG share the DX family of modules (PS3.3 A.26, A.27: DX Series, DX Anatomy
Imaged, DX Image, DX Detector, Acquisition Context); MG adds the Mammography Image
module with per-image laterality and view codes. CR is the older, simpler IOD. Views
cycle per instance (PA/LL for chest, CC/MLO per breast) like a real exam.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage, DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
)

from simulators.world.context import StudyContext
from simulators.world.iod_common import ImageSlot, code_item, set_pixels, set_window
from simulators.world.pixels import breast, projection, to_unsigned

BITS = 12
DETECTOR_PIXEL_MM = 0.15
MG_PIXEL_MM = 0.1

#: Anatomic Region codes (SNOMED CT, scheme "SCT", CID 4009/4031) by body part.
ANATOMY = {
    "CHEST": ("816094009", "Chest"),
    "PELVIS": ("816092008", "Pelvis"),
    "ANKLE": ("70258002", "Ankle joint"),
    "HAND": ("85562004", "Hand"),
    "KNEE": ("72696002", "Knee"),
    "BREAST": ("76752008", "Breast"),
}
UNKNOWN_ANATOMY = ("38266002", "Entire body")
#: View Codes (CID 4010, SCT) for the View Positions we use.
VIEW_CODES = {
    "PA": ("272479007", "postero-anterior"),
    "AP": ("399348003", "antero-posterior"),
    "LL": ("399173006", "left lateral"),
}
#: (View Position, Patient Orientation) cycling per instance for non-mammography views.
VIEWS = {"CHEST": (("PA", ("L", "F")), ("LL", ("A", "F")))}
DEFAULT_VIEWS = (("AP", ("L", "F")), ("LL", ("A", "F")))
#: Mammography views in screening order: (laterality, view position, SCT code, meaning).
MG_VIEWS = (
    ("R", "CC", "399162004", "cranio-caudal"),
    ("L", "CC", "399162004", "cranio-caudal"),
    ("R", "MLO", "399368009", "medio-lateral oblique"),
    ("L", "MLO", "399368009", "medio-lateral oblique"),
)


def _view(ctx: StudyContext, slot: ImageSlot) -> tuple[str, tuple[str, str]]:
    views = VIEWS.get(ctx.body_part, DEFAULT_VIEWS)
    return views[slot.index % len(views)]


def _radiograph_pixels(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    attenuation = projection(slot.rows, slot.cols, slot.position, ctx.seed, slot.key(ctx))
    # MONOCHROME2: more attenuation (bone) shows brighter, as readers expect.
    set_pixels(ds, to_unsigned(attenuation, 0.0, 1.0, BITS), bits_stored=BITS)
    set_window(ds, 2**BITS / 2, 2**BITS, "FULL RANGE")


def add_cr(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    """CR Series + CR Image modules (C.8.1.1, C.8.1.2)."""
    view_position, orientation = _view(ctx, slot)
    ds.ViewPosition = view_position
    ds.PatientOrientation = list(orientation)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    _radiograph_pixels(ds, ctx, slot)
    ds.KVP = "110"
    ds.DistanceSourceToDetector = "1800"
    ds.ExposureTime = "10"
    ds.XRayTubeCurrent = "250"
    ds.ImagerPixelSpacing = [f"{DETECTOR_PIXEL_MM:g}", f"{DETECTOR_PIXEL_MM:g}"]
    ds.PlateID = f"PLATE{slot.instance_number:02d}"


def _dx_family(ds: Dataset, ctx: StudyContext, slot: ImageSlot, *, pixel_mm: float,
               laterality: str, orientation: tuple[str, str], view_position: str) -> None:
    """Modules MG and DX share: DX Series, DX Anatomy Imaged, DX Image, DX Detector,
    Acquisition Context and VOI LUT (required For Presentation)."""
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageLaterality = laterality
    # Type 1 in DX: an unknown body part (foreign worklist code) is coded "Entire body".
    region = ANATOMY.get(ctx.body_part, UNKNOWN_ANATOMY)
    ds.AnatomicRegionSequence = [code_item(region[0], "SCT", region[1])]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.PatientOrientation = list(orientation)
    ds.ViewPosition = view_position
    ds.DetectorType = "DIRECT"
    ds.DetectorConfiguration = "AREA"
    ds.DetectorID = "PSM-DET-1"
    ds.ImagerPixelSpacing = [f"{pixel_mm:g}", f"{pixel_mm:g}"]
    ds.PixelSpacing = [f"{pixel_mm:g}", f"{pixel_mm:g}"]
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "detector plane"
    ds.AcquisitionContextSequence = []
    ds.KVP = "28" if ctx.modality.upper() == "MG" else "110"
    ds.ExposureTime = "400" if ctx.modality.upper() == "MG" else "10"
    ds.XRayTubeCurrent = "100" if ctx.modality.upper() == "MG" else "250"


def add_dx(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    """Digital X-Ray Image IOD, For Presentation (A.26)."""
    view_position, orientation = _view(ctx, slot)
    _dx_family(ds, ctx, slot, pixel_mm=DETECTOR_PIXEL_MM,
               laterality="R" if ctx.body_part in {"ANKLE", "HAND", "KNEE"} else "U",
               orientation=orientation, view_position=view_position)
    code, meaning = VIEW_CODES[view_position]
    view = code_item(code, "SCT", meaning)
    view.ViewModifierCodeSequence = []
    ds.ViewCodeSequence = [view]
    ds.PositionerType = "COLUMN"
    _radiograph_pixels(ds, ctx, slot)
    ds.DistanceSourceToDetector = "1800"


def add_mg(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    """Digital Mammography X-Ray Image IOD, For Presentation (A.27)."""
    laterality, view_position, view_code, view_meaning = MG_VIEWS[slot.index % len(MG_VIEWS)]
    # Rows run from the nipple side towards the chest wall; columns head to foot.
    orientation = ("L" if laterality == "R" else "R", "F") if view_position == "CC" else (
        "A" if laterality == "R" else "P", "F")
    _dx_family(ds, ctx, slot, pixel_mm=MG_PIXEL_MM, laterality=laterality,
               orientation=orientation, view_position=view_position)
    ds.PositionerType = "MAMMOGRAPHIC"
    ds.OrganExposed = "BREAST"
    view = code_item(view_code, "SCT", view_meaning)
    view.ViewModifierCodeSequence = []
    ds.ViewCodeSequence = [view]
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    source_to_detector, source_to_patient = 660.0, 620.0
    ds.DistanceSourceToDetector = f"{source_to_detector:g}"
    ds.DistanceSourceToPatient = f"{source_to_patient:g}"
    ds.EstimatedRadiographicMagnificationFactor = f"{source_to_detector / source_to_patient:.6f}"
    ds.BodyPartThickness = "45"
    ds.CompressionForce = "110"
    ds.PositionerPrimaryAngle = "0" if view_position == "CC" else "45"
    tissue = breast(slot.rows, slot.cols, slot.position, ctx.seed, slot.key(ctx),
                    right=laterality == "R")
    set_pixels(ds, to_unsigned(tissue, 0.0, 1.0, BITS), bits_stored=BITS)
    set_window(ds, 2**BITS / 2, 2**BITS, "FULL RANGE")


PROJECTION_IODS = {
    "CR": (ComputedRadiographyImageStorage, add_cr),
    "DX": (DigitalXRayImageStorageForPresentation, add_dx),
    "MG": (DigitalMammographyXRayImageStorageForPresentation, add_mg),
}

__all__ = ["PROJECTION_IODS", "add_cr", "add_dx", "add_mg"]
