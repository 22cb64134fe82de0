"""Startup reconcile never indexes what it cannot read (issue 13).

A truncated or unreadable file in ``objects/`` used to be indexed with empty UIDs, so
a phantom study (empty Study Instance UID and Patient ID) answered every STUDY-level
C-FIND. Such files are moved aside into ``quarantine/`` and counted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.qrscu import QrClient
from simulators.dicom.store import DicomStore
from tests.unit.test_store import make_image


def test_unreadable_object_files_are_quarantined_not_indexed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "arc"
    store = DicomStore(root)
    good = make_image(accession="GOOD")
    assert store.put(good, transfer_syntax=str(good.file_meta.TransferSyntaxUID)).ok
    store.close()
    whole = tmp_path / "whole.dcm"
    make_image(accession="CUT").save_as(whole, enforce_file_format=True)
    data = whole.read_bytes()
    # the data set starts after the preamble, DICM and the file meta group, whose
    # (0002,0000) group length element (12 bytes) says how long the rest of it is
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")
    truncated = root / "objects" / "1.2.3" / "1.2.3.4" / "1.2.3.4.5.dcm"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(data[:meta_end + 10])  # the file meta and a torn first element
    empty = root / "objects" / "1.2.3" / "1.2.3.4" / "1.2.3.4.6.dcm"
    empty.write_bytes(b"")
    caplog.clear()
    with caplog.at_level(logging.WARNING), Archive(ArchiveConfig(storage_dir=root)) as archive:
        status, matches = QrClient(
            AeAddress(ae_title=archive.config.ae_title, host="127.0.0.1", port=archive.port),
            "FINDER").find("STUDY", {"StudyInstanceUID": "", "PatientID": "",
                                     "AccessionNumber": ""})
        assert status == 0x0000
        assert [str(m.AccessionNumber) for m in matches] == ["GOOD"]
        assert archive.store.quarantined == 2
        assert archive.store.stats()["instances"] == 1
    assert not truncated.exists() and not empty.exists()
    assert sorted(p.name for p in (root / "quarantine").rglob("*.dcm")) == [
        "1.2.3.4.5.dcm", "1.2.3.4.6.dcm"]
    warned = [r.getMessage() for r in caplog.records if "quarantine" in r.getMessage()]
    assert len(warned) == 2 and all("1.2.3.4." in line for line in warned)
    reopened = DicomStore(root)  # quarantined files are not looked at again
    try:
        assert reopened.quarantined == 0 and reopened.stats()["instances"] == 1
    finally:
        reopened.close()
