"""The control API's allowlist, derived from the actors' declared operations.

Why an allowlist: the control API is a network service, and looking up
``getattr(actor, name_from_request)`` would expose every method (``_stop``,
``store_files``, anything added later) to whoever can reach the port. Which
operations exist, with which argument and result types and how long each may take,
is declared once per actor kind in :mod:`simulators.actors.operations`; this module
turns each declaration into an :class:`Operation` the server validates and runs and
the proxies in :mod:`simulators.runtime.remote` encode and decode by
(:mod:`simulators.runtime.wire` carries exactly the declared types).

Two things are the runtime's own, not the actors': ``describe`` (who serves, with
which settings) for every kind, and exams by reference. Exams stay in the serving
process (their images are real datasets, built once and referenced by MPPS and
commitment later): an :class:`Exam` result travels as an :class:`ExamState` with a
``handle``, an Exam argument as its handle, and an operation that takes an exam
answers ``[result, {parameter: ExamState}]`` so the caller's copy follows. A kind
whose operations take exams also gets ``adopt_exam``, to hand over an exam a step
built itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import types
import typing
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from pydicom.dataset import Dataset

from simulators.actors.modality import Exam
from simulators.actors.operations import (
    DECLARATIONS, DEFAULT_TIMEOUT, FaultEntry, OperationSpec, SearchMatch, declared_operations,
)
from simulators.errors import ConfigError
from simulators.runtime.wire import check_carryable, encode
from simulators.world.context import StudyContext

#: Exams a modality keeps for later operations; the oldest are forgotten beyond this.
MAX_EXAMS = 10_000


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
    """One allowed operation as it travels: argument types (all keyword) and result
    type on the wire, defaults, timeout; ``spec`` is the actor's declaration it was
    derived from (None for the runtime's own ``describe`` and ``adopt_exam``)."""

    name: str
    run: Callable[..., Any]
    params: dict[str, Any] = field(default_factory=dict)
    returns: Any = type(None)
    defaults: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    spec: OperationSpec | None = None

    @property
    def exam_params(self) -> tuple[str, ...]:
        """Parameters that name an exam by its handle."""
        if self.spec is None:
            return ()
        return tuple(name for name, hint in self.spec.params.items() if _mentions_exam(hint))


def _describe(session: ActorSession) -> ActorDescription:
    actor = session.actor
    return ActorDescription(actor.kind, actor.name, encode(actor.config), actor.describe())


def _adopt_exam(s: ActorSession, context: StudyContext, mpps_uid: str, item: Dataset,
                started: dt.datetime) -> ExamState:
    """An exam a step began without MPPS (the target takes none): same fields as the
    in-process step builds, kept here so the images are built where they are sent."""
    return s.keep(Exam(context, mpps_uid, item, started))


DESCRIBE = Operation("describe", _describe, returns=ActorDescription, timeout=10.0)
ADOPT_EXAM = Operation("adopt_exam", _adopt_exam,
                       {"context": StudyContext, "mpps_uid": str, "item": Dataset,
                        "started": dt.datetime}, ExamState, timeout=10.0)


# ---------------------------------------------------------------------- derivation
def _mentions_exam(hint: Any) -> bool:
    return hint is Exam or any(_mentions_exam(arg) for arg in typing.get_args(hint))


def _by_reference(hint: Any, reference: Any, where: str) -> Any:
    """``hint`` with a top-level Exam (alone or in ``Exam | None``) replaced by
    ``reference``; an Exam nested deeper cannot travel (ConfigError)."""
    if hint is Exam:
        return reference
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if Exam in args and not any(_mentions_exam(a) for a in args if a is not Exam):
            return typing.Union[tuple(reference if a is Exam else a for a in args)]
    if _mentions_exam(hint):
        raise ConfigError(f"{where}: an Exam travels by handle only at the top level")
    return hint


def _snapshot(value: Any) -> Any:
    """A copy of a list or dict the actor keeps appending to (``ehr.acks``): the
    answer is encoded after the operation's lock is released."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _run_declared(spec: OperationSpec, exam_params: tuple[str, ...], session: ActorSession,
                  **args: Any) -> Any:
    """Run a declared operation on the session's actor with decoded ``args``."""
    call: dict[str, Any] = {}
    for name, value in args.items():
        if name in exam_params and value is not None:
            value = session.exam(value)
        if name == spec.var_keyword:
            clash = sorted(set(value) & set(spec.params))
            if clash:
                raise ConfigError(f"{spec.name}: matching key(s) {', '.join(clash)} are "
                                  "parameters, not DICOM keywords")
            call.update(value)
        else:
            call[name] = value
    member = getattr(session.actor, spec.name)
    result = member if spec.attribute else member(**call)
    result = session.keep(result) if isinstance(result, Exam) else _snapshot(result)
    if not exam_params:
        return result
    return result, {name: session.state(args[name]) for name in exam_params
                    if args.get(name) is not None}


def derive(spec: OperationSpec) -> Operation:
    """The control API operation of one declared actor operation."""
    params = {name: _by_reference(hint, str, f"{spec.name}({name})")
              for name, hint in spec.params.items()}
    returns = _by_reference(spec.returns, ExamState, f"{spec.name} result")
    exam_params = tuple(name for name, hint in spec.params.items() if _mentions_exam(hint))
    if exam_params:
        returns = tuple[returns, dict[str, ExamState]]  # type: ignore[valid-type]
    for name, hint in params.items():
        check_carryable(hint, f"{spec.name}({name})")
    check_carryable(returns, f"{spec.name} result")

    def run(session: ActorSession, **args: Any) -> Any:
        return _run_declared(spec, exam_params, session, **args)

    return Operation(spec.name, run, params, returns, dict(spec.defaults), spec.timeout, spec)


_TABLES: dict[str, dict[str, Operation]] = {}


def operations_for(kind: str) -> dict[str, Operation]:
    """The allowlist of one actor kind: ``describe``, its declared operations, and
    ``adopt_exam`` when they take exams; ConfigError for a kind without a control API."""
    if kind not in _TABLES:
        if kind not in DECLARATIONS:
            raise ConfigError(f"no control API for actor kind {kind!r}",
                              kinds=",".join(sorted(DECLARATIONS)))
        declared = declared_operations(kind)
        table = {"describe": DESCRIBE}
        table.update({name: derive(spec) for name, spec in declared.items()})
        if any(op.exam_params for op in table.values()):
            table["adopt_exam"] = ADOPT_EXAM
        _TABLES[kind] = table
    return _TABLES[kind]


__all__ = ["Operation", "ActorSession", "ExamState", "ActorDescription", "operations_for",
           "derive", "DEFAULT_TIMEOUT", "FaultEntry", "SearchMatch", "MAX_EXAMS"]
