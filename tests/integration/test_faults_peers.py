"""The catalogue against real third-party peers: Orthanc (no MPPS, no worklist: those
rows must say "not supported by target", never fail) and DCMTK wlmscpfs for the
worklist and association part. Prints both matrices (run with -s to see them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from simulators.dicom.worklist import build_worklist_item
from simulators.faults import matrix
from simulators.injection.model import CONFORMANT, ERROR, NOT_SUPPORTED
from simulators.faults.runner import run_against
from simulators.peers.dcmtk import dcmtk_server
from simulators.world.world import World
from tests.helpers import free_port, require_tool

WORKLIST_AE = "WLMSCP"


def _verdicts(outcomes) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {o.fault.id: o.verdict for o in outcomes}


@pytest.mark.orthanc
def test_orthanc_matrix_reports_mpps_as_not_supported() -> None:
    require_tool("Orthanc")
    outcomes = run_against("orthanc")
    print(matrix.render_text(outcomes, "orthanc"))
    verdicts = _verdicts(outcomes)
    assert not [i for i, v in verdicts.items() if v == ERROR], matrix.render_text(outcomes)
    assert all(v == NOT_SUPPORTED for i, v in verdicts.items() if i.startswith("mpps."))
    # What Orthanc does answer is read over the wire and judged:
    assert verdicts["store.sop-mismatch"] == CONFORMANT
    assert verdicts["assoc.unknown-called-ae"] == CONFORMANT
    assert verdicts["stgcmt.partial"] == CONFORMANT


def write_worklist(root: Path, count: int = 12) -> Path:
    """wlmscpfs's layout: DIR/<called AE>/*.wl plus the lockfile it insists on."""
    folder = root / WORKLIST_AE
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    world = World(11)
    start = dt.datetime.combine(dt.date.today(), dt.time(8, 0))
    for index in range(count):
        order = world.order(world.patient(index), "CT", station_ae="CT01", station_name="CT01",
                            index=index, start=start + dt.timedelta(minutes=15 * index))
        item = build_worklist_item(order)
        item.file_meta = FileMetaDataset()
        item.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        item.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
        item.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        item.save_as(folder / f"item{index:03d}.wl", enforce_file_format=True)
    return root


@pytest.mark.dcmtk
def test_wlmscpfs_worklist_and_association_matrix(tmp_path: Path) -> None:
    tools = require_tool("wlmscpfs")
    port = free_port()
    root = write_worklist(tmp_path)
    argv = [tools["wlmscpfs"], "-dfp", str(root), "--max-associations", "3", "-dhl"]
    with dcmtk_server(argv, port):
        outcomes = run_against(f"{WORKLIST_AE}@127.0.0.1:{port}", "assoc.,mwl.")
    print(matrix.render_text(outcomes, "wlmscpfs"))
    verdicts = _verdicts(outcomes)
    assert not [i for i, v in verdicts.items() if v == ERROR], matrix.render_text(outcomes)
    assert verdicts["mwl.broad-query"] == CONFORMANT
    assert verdicts["mwl.matching"] == CONFORMANT
    assert verdicts["mwl.wrong-identifier"] != NOT_SUPPORTED
