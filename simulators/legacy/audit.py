"""Audit a seeded archive directory with the migration's data-quality checks.

Why here: the seeder's promise is "the checks find exactly the manifest's defects",
and the tests, the benchmark and a curious user all need the same loop: every
object file's header through :func:`check_instance`, every identity through one
:class:`CrossStudyChecker`, findings folded to one per (study, class). The migration
validator does the same over the wire (C-GET); this is the offline version.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydicom import dcmread

from simulators.dicom.store import DicomStore, StoredInstance
from simulators.quality.values import quiet_pydicom
from simulators.quality.checks import CrossStudyChecker, Finding, check_instance
from simulators.quality.rules import IngestionRules


def _text(ds, keyword: str) -> str:  # noqa: ANN001 - pydicom Dataset
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _every_instance(store: DicomStore) -> Iterator[StoredInstance]:
    """Study by study, so only one study's rows are in memory at a time."""
    for study_uid in store.study_uids():
        yield from store.instances(study_uid=study_uid)


def audit_archive(directory: Path, rules: IngestionRules | None = None) -> Iterator[Finding]:
    """One finding per (study, class) for the archive at ``directory``, sorted by study."""
    rules = rules or IngestionRules.default()
    store = DicomStore(Path(directory))
    per_instance: dict[tuple[str, str], Finding] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="pacsim-audit-") as scratch, \
                CrossStudyChecker(Path(scratch) / "cross.sqlite") as cross, \
                quiet_pydicom():
            for item in _every_instance(store):
                ds = dcmread(item.path, stop_before_pixels=True)
                for finding in check_instance(ds, rules, transfer_syntax=item.transfer_syntax):
                    per_instance.setdefault((finding.study_uid, finding.cls), finding)
                cross.add_instance(_text(ds, "StudyInstanceUID"), _text(ds, "SeriesInstanceUID"),
                                   _text(ds, "SOPInstanceUID"), _text(ds, "PatientID"),
                                   _text(ds, "PatientName"), _text(ds, "PatientBirthDate"),
                                   study_date=_text(ds, "StudyDate"))
            for finding in cross.findings():
                per_instance.setdefault((finding.study_uid, finding.cls), finding)
    finally:
        store.close()
    for key in sorted(per_instance):
        yield per_instance[key]


__all__ = ["audit_archive"]
