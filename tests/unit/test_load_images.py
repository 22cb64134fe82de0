"""The load generator's image bytes: patched templates equal real builds, byte for byte.

``StudyImages.study`` (build every image with the world's builders) is the reference;
``StudyImages.encoded`` must send exactly what encoding those datasets gives, for every
modality, for ASCII and UTF-8 patients, scheduled and unscheduled studies, several
series, and studies whose per-image values depend on the patient (views by body part).
"""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from simulators.dicom.fast.files import encode_dataset
from simulators.dicom.fast.requests import mpps_final
from simulators.errors import WorldError
from simulators.load.image_bytes import HeaderLayout, element_spans, live_element
from simulators.load.images import MAX_TEMPLATES, PIXEL_DATA, StudyImages
from simulators.load.profile import Images
from simulators.world.context import StudyContext
from simulators.world.images import IODS
from simulators.world.world import World
from tests.helpers import require_tool

SHAPE = Images(series=2, per_series=4, rows=32, cols=24)


def contexts(world: World, modality: str, count: int) -> list[StudyContext]:
    """Unscheduled and scheduled studies of different patients (some UTF-8)."""
    found = []
    for index in range(count):
        patient = world.patient(100 + index)
        if index % 2:
            order = world.order(patient, modality, station_ae="MOD1", station_name="MOD1",
                                index=100 + index)
            found.append(StudyContext.from_order(order, world))
        else:
            found.append(StudyContext.unscheduled(patient, world, modality, station_name="MOD1",
                                                  index=100 + index))
    return found


def reference_bytes(images: StudyImages, ctx: StudyContext, shape: Images) -> list[bytes]:
    """Encode ``study()``'s datasets: header, then the full-size Pixel Data element."""
    encoded = []
    for ds in images.study(ctx, shape):
        header = Dataset({tag: ds[tag] for tag in ds.keys() if tag != PIXEL_DATA})
        pixels = Dataset()
        pixels[PIXEL_DATA] = ds[PIXEL_DATA]
        encoded.append(encode_dataset(header, ExplicitVRLittleEndian)
                       + encode_dataset(pixels, ExplicitVRLittleEndian))
    return encoded


@pytest.mark.parametrize("modality", sorted(IODS))
def test_encoded_images_equal_real_builds_byte_for_byte(modality: str) -> None:
    world = World(seed=21, non_ascii=0.3)
    studies = contexts(world, modality, 5)
    images = StudyImages()
    for ctx in studies:
        fast = list(images.encoded(ctx, SHAPE))
        assert [image.data for image in fast] == reference_bytes(images, ctx, SHAPE)
        uids = [image.sop_instance for image in fast]
        assert len(set(uids)) == SHAPE.series * SHAPE.per_series
        assert uids[-1] == ctx.instance_uid(SHAPE.series, SHAPE.per_series)
    assert images.fast_studies == len(studies) and images.slow_studies == 0
    assert {ctx.charset for ctx in studies} == {None, "ISO_IR 192"}  # both kinds of names


def test_decoded_image_matches_the_pydicom_build_and_identity() -> None:
    world = World(seed=22, non_ascii=1.0)
    ctx = contexts(world, "CT", 2)[1]  # scheduled, UTF-8 patient
    images = StudyImages()
    fast = list(images.encoded(ctx, SHAPE))
    built = list(images.study(ctx, SHAPE))
    for image, ds in zip(fast, built):
        decoded = pydicom.dcmread(BytesIO(image.data), force=True)
        decoded.file_meta = ds.file_meta
        assert decoded == ds
        assert decoded.PatientName == ctx.patient_name and ctx.charset == "ISO_IR 192"
        assert decoded.StudyInstanceUID == ctx.study_uid
        assert decoded.SeriesInstanceUID == ctx.series_uid(int(decoded.SeriesNumber))
        assert decoded.SOPInstanceUID == image.sop_instance
        assert decoded.Rows == SHAPE.rows and len(decoded.PixelData) == 32 * 24 * 2


def test_patient_dependent_views_get_their_own_template() -> None:
    """CR/DX views follow the body part: another study's template must not be used."""
    world = World(seed=23)
    images = StudyImages()
    studies = contexts(world, "DX", 8)
    assert len({ctx.body_part for ctx in studies}) > 1
    for ctx in studies:
        assert [image.data for image in images.encoded(ctx, SHAPE)] == \
            reference_bytes(images, ctx, SHAPE)
    kept = images._slots[("DX", None, 2, 4, 32, 24)]
    assert 1 < len(kept) <= MAX_TEMPLATES
    assert images.slow_studies == 0


def test_prepare_records_templates_used_by_later_studies() -> None:
    world = World(seed=24)
    first, second = contexts(world, "MR", 2)
    images = StudyImages()
    assert images.prepare(first, SHAPE)
    recorded = images._slots[("MR", first.charset, 2, 4, 32, 24)][0]
    list(images.encoded(second, SHAPE))
    assert images._slots[("MR", second.charset, 2, 4, 32, 24)][0] is recorded or \
        first.charset != second.charset


def test_one_image_series_and_bad_sizes() -> None:
    world = World(seed=25)
    ctx = contexts(world, "US", 1)[0]
    images = StudyImages()
    shape = Images(series=3, per_series=1, rows=16, cols=16)
    assert [i.data for i in images.encoded(ctx, shape)] == reference_bytes(images, ctx, shape)
    with pytest.raises(WorldError, match="size"):  # the profile's limits, bypassed here
        next(images.encoded(ctx, Images.model_construct(series=1, per_series=1, rows=8,
                                                        cols=5000)))


def test_reference_feeds_the_mpps_performed_series() -> None:
    world = World(seed=26)
    ctx = contexts(world, "CT", 2)[1]
    fast = list(StudyImages().encoded(ctx, SHAPE))
    final = mpps_final(ctx, [image.reference() for image in fast], "COMPLETED", "MOD1",
                       ctx.performed_step_start, None)
    series = final.PerformedSeriesSequence
    assert [item.SeriesInstanceUID for item in series] == [ctx.series_uid(1), ctx.series_uid(2)]
    listed = [ref.ReferencedSOPInstanceUID for item in series
              for ref in item.ReferencedImageSequence]
    assert listed == [image.sop_instance for image in fast]


def test_element_spans_split_nested_sequences_exactly() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    inner = Dataset()
    inner.CodeValue = "A1"
    inner.CodingSchemeDesignator = "99X"
    item = Dataset()
    item.AccessionNumber = "ACC1"
    item.RequestedProcedureCodeSequence = Sequence([inner])
    ds.RequestAttributesSequence = Sequence([item, Dataset()])
    ds.InstanceNumber = 7
    ds.SeriesDescription = "odd"
    encoded = encode_dataset(ds, ExplicitVRLittleEndian)
    spans = element_spans(encoded)
    assert list(spans) == sorted(ds.keys())
    assert b"".join(spans.values()) == encoded
    with pytest.raises(ValueError):
        element_spans(encoded[:-3])


def test_layout_patches_only_the_varying_elements() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    ds.PatientID = "P1"
    ds.InstanceNumber = 1
    spans = element_spans(encode_dataset(ds, ExplicitVRLittleEndian))
    layout = HeaderLayout.cut(spans, frozenset({0x00200013}))
    patched = Dataset()
    patched.InstanceNumber = 12
    recorded = element_spans(encode_dataset(patched, ExplicitVRLittleEndian))
    ds.InstanceNumber = 12
    world = World(seed=1)
    ctx = contexts(world, "CT", 1)[0]
    assert b"".join(layout.assemble(ctx, 1, 1, recorded)) == \
        encode_dataset(ds, ExplicitVRLittleEndian)
    uid = live_element(0x00080018, ctx, 1, 2)
    assert uid[4:6] == b"UI" and len(uid) % 2 == 0
    assert uid[8:].rstrip(b"\x00").decode() == ctx.instance_uid(1, 2)


@pytest.mark.dciodvfy
def test_sent_bytes_pass_dciodvfy(tmp_path: Path) -> None:
    require_tool("dciodvfy")
    world = World(seed=27, non_ascii=1.0)
    images = StudyImages()
    for modality in sorted(IODS):
        ctx = contexts(world, modality, 2)[1]
        image = list(images.encoded(ctx, Images(series=1, per_series=3, rows=64, cols=64)))[-1]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = image.sop_class
        meta.MediaStorageSOPInstanceUID = image.sop_instance
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.9"
        out = DicomBytesIO()
        out.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(out, meta)
        path = tmp_path / f"{modality}.dcm"
        path.write_bytes(out.getvalue() + image.data)
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                                timeout=60, check=False)
        errors = [line for line in (result.stdout + result.stderr).splitlines()
                  if line.startswith("Error")]
        assert errors == [], f"{modality}: {errors}"
