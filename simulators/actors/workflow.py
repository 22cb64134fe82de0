"""The exam workflow as a plain library: worklist pick, MPPS, images, commitment.

Why a library with explicit arguments: scenario steps (``modality.perform`` and the
one-part steps) and the training sandbox's pathways run the same exam; neither should
reach into the other's state. Each part uses the modality actor's public operations
(``mpps_start``, ``store_study``, ``request_commitment``, ``mpps_complete``...) and
turns what came back into plain observations. When the target does not take MPPS
(Orthanc), an exam still needs its identity to store images: :func:`begin_exam` then
builds it from the worklist item without sending anything, exactly as ``mpps_start``
would. Remembering the exam (a scenario site keeps it for later steps) is the caller's
business.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.dataset import Dataset

from simulators.actors.modality import Exam, Modality
from simulators.dicom.qrscu import status_word
from simulators.errors import ProtocolError, ScenarioError, StatusError
from simulators.world.context import StudyContext


def worklist_item(scanner: Modality, accession: str) -> Dataset:
    """The modality's worklist entry for ``accession`` (over the wire, as a scanner picks it)."""
    items = scanner.query_worklist(AccessionNumber=accession)
    if len(items) != 1:
        raise ScenarioError(f"accession {accession} is on {scanner.name}'s worklist "
                            f"{len(items)} times (expected once)", field="accession")
    return items[0]


def begin_exam(scanner: Modality, accession: str, *, send_mpps: bool) -> tuple[Exam, str]:
    """Pick the worklist item and start the exam; returns it and the N-CREATE status word
    (``unsupported`` when no MPPS is sent). A refused N-CREATE raises ProtocolError."""
    item = worklist_item(scanner, accession)
    if send_mpps:
        exam = scanner.mpps_start(item)
        word = status_word(exam.create_status)
    else:
        started = dt.datetime.now().replace(microsecond=0)
        context = StudyContext.from_worklist(item, scanner.world,
                                             station_name=scanner.config.station_name,
                                             performed_start=started)
        exam = Exam(context, context.mpps_uid or scanner.world.uid("mpps", accession), item,
                    started)
        word = "unsupported"
    return exam, word


def begin_unscheduled(scanner: Modality, context: StudyContext, *,
                      send_mpps: bool) -> tuple[Exam, str]:
    """An exam with no worklist item (emergency): N-CREATE with empty scheduling keys.

    The modality sends the N-CREATE itself, so it leaves from wherever the modality
    runs (in a container, its MPPS peer is a name only the container network knows)."""
    if send_mpps:
        exam = scanner.mpps_start_unscheduled(context)
        word = status_word(exam.create_status)
    else:
        exam = Exam(context, context.mpps_uid or scanner.world.uid("mpps", context.study_uid),
                    Dataset(), context.performed_step_start)
        word = "unsupported"
    return exam, word


def store(scanner: Modality, exam: Exam, series: int, per_series: int) -> dict[str, Any]:
    statuses = scanner.store_study(exam, series=series, per_series=per_series)
    failed = sum(1 for status in statuses if status != 0)
    return {"stored": len(statuses) - failed, "failed": failed,
            "statuses": sorted({status_word(s) for s in statuses})}


def commit(scanner: Modality, exam: Exam) -> dict[str, Any]:
    result = scanner.request_commitment(exam)
    reported = result.same_association is not None
    committed = len(result.committed)
    return {"action": status_word(result.action_status), "reported": reported,
            "committed": committed, "failed": len(exam.images) - committed,
            "same_association": result.same_association}


def finish(scanner: Modality, exam: Exam, outcome: str, reason: str) -> str:
    if outcome == "discontinued":
        return status_word(scanner.mpps_discontinue(exam, reason=reason))
    return status_word(scanner.mpps_complete(exam))


def refused_status(exc: ProtocolError) -> str:
    """The status a refusal carries, as steps report it (``0xA700``, ``AE``), or
    ``refused`` when the peer answered no status (unreachable, aborted...)."""
    if not isinstance(exc, StatusError):
        return "refused"
    return status_word(exc.status) if isinstance(exc.status, int) else exc.status


__all__ = ["status_word", "worklist_item", "begin_exam", "begin_unscheduled", "store",
           "commit", "finish", "refused_status"]
