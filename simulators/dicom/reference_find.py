"""A C-FIND through pynetdicom's own requestor, for verdicts that must not trust pacsim.

Why a second way to send C-FIND: the fault probes judge whether a *target* conforms,
so they query through an implementation independent of pacsim's fast client; a bug
in the client under test elsewhere in pacsim must not turn into a verdict on the
target. The fault probes' worklist queries (PS3.4 K.4) run through this function on
an association they opened (:mod:`simulators.faults.scu`). Query/Retrieve for
everything else goes through :class:`simulators.dicom.qrscu.QrClient`; a unit test
keeps C-FIND, C-MOVE and C-GET requests inside :mod:`simulators.dicom`.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom.association import Association

PENDING = (0xFF00, 0xFF01)


def find_on(assoc: Association, query: Dataset, sop_class: object, *,
            limit: int = 100_000) -> tuple[int | None, list[Dataset]]:
    """One C-FIND on ``assoc``: the final status (None if none arrived: the association
    was lost or timed out) and the first ``limit`` matches."""
    matches: list[Dataset] = []
    for status, found in assoc.send_c_find(query, sop_class):
        if status is None or "Status" not in status:
            return None, matches
        code = int(status.Status)
        if code in PENDING:
            if found is not None and len(matches) < limit:
                matches.append(found)
            continue
        return code, matches
    return None, matches


__all__ = ["find_on"]
