"""Image builders: identity consistency, worklist path, character sets, sizes, pixels."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.dsutils import decode, encode

from simulators.errors import WorldError
from simulators.world import (
    MODALITIES, StudyContext, World, build_study, is_valid_uid, iter_study, write_study,
)

START = dt.datetime(2026, 4, 1, 10, 0)


def _order(world: World, modality: str, index: int = 0, patient_index: int = 0):
    return world.order(world.patient(patient_index), modality, station_ae=f"{modality}_1",
                       station_name=f"{modality}ROOM1", index=index, start=START)


def _worklist_identifier(order, world: World) -> Dataset:
    """An MWL C-FIND response as a RIS sends it, round-tripped through the wire codec."""
    ds = Dataset()
    if order.patient.charset:
        ds.SpecificCharacterSet = order.patient.charset
    ds.PatientName = order.patient.dicom_name
    ds.PatientID = order.patient.patient_id
    ds.IssuerOfPatientID = order.patient.issuer
    ds.PatientBirthDate = order.patient.dicom_birth_date
    ds.PatientSex = order.patient.sex
    ds.AccessionNumber = order.accession
    ds.ReferringPhysicianName = order.referring_physician
    ds.StudyInstanceUID = order.study_uid
    ds.RequestedProcedureID = order.requested_procedure_id
    ds.RequestedProcedureDescription = order.procedure.meaning
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = order.procedure.code, order.procedure.scheme
    code.CodeMeaning = order.procedure.meaning
    ds.RequestedProcedureCodeSequence = [code]
    step = Dataset()
    step.Modality = order.step.modality
    step.ScheduledStationAETitle = order.step.station_ae
    step.ScheduledStationName = order.step.station_name
    step.ScheduledProcedureStepStartDate = order.step.start.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = order.step.start.strftime("%H%M%S")
    step.ScheduledProcedureStepID = order.step.step_id
    step.ScheduledProcedureStepDescription = order.step.description
    ds.ScheduledProcedureStepSequence = [step]
    wire = encode(ds, is_implicit_vr=False, is_little_endian=True)
    return decode(BytesIO(wire), is_implicit_vr=False, is_little_endian=True)


@pytest.mark.parametrize("modality", MODALITIES)
def test_images_share_identity_with_order_and_context(modality: str) -> None:
    world = World(seed=3, non_ascii=0.5)
    order = _order(world, modality, index=5, patient_index=5)
    ctx = StudyContext.from_order(order, world)
    images = build_study(ctx, series=2, per_series=3)
    assert len(images) == 6
    patient = order.patient
    for ds in images:
        assert str(ds.PatientName) == patient.dicom_name == ctx.patient_name
        assert ds.PatientID == patient.patient_id
        assert ds.IssuerOfPatientID == patient.issuer
        assert ds.PatientBirthDate == patient.dicom_birth_date
        assert ds.PatientSex == patient.sex
        assert ds.StudyInstanceUID == order.study_uid
        assert ds.AccessionNumber == order.accession
        assert ds.Modality == modality
        assert ds.StationName == order.step.station_name
        assert ds.BodyPartExamined == order.procedure.body_part
        assert ds.PerformedProcedureStepID == ctx.performed_step_id
        request = ds.RequestAttributesSequence[0]
        assert request.RequestedProcedureID == order.requested_procedure_id
        assert request.ScheduledProcedureStepID == order.step.step_id
        assert request.AccessionNumber == order.accession
        assert request.RequestedProcedureCodeSequence[0].CodeValue == order.procedure.code
        assert (ds.ReferencedPerformedProcedureStepSequence[0].ReferencedSOPInstanceUID
                == ctx.mpps_uid)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    uids = [ds.SOPInstanceUID for ds in images] + list({ds.SeriesInstanceUID for ds in images})
    assert len(set(uids)) == 8 and all(is_valid_uid(uid) for uid in uids)
    assert {ds.SeriesNumber for ds in images} == {1, 2}


@pytest.mark.parametrize("non_ascii", [0.0, 1.0])
def test_worklist_path_gives_the_same_identity_and_uids(non_ascii: float) -> None:
    world = World(seed=17, non_ascii=non_ascii)
    order = _order(world, "MR", index=2, patient_index=4)
    from_order = StudyContext.from_order(order, world)
    from_worklist = StudyContext.from_worklist(_worklist_identifier(order, world), world,
                                               station_name="MRROOM1")
    assert from_worklist.identity() == from_order.identity()
    assert from_worklist.performed_step_start == START
    assert from_worklist.mpps_uid == from_order.mpps_uid
    a, b = build_study(from_order), build_study(from_worklist)
    assert [ds.SOPInstanceUID for ds in a] == [ds.SOPInstanceUID for ds in b]
    assert [str(ds.PatientName) for ds in a] == [str(ds.PatientName) for ds in b]


def test_worklist_without_required_keys_is_a_world_error() -> None:
    world = World()
    incomplete = _worklist_identifier(_order(world, "CT"), world)
    del incomplete.StudyInstanceUID
    with pytest.raises(WorldError):
        StudyContext.from_worklist(incomplete, world)
    with pytest.raises(WorldError):
        StudyContext.from_worklist(Dataset(), world)


def test_non_ascii_names_round_trip_through_files(tmp_path: Path) -> None:
    world = World(seed=5, non_ascii=1.0)
    order = _order(world, "CT", index=1, patient_index=1)
    assert order.patient.charset == "ISO_IR 192"
    images = build_study(StudyContext.from_order(order, world), per_series=1)
    (path,) = write_study(images, tmp_path)
    raw = path.read_bytes()
    assert order.patient.family_name.encode("utf-8") in raw
    back = dcmread(path)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == order.patient.dicom_name
    assert back.PatientName.family_name == order.patient.family_name


def test_ascii_names_carry_no_charset() -> None:
    world = World(seed=5, non_ascii=0.0)
    (ds,) = build_study(StudyContext.from_order(_order(world, "CR"), world), per_series=1)
    assert "SpecificCharacterSet" not in ds


@pytest.mark.parametrize(("modality", "bits", "dtype"), [
    ("CT", 16, np.uint16), ("MR", 16, np.uint16), ("CR", 16, np.uint16),
    ("DX", 16, np.uint16), ("MG", 16, np.uint16), ("US", 8, np.uint8)])
def test_pixel_data_matches_header(modality: str, bits: int, dtype: type) -> None:
    world = World()
    (ds,) = build_study(StudyContext.from_order(_order(world, modality), world),
                        per_series=1, rows=48, cols=80)
    assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (48, 80, bits)
    assert len(ds.PixelData) == 48 * 80 * bits // 8
    pixels = ds.pixel_array
    assert pixels.shape == (48, 80) and pixels.dtype == dtype
    assert int(pixels.max()) <= 2**ds.BitsStored - 1
    assert int(pixels.max()) > int(pixels.min())  # a real image, not a constant


def test_full_size_512_ct_with_hounsfield_units() -> None:
    world = World()
    images = build_study(StudyContext.from_order(_order(world, "CT"), world), per_series=2,
                         rows=512, cols=512)
    ds = images[0]
    assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (512, 512, 16)
    assert len(ds.PixelData) == 512 * 512 * 2
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)

    def near(row: int, col: int) -> float:
        return float(np.median(hounsfield[row - 3:row + 4, col - 3:col + 4]))
    assert -1024 <= near(5, 5) <= -950                 # air outside the body
    assert -900 <= near(243, 158) <= -700              # left lung
    assert 600 <= near(363, 256) <= 800                # vertebra
    assert -20 <= near(256, 60) <= 100                 # soft tissue
    assert images[0].PixelData != images[1].PixelData
    assert images[0].ImagePositionPatient[2] != images[1].ImagePositionPatient[2]


def test_color_ultrasound_is_rgb_and_other_modalities_refuse_color() -> None:
    world = World()
    (ds,) = build_study(StudyContext.from_order(_order(world, "US"), world), per_series=1,
                        color=True)
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert ds.pixel_array.shape == (64, 64, 3)
    with pytest.raises(WorldError):
        build_study(StudyContext.from_order(_order(world, "CT"), world), color=True)


def test_mammography_cycles_four_views() -> None:
    world = World()
    images = build_study(StudyContext.from_order(_order(world, "MG"), world), per_series=4)
    views = [(ds.ImageLaterality, ds.ViewPosition) for ds in images]
    assert views == [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")]
    assert all("Laterality" not in ds for ds in images)


def test_builds_are_deterministic_and_seed_dependent() -> None:
    def study(seed: int) -> list:
        world = World(seed=seed)
        return build_study(StudyContext.from_order(_order(world, "DX"), world), per_series=2)
    first, again, other = study(1), study(1), study(2)
    assert [ds.SOPInstanceUID for ds in first] == [ds.SOPInstanceUID for ds in again]
    assert [ds.PixelData for ds in first] == [ds.PixelData for ds in again]
    assert first[0].SOPInstanceUID != other[0].SOPInstanceUID
    assert first[0].PixelData != other[0].PixelData


def test_repeat_attempt_is_a_new_performed_step_with_new_uids() -> None:
    world = World()
    order = _order(world, "CT")
    first = StudyContext.from_order(order, world)
    repeat = StudyContext.from_order(order, world, attempt=1)
    assert first.study_uid == repeat.study_uid
    assert first.performed_step_id != repeat.performed_step_id
    assert first.mpps_uid != repeat.mpps_uid
    assert build_study(first)[0].SOPInstanceUID != build_study(repeat)[0].SOPInstanceUID


def test_unscheduled_study_has_no_request_but_a_fresh_study_uid() -> None:
    world = World()
    patient = world.patient(2)
    one = StudyContext.unscheduled(patient, world, "CT", station_name="ER", index=1)
    two = StudyContext.unscheduled(patient, world, "CT", station_name="ER", index=2)
    assert one.study_uid != two.study_uid and is_valid_uid(one.study_uid)
    (ds,) = build_study(one, per_series=1)
    assert ds.AccessionNumber == "" and "RequestAttributesSequence" not in ds
    assert ds.PatientID == patient.patient_id and ds.StudyInstanceUID == one.study_uid


def test_write_study_names_files_by_sop_instance_uid(tmp_path: Path) -> None:
    world = World()
    images = build_study(StudyContext.from_order(_order(world, "US"), world), per_series=3)
    paths = write_study(images, tmp_path / "out")
    assert [p.name for p in paths] == [f"{ds.SOPInstanceUID}.dcm" for ds in images]
    back = dcmread(paths[0])
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.PixelData == images[0].PixelData


@pytest.mark.parametrize("kwargs", [{"series": 0}, {"per_series": 0}, {"rows": 4},
                                    {"cols": 5000}, {"series": 200, "per_series": 100}])
def test_bad_sizes_raise_world_error(kwargs: dict) -> None:
    world = World()
    with pytest.raises(WorldError):
        build_study(StudyContext.from_order(_order(world, "CT"), world), **kwargs)


def test_unknown_modality_context_raises_world_error() -> None:
    world = World()
    ctx = StudyContext.from_order(_order(world, "CT"), world)
    with pytest.raises(WorldError):
        build_study(replace(ctx, modality="XA"))


def test_iter_study_streams_the_same_images_and_checks_arguments_early() -> None:
    world = World()
    ctx = StudyContext.from_order(_order(world, "CT"), world)
    streamed = iter_study(ctx, series=2, per_series=3, rows=32, cols=32)
    first = next(streamed)
    assert first.SOPInstanceUID == build_study(ctx, series=2, per_series=3)[0].SOPInstanceUID
    assert len(list(streamed)) == 5
    with pytest.raises(WorldError):
        iter_study(ctx, rows=1)  # raised on the call, before iterating
