"""The store's directory is self-contained: moved, copied or opened by a relative path,
it still serves every instance it lists (issue 13).

Each test fills a store over a real association (or with the legacy seeder), moves
the directory, and retrieves over a real association again: what C-FIND lists, C-GET
and C-MOVE must deliver.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest
from pydicom.dataset import Dataset

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.qrscu import QrClient
from simulators.dicom.store import DicomStore
from simulators.legacy.seed import seed_archive
from tests.unit.test_store import make_image

STUDY = "1.2.826.0.1.3680043.10.13.1"


def _peer(archive: Archive) -> AeAddress:
    return AeAddress(ae_title=archive.config.ae_title, host="127.0.0.1", port=archive.port)


def _study(count: int = 4) -> list[Dataset]:
    return [make_image(study_uid=STUDY, series_uid=f"{STUDY}.1", instance_number=n, fill=n)
            for n in range(1, count + 1)]


def _sop_classes(archive: Archive) -> list[str]:
    return sorted({item.sop_class_uid for item in archive.store.instances()})


def test_a_moved_store_still_serves_and_accepts_resends(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images = _study()
    first = tmp_path / "first"
    with Archive(ArchiveConfig(storage_dir=first)) as archive:
        assert QrClient(_peer(archive), "LOADER").store(images) == [0] * len(images)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    with Archive(ArchiveConfig(name="dest", ae_title="DEST", storage_dir=tmp_path / "dest")) \
            as dest:
        caplog.clear()
        with caplog.at_level(logging.WARNING), \
                Archive(ArchiveConfig(storage_dir=moved,
                                      destinations={"DEST": ("127.0.0.1", dest.port)})) as archive:
            assert not [r for r in caplog.records if "UNIQUE" in r.getMessage()]
            assert not [r for r in caplog.records if "reconcile" in r.getMessage()]
            client = QrClient(_peer(archive), "MIGRATOR")
            got = client.get({"StudyInstanceUID": STUDY}, _sop_classes(archive), keep=True)
            assert got.ok and got.received == len(images) == len(got.instances)
            assert client.move({"StudyInstanceUID": STUDY}, "DEST").completed == len(images)
            # an acknowledged, identical object sent again is a duplicate success
            assert client.store(images[:1]) == [0]
            assert archive.store.stats()["instances"] == len(images)
        assert dest.store.stats()["instances"] == len(images)


def test_a_copied_legacy_archive_is_served_from_the_copy(tmp_path: Path) -> None:
    seeded = tmp_path / "a"
    summary = seed_archive(seeded, studies=4, years=1, dirt="typical", seed=3, workers=1)
    copy = tmp_path / "b"
    shutil.copytree(seeded, copy)
    shutil.rmtree(seeded)  # the copy must not lean on the original's files
    with Archive(ArchiveConfig(name="legacy", ae_title="LEGACY_PACS", storage_dir=copy)) as legacy:
        client = QrClient(_peer(legacy), "MIGRATOR")
        received = 0
        for study_uid in legacy.store.study_uids():
            got = client.get({"StudyInstanceUID": study_uid}, _sop_classes(legacy))
            assert got.ok, got.summary()
            received += got.received
        assert received == summary.instances


def test_a_store_opened_by_a_relative_path_serves_after_a_chdir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = _study(2)
    monkeypatch.chdir(tmp_path)
    with Archive(ArchiveConfig(storage_dir=Path("rel-store"))) as archive:
        assert QrClient(_peer(archive), "LOADER").store(images) == [0, 0]
    (tmp_path / "other").mkdir()
    shutil.move(str(tmp_path / "rel-store"), str(tmp_path / "other" / "rel-store"))
    monkeypatch.chdir(tmp_path / "other")
    with Archive(ArchiveConfig(storage_dir=Path("rel-store"))) as archive:
        monkeypatch.chdir(tmp_path)  # a later chdir must not break reads either
        got = QrClient(_peer(archive), "MIGRATOR").get({"StudyInstanceUID": STUDY},
                                                       _sop_classes(archive))
        assert got.ok and got.received == 2


def test_an_index_with_absolute_paths_is_migrated_on_open(tmp_path: Path) -> None:
    """An index written before paths were relative (absolute rows, here of the store's
    old place) is rewritten on open, and every row resolves under the new root."""
    old = tmp_path / "old"
    store = DicomStore(old)
    for ds in _study(2):
        assert store.put(ds, transfer_syntax=str(ds.file_meta.TransferSyntaxUID)).ok
    store.close()
    with sqlite3.connect(old / "index.sqlite") as conn:  # the pre-fix row format
        conn.execute("UPDATE instances SET path = ? || '/' || path", (str(old),))
        conn.execute("DELETE FROM store_meta WHERE key = 'paths'")
    assert os.path.isabs(_paths(old)[0])
    new = tmp_path / "new"
    shutil.move(str(old), str(new))
    store = DicomStore(new)
    try:
        held = store.instances(STUDY)
        assert len(held) == 2 and all(item.path.is_file() for item in held)
        assert all(item.path.is_relative_to(new) for item in held)
    finally:
        store.close()
    assert all(path.startswith("objects/") for path in _paths(new))


def _paths(root: Path) -> list[str]:
    with sqlite3.connect(root / "index.sqlite") as conn:
        return [row[0] for row in conn.execute("SELECT path FROM instances")]
