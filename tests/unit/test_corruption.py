"""The corruption harness's pure parts: which victim it picks, what its pixel changes do.

Why: the matrix test and the validator's report name the instance and series the
harness chose, so the choice must be the same on every target and every run; and
the pixel changes must be what their names promise (every value different for
``change_pixels``; a lossy, low-bit change under a new transfer syntax for
``recompress``) without touching the UIDs.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from simulators.errors import ConfigError
from tests.corruption import (
    RECOMPRESSED_SYNTAX, InstanceRef, drop_low_bit, invert_pixels, pick_instance, pick_series,
)


def image(values: np.ndarray, bits_stored: int = 12) -> Dataset:
    """A minimal 16-bit MONOCHROME2 image in explicit VR little endian."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = values.astype("<u2").tobytes()
    return ds


def test_pick_instance_takes_the_last_of_the_largest_series_whatever_the_order() -> None:
    refs = [InstanceRef("1.2.9", "1.9.1", 1, "a"), InstanceRef("1.2.5", "1.5.1", 1, "b"),
            InstanceRef("1.2.5", "1.5.3", 3, "c"), InstanceRef("1.2.5", "1.5.2", 2, "d"),
            InstanceRef("1.2.9", "1.9.2", 2, "e")]
    assert pick_instance(refs).sop_uid == "1.5.3"
    assert pick_instance(list(reversed(refs))).sop_uid == "1.5.3"
    # equal sizes: the lowest series UID; equal numbers: the highest SOP UID
    tied = [InstanceRef("1.2.9", "1.9.1", 1, "a"), InstanceRef("1.2.5", "1.5.1", 1, "b"),
            InstanceRef("1.2.5", "1.5.7", 1, "c"), InstanceRef("1.2.9", "1.9.2", 2, "d")]
    assert pick_instance(tied).sop_uid == "1.5.7"
    assert pick_series(refs) == "1.2.5"


def test_an_empty_study_is_a_config_error_naming_the_study() -> None:
    for pick in (pick_instance, pick_series):
        with pytest.raises(ConfigError) as raised:
            pick([])
        assert raised.value.context["field"] == "study_uid"


def test_invert_pixels_changes_every_value_within_bits_stored_and_keeps_the_length() -> None:
    values = np.arange(64, dtype=np.uint16).reshape(8, 8) * 60
    ds = image(values)
    uid, length = ds.SOPInstanceUID, len(ds.PixelData)
    invert_pixels(ds)
    after = np.frombuffer(ds.PixelData, dtype="<u2").reshape(8, 8)
    assert len(ds.PixelData) == length and ds.SOPInstanceUID == uid
    assert (after != values).all() and after.max() < 2 ** 12
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_drop_low_bit_is_lossy_rle_with_the_same_uids() -> None:
    values = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 37) % 4096
    ds = image(values)
    uid = ds.SOPInstanceUID
    assert drop_low_bit(ds) == RECOMPRESSED_SYNTAX == str(RLELossless)
    assert ds.file_meta.TransferSyntaxUID == RLELossless and ds.SOPInstanceUID == uid
    decoded = ds.pixel_array
    assert not np.array_equal(decoded, values)  # lossy: some values changed ...
    assert (np.abs(decoded.astype(int) - values) <= 1).all()  # ... by the low bit only
    assert (decoded % 2 == 0).all()


def test_drop_low_bit_refuses_when_nothing_would_change() -> None:
    with pytest.raises(ConfigError) as raised:
        drop_low_bit(image(np.full((4, 4), 8, dtype=np.uint16)))
    assert raised.value.context["field"] == "study_uid"
