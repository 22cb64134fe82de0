"""Which studies the manifest lists for a cross-study defect: derived from what was written.

Why derived and not planned: a conflict is a property of a *set* of studies, and the
validator sees the set - every study of a Patient ID whose files disagree - not the
one study the planner altered. Listing only the altered study made the manifest
disagree with any honest checker (the "canonical" study is as much a part of the
conflict), and a plan can promise what the writer could not do (a birth-date
variant of a patient without a birth date). So the seeder plans the dirt, writes the
objects, then derives membership from the index keys of the objects it actually
wrote, by the contract the validator applies to the archive (issue 17):

* ``patient-name-conflict``: every study of a PatientID whose files, over all of that
  patient's studies, carry more than one distinct non-empty PatientName (exact string
  compare after strip; a case variant is another name);
* ``birth-date-conflict``: the same with PatientBirthDate;
* ``duplicate-sop-uid``: every study holding a SOP Instance UID that another study
  also holds (the earliest and the later copies alike);
* ``split-study``: a study whose files carry more than one PatientID.

"Studies of a PatientID" are the studies with at least one file under that ID, so a
split study belongs to both IDs' sets. Deriving per chunk of patient histories is
exact for the whole archive: a chunk holds whole patients, a patient's ID is its own
(``PSM<tag><index>``), a split series goes under a fresh ID (dirt.py
``SPLIT_PATIENT_BASE`` + the study's index, one series only, so it never carries two
names), and a duplicated SOP Instance UID is copied between studies of one patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from simulators.quality import classes as C
from simulators.quality.checks import CrossStudyChecker

#: The classes whose membership is derived here, in the order the manifest lists them.
CROSS_STUDY_CLASSES: tuple[str, ...] = (C.PATIENT_NAME_CONFLICT, C.BIRTH_DATE_CONFLICT,
                                        C.DUPLICATE_SOP_UID, C.SPLIT_STUDY)


def cross_study_defects(instances: Iterable[Mapping[str, str]]) -> set[tuple[str, str]]:
    """The ``(study_uid, class)`` pairs of :data:`CROSS_STUDY_CLASSES` among
    ``instances`` (index keys: StudyInstanceUID, SOPInstanceUID, PatientID,
    PatientName, PatientBirthDate), by the rules of the module docstring: the very
    :class:`~simulators.quality.checks.CrossStudyChecker` the validator runs (one
    definition of a conflict; tests/integration/test_legacy_manifest.py re-derives the
    same pairs from the files with code of its own)."""
    with CrossStudyChecker(Path(":memory:")) as checker:
        for keys in instances:
            checker.add_instance(keys["StudyInstanceUID"].strip(), "",
                                 keys["SOPInstanceUID"].strip(), keys["PatientID"].strip(),
                                 str(keys.get("PatientName") or ""),
                                 str(keys.get("PatientBirthDate") or ""))
        return {(f.study_uid, f.cls) for f in checker.findings()}


__all__ = ["CROSS_STUDY_CLASSES", "cross_study_defects"]
