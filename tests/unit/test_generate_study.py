"""``pacsim generate study``: bad input exits 2 with one line, output is deterministic.

Why these checks: the command is a contract for users feeding files to other tools, so
refusals must be one readable line (exit 2) and never leave files behind, and the same
seed must reproduce the same study byte for byte (a test fixture that changes between
runs is useless for regression tests against a vendor's import).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from simulators.cli import main
from simulators.errors import ConfigError
from simulators.world.export import MAX_EXPORT_IMAGES, MODALITIES, export_study


def _generate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["generate", "study", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize(("args", "needle"), [
    (["--modality", "XR", "--count-images", "2"], "known: CT, MR, CR, DX, MG, US"),
    (["--modality", "CT", "--count-images", "0"], f"between 1 and {MAX_EXPORT_IMAGES}"),
    (["--modality", "CT", "--count-images", str(MAX_EXPORT_IMAGES + 1)], "between 1 and"),
    (["--modality", "CT", "--count-images", "1", "--transfer-syntax",
      "1.2.840.10008.1.2.4.50"], "not supported for writing"),
], ids=["modality", "zero", "too-many", "jpeg"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        needle: str) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _generate(capsys, *args, "--out", str(out))
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and needle in stderr, stderr
    assert not out.exists()


def test_non_empty_directory_is_refused(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "other.dcm").write_bytes(b"not ours")
    code, _, stderr = _generate(capsys, "--modality", "CT", "--count-images", "1",
                                "--out", str(tmp_path))
    assert code == 2 and "not empty" in stderr and "mix two studies" in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["other.dcm"]


def test_a_file_as_out_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        export_study("CT", 1, target)


def test_writes_part10_files_in_instance_order_and_prints_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "study"
    code, stdout, _ = _generate(capsys, "--modality", "mr", "--count-images", "3",
                                "--out", str(out), "--seed", "9")
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["IM000001.dcm", "IM000002.dcm", "IM000003.dcm"]
    datasets = [dcmread(out / name) for name in names]
    for number, (name, ds) in enumerate(zip(names, datasets), start=1):
        assert (out / name).read_bytes()[128:132] == b"DICM"
        assert ds.preamble == b"\0" * 128
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "MR" and int(ds.InstanceNumber) == number
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    [line] = stdout.splitlines()
    ds = datasets[0]
    assert ds.StudyInstanceUID in line and ds.PatientID in line
    assert "3 files" in line and str(out) in line


def test_same_seed_gives_byte_identical_files(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for run in ("one", "two"):
        assert _generate(capsys, "--modality", "MG", "--count-images", "4", "--seed", "5",
                         "--out", str(tmp_path / run))[0] == 0
    first, second = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len(first) == 4 and first == second


def test_different_seeds_differ(tmp_path: Path) -> None:
    one = export_study("CT", 2, tmp_path / "one", seed=1)
    two = export_study("CT", 2, tmp_path / "two", seed=2)
    assert one.study_uid != two.study_uid and one.patient_id != two.patient_id
    a, b = dcmread(one.files[0]), dcmread(two.files[0])
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.PatientName != b.PatientName


def test_modalities_of_one_seed_are_distinct_studies(tmp_path: Path) -> None:
    """Two exports of one seed sent to one archive must not share a Study UID."""
    uids = {export_study(m, 1, tmp_path / m, seed=3).study_uid for m in MODALITIES}
    assert len(uids) == len(MODALITIES)


def test_implicit_vr_is_written_as_asked(tmp_path: Path) -> None:
    study = export_study("US", 1, tmp_path, transfer_syntax=str(ImplicitVRLittleEndian))
    ds = dcmread(study.files[0])
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert ds.original_encoding == (True, True)
