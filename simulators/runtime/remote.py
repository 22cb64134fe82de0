"""Proxies for actors that run elsewhere: same operations, spoken over the control API.

Why proxies with the actors' own method names: scenario steps call
``scanner.mpps_start(item)``, ``ehr.place_order(order)``, ``ris.order(accession)``. With
``--runtime docker`` the actor lives in a container, and a proxy with the same
methods, arguments and results (a ``list[Dataset]``, an ``AckResult``, an ``Exam``) lets
every step run unchanged.

The methods are not written here: each proxy class is generated from its kind's
declaration (:mod:`simulators.actors.operations`), one method (or property) per
declared operation, with the declared signature, types and docstring. A proxy class
that defined one by hand would be refused when the class is created; arguments that
must change on the way (an exam becomes its handle, a viewer's source its in-network
address) are adapted in :meth:`RemoteActor._outgoing`. Each call:

* encodes its arguments (:mod:`simulators.runtime.wire`) and POSTs them to the actor's
  control API (:mod:`simulators.runtime.control`) with the operation's timeout;
* re-emits the exchange events the actor reported on this process's bus, so reports
  and ``max_duration`` read the same as in-process;
* appends the faults that fired to ``proxy.faults.fired`` (what ``FaultWatch`` reads);
* raises the PacsimError subclass the actor raised, with its context.

Exams stay in the container; the proxy hands steps a real :class:`Exam` whose fields
it refreshes after every operation, and remembers which remote exam it stands for.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from simulators.actors.archive import ArchiveConfig
from simulators.actors.ehr import EhrConfig
from simulators.actors.modality import Exam, ModalityConfig
from simulators.actors.operations import (
    ArchiveOperations, EhrOperations, ModalityOperations, OperationSpec, RisOperations,
    declared_operations,
)
from simulators.actors.ris import RisConfig
from simulators.errors import ConfigError, PacsimError, ProtocolError
from simulators.events import EventBus, bus as default_bus
from simulators.http.client import JsonClient
from simulators.runtime.control import API_PREFIX
from simulators.runtime.operations import (
    MAX_EXAMS, ActorDescription, ExamState, Operation, operations_for,
)
from simulators.runtime.wire import decode, decode_event, encode
from simulators.world.world import World

log = logging.getLogger(__name__)

#: Seconds added to an operation's own timeout before the HTTP read gives up.
TIMEOUT_MARGIN = 10.0


@dataclass
class Reply:
    """One control API answer: the result or the error, and what happened meanwhile."""

    result: Any = None
    error: PacsimError | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    fired: list[Any] = field(default_factory=list)


class ControlClient:
    """Client of one actor's control API, on pacsim's one HTTP client."""

    def __init__(self, host: str, port: int, *, name: str = "actor") -> None:
        self.host, self.port, self.name = host, port, name
        self._http = JsonClient(f"http://{host}:{port}", name=f"control API of {name}")

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        answer = self._http.exchange("GET", f"{API_PREFIX}/health", timeout=timeout)
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise ProtocolError(f"control API of {self.name} is not healthy",
                                peer=self.peer, status=answer.status)
        return answer.body

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """Health, retried (bounded in time and count) while the actor is starting."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.2) + 1):
            try:
                return self.health()
            except ProtocolError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        return self.health()

    def call(self, operation: str, args: dict[str, Any], *, fired_since: int = 0,
             timeout: float) -> Reply:
        """Run ``operation``; its result or error, plus the events and faults it caused
        (an operation that failed still reports what it did before failing)."""
        body = {"args": args, "fired_since": fired_since, "timeout": timeout}
        answer = self._http.exchange("POST", f"{API_PREFIX}/op/{operation}", json_body=body,
                                     timeout=timeout + TIMEOUT_MARGIN)
        payload = answer.body
        if not isinstance(payload, dict):
            raise ProtocolError(f"control API of {self.name} answered HTTP {answer.status} "
                                "without JSON", peer=self.peer, status=answer.status)
        reply = Reply(payload.get("result"), None, list(payload.get("events") or []),
                      list(payload.get("fired") or []))
        if not answer.ok or "error" in payload:
            reply.error = self._http.error_of(answer)
        return reply


class RemoteFaultLog:
    """``proxy.faults``: the remote injector's log, appended to after every call."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, str, int]] = []


# ---------------------------------------------------------------------- generated twins
def _as_text(value: Any) -> Any:
    """A matching value as the control API carries it: text, a list of text, or None
    (matching keys are DICOM text; a date or a number is sent as its text)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return str(value)


def _twin(spec: OperationSpec) -> Any:
    """The proxy member of one declared operation: a method with the declared
    signature, or a property for an attribute operation."""
    if spec.attribute:
        def read(self: RemoteActor) -> Any:
            return self._invoke(spec, {})

        read.__name__ = read.__qualname__ = spec.name
        read.__annotations__ = {"return": spec.returns}
        read.__pacsim_operation__ = spec  # type: ignore[attr-defined]
        return property(read, doc=spec.doc)

    def method(self: RemoteActor, *args: Any, **kwargs: Any) -> Any:
        bound = spec.signature.bind(*args, **kwargs)  # TypeError as a real method raises
        bound.apply_defaults()
        return self._invoke(spec, dict(bound.arguments))

    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__name__ = method.__qualname__ = spec.name
    method.__doc__ = spec.doc
    method.__signature__ = spec.signature.replace(  # type: ignore[attr-defined]
        parameters=[this, *spec.signature.parameters.values()])
    method.__annotations__ = {**{name: p.annotation for name, p
                                 in spec.signature.parameters.items()},
                              "return": spec.returns}
    method.__pacsim_operation__ = spec  # type: ignore[attr-defined]
    return method


def twin_of(cls: type, name: str) -> OperationSpec | None:
    """The declaration a proxy class's member ``name`` was generated from (None if
    the member is missing or was not generated)."""
    member = inspect.getattr_static(cls, name, None)
    function = member.fget if isinstance(member, property) else member
    return getattr(function, "__pacsim_operation__", None)


class RemoteActor:
    """The operations of an actor that runs behind a control API.

    A subclass sets ``kind``; its declared operations become its methods when the
    class is created. ``start()`` asks the actor who it is (``describe``) and reads
    its configuration; ``stop()`` does nothing: the process or container belongs to
    the runtime.
    """

    kind = "actor"
    #: Steps and sites check this, not the class, to accept a proxy for an actor kind.
    remote = True
    config_class: type = object

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind == "actor":
            return
        for name, spec in declared_operations(cls.kind).items():
            if name in vars(cls):
                raise TypeError(f"{cls.__name__}.{name} is generated from the {cls.kind} "
                                "declaration (simulators.actors.operations); adapt its "
                                "arguments in _outgoing instead of writing it again")
            setattr(cls, name, _twin(spec))

    def __init__(self, name: str, client: ControlClient, *,
                 events: EventBus | None = None) -> None:
        self.name = name
        self.client = client
        self.events = events or default_bus
        self.faults = RemoteFaultLog()
        self.config: Any = None
        self._operations: dict[str, Operation] = operations_for(self.kind)
        self._line = ""
        #: id(local Exam) -> (the Exam, the remote handle); the Exam is kept alive so
        #: its id is never reused while the entry exists.
        self._exams: dict[int, tuple[Exam, str]] = {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for a name the class lacks: say what a proxy of this kind can do
        # instead of a bare AttributeError (a step written for another kind, a typo).
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            f"{type(self).__name__} {self.__dict__.get('name', '?')!r} has no operation "
            f"{name!r}; a {self.kind} declares: "
            f"{', '.join(sorted(declared_operations(self.kind))) if self.kind != 'actor' else 'none'}")

    @property
    def running(self) -> bool:
        return self.config is not None

    def start(self) -> RemoteActor:
        if self.config is None:
            self.client.wait_ready()
            description: ActorDescription = self._call("describe")
            if description.kind != self.kind:
                raise ConfigError(f"{self.name}: the control API serves a {description.kind}, "
                                  f"not a {self.kind}", peer=self.client.peer)
            self.config = decode(self.config_class, self._known(description.config),
                                 f"{self.name}.config")
            self._line = description.line
        return self

    def _known(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings this version's config class has: an image built from another
        pacsim version may add or drop a setting, and the proxy only reads a few."""
        names = {f.name for f in dataclasses.fields(self.config_class) if f.init}
        dropped = sorted(set(settings) - names)
        if dropped:
            log.info("%s: ignoring setting(s) this pacsim does not know: %s", self.name,
                     ", ".join(dropped))
        return {key: value for key, value in settings.items() if key in names}

    def stop(self) -> None:
        """Nothing to close here: the runtime removes the container."""

    def describe(self) -> str:
        return f"{self._line} (remote, control API {self.client.peer})"

    def __enter__(self) -> RemoteActor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ calls
    def _invoke(self, spec: OperationSpec, arguments: dict[str, Any]) -> Any:
        """Run a declared operation remotely: adapt and encode the arguments, call,
        bring the caller's exams up to date, and return the declared result."""
        operation = self._operations[spec.name]
        wire: dict[str, Any] = {}
        for name, value in arguments.items():
            if name == spec.var_keyword:
                value = {key: _as_text(item) for key, item in value.items()}
            wire[name] = self._outgoing(value)
        result = self._call(spec.name, **wire)
        if operation.exam_params:
            result, states = result
            for name, state in states.items():
                self._track(state, arguments[name])
        if isinstance(result, ExamState):
            return self._track(result)
        return result

    def _outgoing(self, value: Any) -> Any:
        """An argument as the actor's side needs it: an exam becomes its handle."""
        return self._handle(value) if isinstance(value, Exam) else value

    def _call(self, name: str, **args: Any) -> Any:
        operation = self._operations[name]
        reply = self.client.call(name, {k: encode(v) for k, v in args.items()},
                                 fired_since=len(self.faults.fired), timeout=operation.timeout)
        for event in reply.events:
            try:
                self.events.emit(decode_event(event))
            except ConfigError:
                pass  # an event this version cannot read is not worth failing the step
        self.faults.fired.extend(tuple(entry) for entry in reply.fired)
        if reply.error is not None:
            raise reply.error
        return decode(operation.returns, reply.result, name)

    # ------------------------------------------------------------------ exams
    def _handle(self, exam: Exam) -> str:
        """The remote handle of ``exam``; an exam a step built itself (no MPPS sent)
        is handed over first, exactly as built."""
        known = self._exams.get(id(exam))
        if known is not None and known[0] is exam:
            return known[1]
        state: ExamState = self._call("adopt_exam", context=exam.context,
                                      mpps_uid=exam.mpps_uid, item=exam.item,
                                      started=exam.started)
        return self._remember(exam, state.handle)

    def _remember(self, exam: Exam, handle: str) -> str:
        self._exams[id(exam)] = (exam, handle)
        while len(self._exams) > MAX_EXAMS:
            self._exams.pop(next(iter(self._exams)))
        return handle

    def _track(self, state: ExamState, exam: Exam | None = None) -> Exam:
        """The local view of a remote exam, created or brought up to date."""
        if exam is None:
            exam = Exam(state.context, state.mpps_uid, state.item, state.started)
            self._remember(exam, state.handle)
        exam.images = [_image_reference(*image) for image in state.images]
        exam.store_statuses = list(state.store_statuses)
        exam.create_status = state.create_status
        exam.mpps_status = state.mpps_status
        exam.commitments = state.commitments
        exam.fault_statuses = [tuple(entry) for entry in state.fault_statuses]
        return exam


def _image_reference(sop_class: str, sop_instance: str, series_uid: str) -> Dataset:
    """What a step can read about a remote image: its identity, not its pixels."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


# ---------------------------------------------------------------------- the proxies
class RemoteEhr(RemoteActor, EhrOperations):
    """An EHR in another process: ADT and orders to the RIS, from there.

    ``address`` is where this machine reaches its ORU listener (the published HL7
    port), so a reporting system here can send it results."""

    kind = "ehr"
    config_class = EhrConfig

    def __init__(self, name: str, client: ControlClient, *,
                 address: tuple[str, int] | None = None,
                 events: EventBus | None = None) -> None:
        super().__init__(name, client, events=events)
        self._address = address

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise ConfigError(f"{self.name}: its ORU listener is not published here",
                              peer=self.client.peer)
        return self._address


class RemoteRis(RemoteActor, RisOperations):
    """A RIS in another process; its addresses are where this machine reaches it."""

    kind = "ris"
    config_class = RisConfig

    def __init__(self, name: str, client: ControlClient, *, dicom_address: tuple[str, int],
                 hl7_address: tuple[str, int], events: EventBus | None = None) -> None:
        super().__init__(name, client, events=events)
        self.dicom_address = dicom_address
        self.hl7_address = hl7_address


class RemoteArchive(RemoteActor, ArchiveOperations):
    """An archive (legacy PACS, viewer, built-in target) in another process."""

    kind = "archive"
    config_class = ArchiveConfig

    def __init__(self, name: str, client: ControlClient, *, address: tuple[str, int],
                 events: EventBus | None = None) -> None:
        super().__init__(name, client, events=events)
        self.address = address

    @property
    def port(self) -> int:
        return self.address[1]


class RemoteModality(RemoteActor, ModalityOperations):
    """A modality in another process; exams stay there, steps hold local ``Exam`` views."""

    kind = "modality"
    config_class = ModalityConfig

    def __init__(self, name: str, client: ControlClient, *, world: World,
                 address: tuple[str, int], events: EventBus | None = None) -> None:
        super().__init__(name, client, events=events)
        self.world = world
        self.address = address

    @property
    def port(self) -> int:
        return self.address[1]


__all__ = ["ControlClient", "Reply", "RemoteActor", "RemoteEhr", "RemoteRis",
           "RemoteArchive", "RemoteModality", "RemoteFaultLog", "twin_of"]
