"""Final classification: cross-study findings in, explained transfer mismatches out.

Runs after the sample pass, before the rollback trigger fires (late knowledge may
explain a mismatch) and at the end of the run. A transfer mismatch on a study that
carries a data-quality defect accounting for it (an instance short on a
``duplicate-sop-uid`` study, demographics on a ``split-study``) is kept as
``explained`` and the report lists it under the data-quality class; a demographic
value on the target that some source file of the patient carries is the source's
conflict showing through, not a migration error (see validation.py).

Duplicates need one more rule: when the *copy* reaches the target first (a staged
run moves recent years first), the target refuses the *original* study's instance.
The original is clean in the manifest; the loss is the copy's defect showing, so
the mismatch is explained by the copy's ``duplicate-sop-uid`` finding and says so.
"""

from __future__ import annotations

import re
from typing import Iterable

from simulators.migration.checkpoint import Checkpoint, FindingRow
from simulators.migration.validation import EXPLAINED_BY, Finding, source_carries

#: Classes of transfer mismatch a duplicate SOP Instance UID elsewhere can cause.
_LOST_INSTANCE = ("missing-study", "instance-count", "sop-uid-set", "rejected", "series-count",
                  "pixel-hash")
#: How checks.CrossStudyChecker words a duplicate (copy study -> earlier study).
_DUPLICATE = re.compile(r"SOP Instance UID (\S+) is also in earlier study (\S+)")


def finalise(checkpoint: Checkpoint, cross: Iterable[Finding], *,
             only: Iterable[str] | None = None) -> None:
    """Store the cross-study findings, re-explain transfer mismatches, settle states."""
    cross = list(cross)
    checkpoint.add_findings(FindingRow(f.study_uid, f.cls, f.detail, "quality") for f in cross)
    copies_of = _copies_by_original(cross)
    wanted = set(only) if only is not None else None
    for row in checkpoint.findings("transfer"):
        if wanted is not None and row.study_uid not in wanted:
            continue
        quality = checkpoint.classes_of(row.study_uid, "quality")
        finding = Finding(row.study_uid, row.cls, row.detail, row.kind)
        if quality & set(EXPLAINED_BY.get(row.cls, ())) or (
                row.cls == "demographics" and source_carries(finding, checkpoint)):
            checkpoint.mark_explained(row.study_uid, row.cls)
        elif row.cls in _LOST_INSTANCE and row.study_uid in copies_of:
            copies = ", ".join(sorted(copies_of[row.study_uid]))
            checkpoint.mark_explained(row.study_uid, row.cls,
                                      f"{row.detail} (duplicate-sop-uid: a later study "
                                      f"{copies} reuses this study's SOP Instance UID)")
    checkpoint.settle_states()


def _copies_by_original(cross: list[Finding]) -> dict[str, set[str]]:
    """Earlier study UID -> the later studies that reuse one of its SOP Instance UIDs."""
    copies: dict[str, set[str]] = {}
    for finding in cross:
        if finding.cls == "duplicate-sop-uid":
            match = _DUPLICATE.search(finding.detail)
            if match:
                copies.setdefault(match.group(2), set()).add(finding.study_uid)
    return copies


__all__ = ["finalise"]
