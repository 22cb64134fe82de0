"""The control API's allowlist: per actor kind, the operations a remote caller may run.

Why an explicit table: the control API is a network service, and looking up
``getattr(actor, name_from_request)`` would expose every method (``_stop``,
``store_files``, anything added later) to whoever can reach the port. Here each entry
names one public actor operation, the type of every argument and of the result
(:mod:`simulators.runtime.wire` decodes and encodes exactly those), and a timeout.
Both sides read the same table: the server to validate and run, the proxies in
:mod:`simulators.runtime.remote` to encode arguments and decode results.

Exams stay in the serving process (their images are real datasets, built once and
referenced by MPPS and commitment later); callers get an :class:`ExamState` with a
``handle`` to name the exam in later operations, plus the fields steps read.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from pydicom.dataset import Dataset

from simulators.actors.ehr import AckResult, ReceivedResult
from simulators.actors.modality import CommitmentResult, Exam, PerformResult
from simulators.actors.viewer import ViewerSource
from simulators.dicomweb.client import LoadTiming
from simulators.dicom.store import StudySummary
from simulators.errors import ConfigError
from simulators.runtime.wire import encode
from simulators.world.context import StudyContext
from simulators.world.models import Order, Patient

#: Seconds an operation may take unless its entry says otherwise.
DEFAULT_TIMEOUT = 120.0
#: Exams a modality keeps for later operations; the oldest are forgotten beyond this.
MAX_EXAMS = 10_000
#: One fault entry as a scenario or the trainer writes it: an id or profile name, or
#: a rule mapping (``{"id": ..., "rate": 0.5}``); the actor's parser validates it.
FaultEntry = str | dict[str, str | int | float]
#: Matching values a viewer search takes (keyword -> value, a list, or universal).
SearchMatch = dict[str, str | list[str] | None]


@dataclass(frozen=True, slots=True)
class ExamState:
    """An exam as a caller sees it: a handle plus what steps and reports read."""

    handle: str
    context: StudyContext
    mpps_uid: str
    item: Dataset
    started: dt.datetime
    #: (SOP Class UID, SOP Instance UID, Series Instance UID) of every built image.
    images: tuple[tuple[str, str, str], ...] = ()
    store_statuses: tuple[int, ...] = ()
    create_status: int = 0
    mpps_status: str = "IN PROGRESS"
    commitments: int = 0
    fault_statuses: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class StatusWithExam:
    status: int
    exam: ExamState


@dataclass(frozen=True, slots=True)
class StatusesWithExam:
    statuses: tuple[int, ...]
    exam: ExamState


@dataclass(frozen=True, slots=True)
class CommitmentWithExam:
    result: CommitmentResult
    exam: ExamState


@dataclass(frozen=True, slots=True)
class ActorDescription:
    """What ``describe`` answers: who runs, its settings (as the actor's config
    dataclass encodes them) and its one-line description."""

    kind: str
    name: str
    config: dict[str, Any]
    line: str


class ActorSession:
    """One served actor plus what the control API keeps for it between calls."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        #: Operations run one at a time: an actor is one simulated system, and the
        #: events of an operation are the ones emitted while it runs.
        self.lock = threading.Lock()
        self._exams: OrderedDict[str, Any] = OrderedDict()
        self._numbers = itertools.count(1)

    def keep(self, exam: Any) -> ExamState:
        handle = f"exam-{next(self._numbers)}"
        self._exams[handle] = exam
        while len(self._exams) > MAX_EXAMS:
            self._exams.popitem(last=False)
        return self.state(handle)

    def exam(self, handle: str) -> Any:
        try:
            return self._exams[handle]
        except KeyError:
            raise ConfigError(f"no exam {handle!r} in {self.actor.name} (it was never "
                              "started here, or was forgotten)") from None

    def state(self, handle: str) -> ExamState:
        exam = self.exam(handle)
        images = tuple((str(ds.SOPClassUID), str(ds.SOPInstanceUID),
                        str(ds.get("SeriesInstanceUID", ""))) for ds in exam.images)
        return ExamState(handle, exam.context, exam.mpps_uid, exam.item, exam.started, images,
                         tuple(exam.store_statuses), exam.create_status, exam.mpps_status,
                         exam.commitments, tuple(tuple(f) for f in exam.fault_statuses))


@dataclass(frozen=True)
class Operation:
    """One allowed operation: argument types (all keyword), result type, timeout."""

    name: str
    run: Callable[..., Any]
    params: dict[str, Any] = field(default_factory=dict)
    returns: Any = type(None)
    defaults: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT


def _describe(session: ActorSession) -> ActorDescription:
    actor = session.actor
    return ActorDescription(actor.kind, actor.name, encode(actor.config), actor.describe())


DESCRIBE = Operation("describe", _describe, returns=ActorDescription, timeout=10.0)


# ---------------------------------------------------------------------- modality
def _mpps_start(s: ActorSession, item: Dataset) -> ExamState:
    return s.keep(s.actor.mpps_start(item))


def _mpps_start_unscheduled(s: ActorSession, context: StudyContext) -> ExamState:
    return s.keep(s.actor.mpps_start_unscheduled(context))


def _adopt_exam(s: ActorSession, context: StudyContext, mpps_uid: str, item: Dataset,
                started: dt.datetime) -> ExamState:
    """An exam a step began without MPPS (the target takes none): same fields as the
    in-process step builds, kept here so the images are built where they are sent."""
    return s.keep(Exam(context, mpps_uid, item, started))


def _store_study(s: ActorSession, exam: str, series: int | None,
                 per_series: int | None) -> StatusesWithExam:
    statuses = s.actor.store_study(s.exam(exam), series=series, per_series=per_series)
    return StatusesWithExam(tuple(statuses), s.state(exam))


def _request_commitment(s: ActorSession, exam: str,
                        timeout: float | None) -> CommitmentWithExam:
    return CommitmentWithExam(s.actor.request_commitment(s.exam(exam), timeout=timeout),
                              s.state(exam))


def _mpps_complete(s: ActorSession, exam: str) -> StatusWithExam:
    return StatusWithExam(s.actor.mpps_complete(s.exam(exam)), s.state(exam))


def _mpps_discontinue(s: ActorSession, exam: str, reason: str) -> StatusWithExam:
    return StatusWithExam(s.actor.mpps_discontinue(s.exam(exam), reason=reason), s.state(exam))


def _modality_operations() -> dict[str, Operation]:
    ops = [
        DESCRIBE,
        Operation("query_worklist", lambda s, match: s.actor.query_worklist(**match),
                  {"match": dict[str, str | None]}, list[Dataset], {"match": {}}),
        Operation("mpps_start", _mpps_start, {"item": Dataset}, ExamState),
        Operation("mpps_start_unscheduled", _mpps_start_unscheduled,
                  {"context": StudyContext}, ExamState),
        Operation("adopt_exam", _adopt_exam, {"context": StudyContext, "mpps_uid": str,
                                              "item": Dataset, "started": dt.datetime},
                  ExamState, timeout=10.0),
        Operation("store_study", _store_study,
                  {"exam": str, "series": int | None, "per_series": int | None},
                  StatusesWithExam, {"series": None, "per_series": None}, timeout=600.0),
        Operation("request_commitment", _request_commitment,
                  {"exam": str, "timeout": float | None}, CommitmentWithExam,
                  {"timeout": None}, timeout=300.0),
        Operation("mpps_complete", _mpps_complete, {"exam": str}, StatusWithExam),
        Operation("mpps_discontinue", _mpps_discontinue, {"exam": str, "reason": str},
                  StatusWithExam, {"reason": "110514"}),
        Operation("perform", lambda s, item, series, per_series, outcome, reason:
                  s.actor.perform(item, series=series, per_series=per_series,
                                  outcome=outcome, reason=reason),
                  {"item": Dataset, "series": int | None, "per_series": int | None,
                   "outcome": str, "reason": str}, PerformResult,
                  {"series": None, "per_series": None, "outcome": "COMPLETED",
                   "reason": "110514"}, timeout=900.0),
        # The trainer's fault injection: the profile from now on (None: as configured).
        Operation("set_faults", lambda s, profile: s.actor.set_faults(profile),
                  {"profile": list[FaultEntry] | None}, list[str], timeout=10.0),
    ]
    return {op.name: op for op in ops}


# ---------------------------------------------------------------------- ehr, ris, archive
def _ehr_operations() -> dict[str, Operation]:
    def patient_op(name: str, send: Callable[[Any, Patient], AckResult]) -> Operation:
        return Operation(name, lambda s, patient: send(s.actor, patient),
                         {"patient": Patient}, AckResult)

    def order_op(name: str, send: Callable[[Any, Order, str], AckResult]) -> Operation:
        return Operation(name, lambda s, order, style: send(s.actor, order, style),
                         {"order": Order, "style": str}, AckResult, {"style": "ORM"})

    ops = [
        DESCRIBE,
        patient_op("admit", lambda ehr, p: ehr.admit(p)),
        patient_op("register", lambda ehr, p: ehr.register(p)),
        patient_op("update", lambda ehr, p: ehr.update(p)),
        Operation("merge", lambda s, surviving, merged: s.actor.merge(surviving, merged),
                  {"surviving": Patient, "merged": Patient}, AckResult),
        order_op("place_order", lambda ehr, o, style: ehr.place_order(o, style)),
        order_op("cancel_order", lambda ehr, o, style: ehr.cancel_order(o, style)),
        # Every ACK so far, in order: fault verdicts pair the N-th fired fault with it.
        Operation("acks", lambda s: list(s.actor.acks), returns=list[AckResult], timeout=10.0),
        # The ORU^R01 reports the EHR received and answered AA, oldest first.
        Operation("results", lambda s: list(s.actor.results), returns=list[ReceivedResult],
                  timeout=10.0),
        Operation("forget_logs", lambda s, keep: s.actor.forget_logs(keep), {"keep": int},
                  timeout=10.0),
    ]
    return {op.name: op for op in ops}


def _ris_operations() -> dict[str, Operation]:
    ops = [
        DESCRIBE,
        Operation("order", lambda s, accession: s.actor.order(accession),
                  {"accession": str}, Order | None, timeout=10.0),
        Operation("orders", lambda s: s.actor.orders(), returns=list[Order], timeout=30.0),
        Operation("worklist_items", lambda s: s.actor.worklist_items(),
                  returns=list[Dataset], timeout=30.0),
        Operation("schedule", lambda s, order: s.actor.schedule(order), {"order": Order},
                  Order, timeout=10.0),
        Operation("cancel", lambda s, accession: s.actor.cancel(accession),
                  {"accession": str}, Order | None, timeout=10.0),
    ]
    return {op.name: op for op in ops}


def _archive_list() -> list[Operation]:
    return [
        DESCRIBE,
        Operation("find_studies", lambda s, match: s.actor.find_studies(**match),
                  {"match": dict[str, str]}, list[dict[str, Any]], {"match": {}}, 30.0),
        Operation("study_count", lambda s: s.actor.study_count(), returns=int, timeout=30.0),
        Operation("studies", lambda s: s.actor.studies(), returns=list[StudySummary],
                  timeout=30.0),
    ]


def _archive_operations() -> dict[str, Operation]:
    return {op.name: op for op in _archive_list()}


def _viewer_operations() -> dict[str, Operation]:
    """A viewer is an archive (its storage SCP receives C-MOVEs) plus search and load.
    The viewer's own timeout bounds each search or load; the table allows a margin."""
    ops = [
        *_archive_list(),
        Operation("search_studies", lambda s, source, via, match:
                  s.actor.search_studies(source, via=via, **match),
                  {"source": ViewerSource | None, "via": str, "match": SearchMatch},
                  list[dict[str, Any]], {"source": None, "via": "qido", "match": {}}, 180.0),
        Operation("load_study", lambda s, study_uid, via, source:
                  s.actor.load_study(study_uid, via, source),
                  {"study_uid": str, "via": str, "source": ViewerSource | None}, LoadTiming,
                  {"via": "wado", "source": None}, 600.0),
    ]
    return {op.name: op for op in ops}


_BUILDERS: dict[str, Callable[[], dict[str, Operation]]] = {
    "modality": _modality_operations, "ehr": _ehr_operations, "ris": _ris_operations,
    "archive": _archive_operations, "viewer": _viewer_operations,
}
_TABLES: dict[str, dict[str, Operation]] = {}


def operations_for(kind: str) -> dict[str, Operation]:
    """The allowlist of one actor kind; ConfigError for a kind without a control API."""
    if kind not in _BUILDERS:
        raise ConfigError(f"no control API for actor kind {kind!r}",
                          kinds=",".join(sorted(_BUILDERS)))
    if kind not in _TABLES:
        _TABLES[kind] = _BUILDERS[kind]()
    return _TABLES[kind]


__all__ = ["Operation", "ActorSession", "ExamState", "StatusWithExam", "StatusesWithExam",
           "CommitmentWithExam", "ActorDescription", "operations_for", "DEFAULT_TIMEOUT",
           "FaultEntry", "SearchMatch"]
