"""Every dirt class, seeded into a real archive directory, is found exactly by the checks.

For each class's own profile (and ``heavy``, where classes share studies, and
``none``): seed an archive on disk, read every object file back with pydicom, run
:func:`check_instance` on each and one :class:`CrossStudyChecker` over all, and
compare the (study, class) pairs with the manifest: nothing missed, nothing extra.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from simulators.legacy.audit import audit_archive
from simulators.legacy.dirt import DEFECT_CLASSES
from simulators.legacy.seed import seed_archive

UNTIL = dt.date(2026, 1, 1)


def _manifest_pairs(directory: Path) -> set[tuple[str, str]]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {(d["study_uid"], d["class"]) for d in manifest["defects"]}


def _seed(tmp_path: Path, dirt: str, studies: int = 80) -> Path:
    out = tmp_path / dirt
    seed_archive(out, studies=studies, years=4, dirt=dirt, seed=21, workers=1, until=UNTIL,
                 rows=8)
    return out


@pytest.mark.parametrize("cls", DEFECT_CLASSES)
def test_each_class_is_found_exactly(tmp_path: Path, cls: str) -> None:
    out = _seed(tmp_path, cls)
    expected = _manifest_pairs(out)
    assert expected, f"the {cls} profile injected nothing"
    assert {c for _, c in expected} == {cls}
    found = {(f.study_uid, f.cls) for f in audit_archive(out)}
    assert found == expected


def test_heavy_dirt_with_shared_studies_is_found_exactly(tmp_path: Path) -> None:
    out = _seed(tmp_path, "heavy", studies=150)
    expected = _manifest_pairs(out)
    assert {c for _, c in expected} == set(DEFECT_CLASSES)
    studies_with_several = {s for s, _ in expected if sum(1 for t, _ in expected if t == s) > 1}
    assert studies_with_several  # interactions are exercised
    assert {(f.study_uid, f.cls) for f in audit_archive(out)} == expected


def test_clean_archive_raises_nothing(tmp_path: Path) -> None:
    out = _seed(tmp_path, "none", studies=120)
    assert _manifest_pairs(out) == set()
    assert list(audit_archive(out)) == []
