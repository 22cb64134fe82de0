"""The reference target refuses malformed UIDs; a legacy archive may keep them (issue 13).

A C-STORE whose Study, Series or SOP Instance UID (or SOP Class UID) is not a valid
UID (PS3.5 9.1: digits and dots, no empty or leading-zero component, at most 64
characters) is refused with 0xA900 and nothing is written; the archive keeps
serving. ``ArchiveConfig(lenient_uids=True)`` - what ``pacsim legacy serve`` and a
migration's directory source use - stores them as a legacy PACS would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.qrscu import QrClient
from tests.unit.test_store import make_image

BAD_UIDS = ("1.2.3/../..", "..", "1.2.abc.4", "1." + "2" * 70, "1.02.3")


@pytest.fixture(autouse=True)
def _no_pydicom_validation() -> Iterator[None]:
    """Let pydicom hold and encode the malformed values (a real modality's bugs)."""
    with pydicom_config.disable_value_validation():
        yield


def _peer(archive: Archive) -> AeAddress:
    return AeAddress(ae_title=archive.config.ae_title, host="127.0.0.1", port=archive.port)


def _with_bad(keyword: str, uid: str) -> Dataset:
    ds = make_image()
    setattr(ds, keyword, uid)
    if keyword == "SOPInstanceUID":
        ds.file_meta.MediaStorageSOPInstanceUID = uid
    return ds


def _files(root: Path) -> list[Path]:
    return [p for p in (root / "objects").rglob("*") if p.is_file()]


def _echo(archive: Archive) -> int:
    assoc = associate(make_ae(AeSettings(ae_title="ECHOSCU")), "127.0.0.1", archive.port,
                      archive.config.ae_title,
                      contexts=[build_context(Verification, ExplicitVRLittleEndian)])
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
@pytest.mark.parametrize("uid", BAD_UIDS)
def test_a_malformed_uid_is_refused_and_nothing_is_written(tmp_path: Path, keyword: str,
                                                           uid: str) -> None:
    with Archive(ArchiveConfig(storage_dir=tmp_path / "arc")) as archive:
        assert QrClient(_peer(archive), "MODALITY").store([_with_bad(keyword, uid)]) == [0xA900]
        assert archive.store.stats()["instances"] == 0
        assert _files(tmp_path / "arc") == []
        assert QrClient(_peer(archive), "MODALITY").store([make_image()]) == [0x0000]
        assert _echo(archive) == 0x0000


def test_a_lenient_legacy_archive_keeps_malformed_uids(tmp_path: Path) -> None:
    with Archive(ArchiveConfig(storage_dir=tmp_path / "arc", lenient_uids=True)) as archive:
        statuses = QrClient(_peer(archive), "MODALITY").store(
            [_with_bad("StudyInstanceUID", "1.02.3"), _with_bad("SeriesInstanceUID", "1.2.abc.4")])
        assert statuses == [0x0000, 0x0000]
        assert archive.store.stats()["instances"] == 2
