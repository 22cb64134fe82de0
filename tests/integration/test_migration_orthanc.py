"""Migration into a real Orthanc: C-MOVE from the legacy, validation by C-FIND and C-GET.

What arrived is checked through Orthanc's own REST API, not the validator.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.migration.runner import MigrationOptions, run_migration
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from tests.helpers import require_tool
from tests.integration.test_migration import build_legacy, write_morph_rules

pytestmark = pytest.mark.orthanc


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("legacy")
    return root, build_legacy(root, 10, seed=9)


def test_migration_by_c_move_into_a_running_orthanc(legacy, tmp_path: Path) -> None:
    require_tool("Orthanc")
    root, counts = legacy
    settings = OrthancSettings(ae_title="NEWPACS", extra={
        "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "DicomAlwaysAllowStore": True})
    with OrthancProcess(settings) as orthanc:
        result = run_migration(MigrationOptions(
            source=str(root), target=f"NEWPACS@127.0.0.1:{orthanc.dicom_port}",
            report_dir=tmp_path, workers=2, batch=4))
        studies = orthanc.rest("/studies?expand")
        instances = orthanc.rest("/instances")
    assert result.signed_off, result.report["mismatches"]
    assert {s["MainDicomTags"]["StudyInstanceUID"] for s in studies} == set(counts)
    assert len(instances) == sum(counts.values())
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["target_kind"] == "external" and report["totals"]["validated"] == len(counts)


def test_orthanc_target_started_for_the_run_catches_a_morph_in_the_sample(legacy,
                                                                         tmp_path: Path) -> None:
    require_tool("Orthanc")
    root, counts = legacy
    rules = write_morph_rules(tmp_path / "rules.yaml")
    result = run_migration(MigrationOptions(source=str(root), target="orthanc", via="get",
                                            rules=rules, sample=3, seed=2,
                                            report_dir=tmp_path / "report"))
    assert result.stopped == "sample"
    assert result.report["target_kind"] == "orthanc"
    classes = {m["class"] for m in result.report["mismatches"]}
    assert classes == {"demographics"}
    assert all("'LEG-" in m["detail"] for m in result.report["tripped"])
    assert result.report["totals"]["pending"] == len(counts) - 3
