"""Study builder: IOD-conformant CT, MR, CR, DX, MG and US images from a StudyContext.

The common modules (Patient, General Study, Patient Study, General Series, General
Equipment, General Image, SOP Common and the request/performed-step attributes) are
written here once, from the context only, so every image of a study shares identity
exactly. Each modality module adds its own IOD modules and pixels (iod_sections,
iod_projection, iod_ultrasound). Every output is checked by dciodvfy in the tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from simulators.errors import WorldError
from simulators.world.context import StudyContext
from simulators.world.iod_common import (
    PAIRED_BODY_PARTS, ImageSlot, code_item, dicom_date, dicom_time,
)
from simulators.world.iod_projection import PROJECTION_IODS
from simulators.world.iod_sections import SECTION_IODS
from simulators.world.iod_ultrasound import ULTRASOUND_IODS, add_us_color

ModuleBuilder = Callable[[Dataset, StudyContext, ImageSlot], None]

#: modality -> (SOP Class UID, function adding the modality's modules and pixels)
IODS: dict[str, tuple[str, ModuleBuilder]] = {
    **SECTION_IODS, **PROJECTION_IODS, **ULTRASOUND_IODS,
}
#: Colour variants (RGB): only ultrasound burns colour into its images.
COLOR_BUILDERS: dict[str, ModuleBuilder] = {"US": add_us_color}
MANUFACTURER = "PACSIM"
SOFTWARE_VERSION = "pacsim 0.1"
IMPLEMENTATION_VERSION_NAME = "PACSIM_01"
MAX_SIDE = 4096
#: Bounded so a scenario typo cannot ask for millions of objects in memory.
MAX_IMAGES = 10_000


def build_study(ctx: StudyContext, *, series: int = 1, per_series: int = 2, rows: int = 64,
                cols: int = 64, color: bool = False) -> list[FileDataset]:
    """All images of one performed study, ready to send or save.

    Deterministic: the same context and sizes give byte-identical datasets.
    ``color=True`` gives RGB ultrasound; other modalities are grey scale only.
    """
    return list(iter_study(ctx, series=series, per_series=per_series, rows=rows, cols=cols,
                           color=color))


def iter_study(ctx: StudyContext, *, series: int = 1, per_series: int = 2, rows: int = 64,
               cols: int = 64, color: bool = False) -> Iterator[FileDataset]:
    """Like build_study, one image at a time: load tests can stream thousands of
    512x512 images without holding them all in memory. Arguments are checked before
    the first image is made, so a bad request fails at once."""
    modality = ctx.modality.upper()
    if modality not in IODS:
        raise WorldError("no image builder for this modality", modality=ctx.modality,
                         supported=",".join(IODS))
    if series < 1 or per_series < 1 or series * per_series > MAX_IMAGES:
        raise WorldError("series and per_series must be >= 1 and within the image limit",
                         series=series, per_series=per_series, limit=MAX_IMAGES)
    if not (8 <= rows <= MAX_SIDE and 8 <= cols <= MAX_SIDE):
        raise WorldError("image size out of range", rows=rows, cols=cols, maximum=MAX_SIDE)
    sop_class, add_modality = IODS[modality]
    if color:
        if modality not in COLOR_BUILDERS:
            raise WorldError("colour images exist only for ultrasound", modality=modality)
        add_modality = COLOR_BUILDERS[modality]
    return _images(ctx, series, per_series, rows, cols, sop_class, add_modality)


def _images(ctx: StudyContext, series: int, per_series: int, rows: int, cols: int,
            sop_class: str, add_modality: ModuleBuilder) -> Iterator[FileDataset]:
    for series_number in range(1, series + 1):
        for instance_number in range(1, per_series + 1):
            slot = ImageSlot(series_number, instance_number, per_series, rows, cols,
                             image_moment(ctx, series_number, instance_number))
            yield build_image(ctx, slot, sop_class, add_modality)


def image_moment(ctx: StudyContext, series_number: int, instance_number: int) -> dt.datetime:
    """When image (series, instance) was acquired: one minute per series, one second per
    image after the performed step's start. Public because the load generator patches
    these times into pre-encoded headers and must stamp exactly what a build would."""
    return ctx.performed_step_start + dt.timedelta(minutes=series_number - 1,
                                                   seconds=instance_number - 1)


def write_study(datasets: Iterable[FileDataset], directory: str | Path) -> list[Path]:
    """Save datasets as DICOM Part 10 files named by SOP Instance UID; return the paths."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = target / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def build_image(ctx: StudyContext, slot: ImageSlot, sop_class: str,
                add_modality: ModuleBuilder) -> FileDataset:
    """One image of the study in ``slot`` (the load generator builds single slots)."""
    sop_instance = ctx.instance_uid(slot.series_number, slot.instance_number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = f"{ctx.uid_root}1.1"
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    _sop_common(ds, ctx, sop_class, sop_instance)
    _patient(ds, ctx)
    _study(ds, ctx)
    _series(ds, ctx, slot)
    _equipment(ds, ctx)
    _general_image(ds, slot)
    add_modality(ds, ctx, slot)
    if "ImageLaterality" in ds and "Laterality" in ds:
        del ds.Laterality  # Type 2C: only when Image Laterality is absent (C.7.3.1)
    return ds


def _sop_common(ds: Dataset, ctx: StudyContext, sop_class: str, sop_instance: str) -> None:
    if ctx.charset:
        ds.SpecificCharacterSet = ctx.charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.InstanceCreationDate = dicom_date(ctx.performed_step_start)
    ds.InstanceCreationTime = dicom_time(ctx.performed_step_start)


def _patient(ds: Dataset, ctx: StudyContext) -> None:
    ds.PatientName = ctx.patient_name
    ds.PatientID = ctx.patient_id
    ds.IssuerOfPatientID = ctx.issuer
    ds.PatientBirthDate = ctx.birth_date
    ds.PatientSex = ctx.sex
    age = _age(ctx.birth_date, ctx.performed_step_start.date())
    if age is not None:
        ds.PatientAge = age


def _study(ds: Dataset, ctx: StudyContext) -> None:
    ds.StudyInstanceUID = ctx.study_uid
    ds.StudyDate = dicom_date(ctx.performed_step_start)
    ds.StudyTime = dicom_time(ctx.performed_step_start)
    ds.ReferringPhysicianName = ctx.referring_physician
    ds.StudyID = ctx.study_id
    ds.AccessionNumber = ctx.accession
    ds.StudyDescription = ctx.study_description
    if ctx.requested_procedure_code is not None:
        code = ctx.requested_procedure_code
        ds.ProcedureCodeSequence = [code_item(code.value, code.scheme, code.meaning)]


def _series(ds: Dataset, ctx: StudyContext, slot: ImageSlot) -> None:
    series_start = ctx.performed_step_start + dt.timedelta(minutes=slot.series_number - 1)
    ds.Modality = ctx.modality.upper()
    ds.SeriesInstanceUID = ctx.series_uid(slot.series_number)
    ds.SeriesNumber = slot.series_number
    ds.SeriesDate = dicom_date(series_start)
    ds.SeriesTime = dicom_time(series_start)
    ds.SeriesDescription = f"{ctx.study_description or ctx.modality} S{slot.series_number}"[:64]
    ds.ProtocolName = (ctx.scheduled_step_description or ctx.study_description)[:64]
    ds.BodyPartExamined = ctx.body_part  # Type 2 in CR/DX series: present even if unknown
    # Laterality is Type 2C for paired body parts; when the body part is unknown it may
    # be paired, so send it empty. Removed again if the modality sends Image Laterality.
    if ctx.body_part in PAIRED_BODY_PARTS or not ctx.body_part:
        ds.Laterality = "R" if ctx.body_part else ""
    ds.PerformedProcedureStepID = ctx.performed_step_id
    ds.PerformedProcedureStepStartDate = dicom_date(ctx.performed_step_start)
    ds.PerformedProcedureStepStartTime = dicom_time(ctx.performed_step_start)
    ds.PerformedProcedureStepDescription = ctx.study_description
    if ctx.scheduled:
        ds.RequestAttributesSequence = [_request_attributes(ctx)]
    if ctx.mpps_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"  # MPPS SOP Class
        ref.ReferencedSOPInstanceUID = ctx.mpps_uid
        ds.ReferencedPerformedProcedureStepSequence = [ref]


def _request_attributes(ctx: StudyContext) -> Dataset:
    """Request Attributes Sequence item: links the images to the order (IHE SWF)."""
    item = Dataset()
    item.RequestedProcedureID = ctx.requested_procedure_id
    item.AccessionNumber = ctx.accession
    item.StudyInstanceUID = ctx.study_uid
    item.RequestedProcedureDescription = ctx.requested_procedure_description
    if ctx.requested_procedure_code is not None:
        code = ctx.requested_procedure_code
        item.RequestedProcedureCodeSequence = [code_item(code.value, code.scheme,
                                                         code.meaning)]
    item.ScheduledProcedureStepID = ctx.scheduled_step_id
    item.ScheduledProcedureStepDescription = ctx.scheduled_step_description
    return item


def _equipment(ds: Dataset, ctx: StudyContext) -> None:
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = ctx.institution
    ds.StationName = ctx.station_name
    ds.ManufacturerModelName = f"PACSIM {ctx.modality.upper()}"
    ds.DeviceSerialNumber = "PSM-0001"
    ds.SoftwareVersions = SOFTWARE_VERSION


def _general_image(ds: Dataset, slot: ImageSlot) -> None:
    ds.InstanceNumber = slot.instance_number
    ds.ContentDate = dicom_date(slot.moment)
    ds.ContentTime = dicom_time(slot.moment)
    ds.AcquisitionDate = dicom_date(slot.moment)
    ds.AcquisitionTime = dicom_time(slot.moment)
    ds.BurnedInAnnotation = "NO"


def _age(birth_date: str, on: dt.date) -> str | None:
    """Patient's Age (AS) at the study date, e.g. "045Y"; None if unknown."""
    try:
        born = dt.datetime.strptime(birth_date, "%Y%m%d").date()
    except ValueError:
        return None
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if years >= 2:
        return f"{min(years, 999):03d}Y"
    months = max(0, (on.year - born.year) * 12 + on.month - born.month - (on.day < born.day))
    return f"{months:03d}M"


__all__ = ["build_study", "iter_study", "write_study", "StudyContext", "IODS"]
