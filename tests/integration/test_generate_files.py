"""Files written by ``pacsim generate study`` work with real tools.

Why: the command exists so users can hand pacsim's images to storescu, validators and
vendors' import tools, so the proof is those tools: dicom3tools' dciodvfy reports no
error on any file of any modality (in every writable transfer syntax), DCMTK's dcmdump
reads the chosen transfer syntax from the File Meta Information, and storescu sends
the whole directory into pacsim's built-in archive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
)

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.cli import main
from simulators.peers.dcmtk import dcmtk_argv
from simulators.world.export import MODALITIES, export_study
from tests.helpers import require_tool
from tests.integration.test_iod_validation import _check_all

ROOT = Path(__file__).resolve().parents[2]
#: What dcmdump prints for each UID: its "# Used TransferSyntax:" line, and its name
#: of the UID in (0002,0010).
DCMDUMP_NAMES = {
    ExplicitVRLittleEndian: ("Little Endian Explicit", "LittleEndianExplicit"),
    ImplicitVRLittleEndian: ("Little Endian Implicit", "LittleEndianImplicit"),
    DeflatedExplicitVRLittleEndian: ("Deflated Explicit VR Little Endian",
                                     "DeflatedLittleEndianExplicit"),
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool (resolved by absolute path: pynetdicom's apps shadow it)."""
    return subprocess.run(dcmtk_argv(args), capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.dciodvfy
@pytest.mark.parametrize("modality", MODALITIES)
def test_every_file_of_every_modality_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               modality: str) -> None:
    require_tool("dciodvfy")
    # Four images: every MG view and both CR/DX projections are among them.
    assert main(["generate", "study", "--modality", modality, "--count-images", "4",
                 "--out", str(tmp_path / "out"), "--seed", "3"]) == 0
    _check_all(sorted((tmp_path / "out").iterdir()), modality)


@pytest.mark.dciodvfy
def test_implicit_vr_files_are_valid(tmp_path: Path) -> None:
    require_tool("dciodvfy")
    study = export_study("US", 2, tmp_path, seed=4, transfer_syntax=str(ImplicitVRLittleEndian))
    _check_all(list(study.files), "US")


@pytest.mark.dcmtk
@pytest.mark.dciodvfy
def test_deflated_files_inflate_to_valid_objects(tmp_path: Path) -> None:
    """dciodvfy cannot read Deflated files itself ("Tag read failed"), so DCMTK inflates
    them first: that proves the deflate stream is what a real reader expects, and the
    content inside it is as valid as the other syntaxes."""
    require_tool("dciodvfy", "dcmconv")
    study = export_study("MR", 2, tmp_path / "deflated", seed=4,
                         transfer_syntax=str(DeflatedExplicitVRLittleEndian))
    inflated = []
    for path in study.files:
        target = tmp_path / f"inflated-{path.name}"
        result = _run("dcmconv", "+te", str(path), str(target))
        assert result.returncode == 0, result.stderr
        inflated.append(target)
    _check_all(inflated, "MR")


@pytest.mark.dcmtk
@pytest.mark.parametrize("syntax", list(DCMDUMP_NAMES))
def test_dcmdump_shows_the_chosen_transfer_syntax(tmp_path: Path, syntax: str) -> None:
    require_tool("dcmdump")
    study = export_study("CT", 1, tmp_path, seed=5, transfer_syntax=str(syntax))
    result = _run("dcmdump", str(study.files[0]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    used = [line for line in lines if line.startswith("# Used TransferSyntax:")]
    # The meta header is always Explicit VR LE; the dataset's line is the chosen one.
    printed, name = DCMDUMP_NAMES[syntax]
    assert used[-1] == f"# Used TransferSyntax: {printed}", used
    assert any(line.startswith(f"(0002,0010) UI ={name} ") for line in lines), lines[:12]


@pytest.mark.dcmtk
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_storescu_sends_the_directory_into_the_archive(tmp_path: Path, syntax: str) -> None:
    """The real entry point writes, storescu scans the directory and the archive holds
    every instance under the printed study UID and patient."""
    require_tool("storescu")
    out = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    made = subprocess.run([sys.executable, "-m", "simulators.cli", "generate", "study",
                           "--modality", "DX", "--count-images", "3", "--out", str(out),
                           "--seed", "6", "--transfer-syntax", str(syntax)],
                          capture_output=True, text=True, timeout=120, check=False, env=env,
                          cwd=ROOT)
    assert made.returncode == 0, made.stderr
    [line] = made.stdout.splitlines()
    first = dcmread(out / "IM000001.dcm")
    assert first.StudyInstanceUID in line and first.PatientID in line
    with Archive(ArchiveConfig(storage_dir=tmp_path / "arc")) as archive:
        sent = _run("storescu", "+sd", "-aec", archive.config.ae_title, "127.0.0.1",
                    str(archive.port), str(out))
        assert sent.returncode == 0, sent.stdout + sent.stderr
        stats = archive.store.stats()
        assert (stats["studies"], stats["instances"]) == (1, 3)
        held = archive.store.instances(sop_uids=[first.SOPInstanceUID])
        assert len(held) == 1 and dcmread(held[0].path).PatientID == first.PatientID
