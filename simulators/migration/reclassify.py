"""Final classification: cross-study findings in, every recorded verdict judged again.

Runs after the sample pass, before the rollback trigger fires and at the end of the
run. Two things can only be known once more of the archive has been seen: which
studies a cross-study conflict involves (a patient's other names, a SOP Instance UID's
other study), and the proof of some excuses (the target's answer for the *other*
study holding a duplicated SOP Instance UID). Both are recomputed from what the
checkpoint recorded (evidence and identities, committed with each study), never
from memory, so the result is the same after a kill -9 and resume, and the same in
any migration order, batch size or number of workers.
"""

from __future__ import annotations

from typing import Iterable

from simulators.migration.checkpoint import Checkpoint, FindingRow
from simulators.migration.judge import state_of
from simulators.migration.validation import Validator
from simulators.quality import classes as C
from simulators.quality.checks import Conflict

#: The data-quality classes only the cross-study checks find.
CROSS_CLASSES = (C.PATIENT_NAME_CONFLICT, C.BIRTH_DATE_CONFLICT, C.DUPLICATE_SOP_UID,
                 C.SPLIT_STUDY)


def finalise(checkpoint: Checkpoint, validator: Validator, *,
             only: Iterable[str] | None = None) -> list[Conflict]:
    """Store the cross-study findings and re-judge recorded studies (all, or ``only``);
    returns the conflicts (each once, with every study it involves)."""
    conflicts = Validator.cross_conflicts(checkpoint)
    rows: dict[tuple[str, str], FindingRow] = {}
    for conflict in conflicts:
        for study_uid in conflict.studies:
            rows.setdefault((study_uid, conflict.cls),
                            FindingRow(study_uid, conflict.cls, conflict.detail, "quality"))
    checkpoint.replace_quality(CROSS_CLASSES, rows.values())
    for study_uid in checkpoint.judged_studies(only):
        evidence = checkpoint.evidence(study_uid)
        if evidence is None or checkpoint.state(study_uid) not in ("validated", "mismatch",
                                                                   "failed"):
            continue
        judged = validator.rejudge(evidence)
        checkpoint.replace_verdict(study_uid, [(j.cls, j.stored_detail, j.kind) for j in judged],
                                   state_of(j.cls for j in judged if not j.explained_by))
    return conflicts


__all__ = ["finalise", "CROSS_CLASSES"]
