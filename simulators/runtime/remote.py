"""Proxies for actors that run elsewhere: same operations, spoken over the control API.

Why proxies with the actors' own method names: scenario steps call
``scanner.mpps_start(item)``, ``ehr.place_order(order)``, ``ris.order(accession)``. With
``--runtime docker`` the actor lives in a container, and a proxy with the same
methods, arguments and results (a ``list[Dataset]``, an ``AckResult``, an ``Exam``) lets
every step run unchanged. Each call:

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
import http.client
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from simulators.actors.archive import ArchiveConfig
from simulators.actors.ehr import AckResult, EhrConfig, ReceivedResult
from simulators.actors.modality import CommitmentResult, Exam, ModalityConfig, PerformResult
from simulators.actors.ris import RisConfig
from simulators.dicom.store import StudySummary
from simulators.errors import ConfigError, PacsimError, ProtocolError
from simulators.events import EventBus, bus as default_bus
from simulators.runtime.control import API_PREFIX
from simulators.runtime.operations import (
    MAX_EXAMS, ActorDescription, ExamState, Operation, operations_for,
)
from simulators.runtime.wire import decode, decode_error, decode_event, encode
from simulators.world.context import StudyContext
from simulators.world.models import Order, Patient
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
    """HTTP JSON client of one actor's control API (one connection per call)."""

    def __init__(self, host: str, port: int, *, name: str = "actor") -> None:
        self.host, self.port, self.name = host, port, name

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"

    def _request(self, method: str, path: str, body: dict[str, Any] | None,
                 timeout: float) -> tuple[int, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=data,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ProtocolError(f"control API of {self.name} did not answer: {exc}",
                                peer=self.peer) from None
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            raise ProtocolError(f"control API of {self.name} answered HTTP {response.status} "
                                "without JSON", peer=self.peer) from None

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        status, payload = self._request("GET", f"{API_PREFIX}/health", None, timeout)
        if status != 200 or not isinstance(payload, dict):
            raise ProtocolError(f"control API of {self.name} is not healthy",
                                peer=self.peer, status=status)
        return payload

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
        body = {"args": args, "fired_since": fired_since, "timeout": timeout}
        status, payload = self._request("POST", f"{API_PREFIX}/op/{operation}", body,
                                        timeout + TIMEOUT_MARGIN)
        if not isinstance(payload, dict):
            raise ProtocolError(f"control API of {self.name}: malformed reply",
                                peer=self.peer, status=status)
        reply = Reply(payload.get("result"), None, list(payload.get("events") or []),
                      list(payload.get("fired") or []))
        if status != 200 or "error" in payload:
            reply.error = decode_error(payload.get("error"))
        return reply


class RemoteFaultLog:
    """``proxy.faults``: the remote injector's log, appended to after every call."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, str, int]] = []


class RemoteActor:
    """The operations of an actor that runs behind a control API.

    ``start()`` asks the actor who it is (``describe``) and reads its configuration;
    ``stop()`` does nothing: the process or container belongs to the runtime.
    """

    kind = "actor"
    #: Steps and sites check this, not the class, to accept a proxy for an actor kind.
    remote = True
    config_class: type = object

    def __init__(self, name: str, client: ControlClient, *,
                 events: EventBus | None = None) -> None:
        self.name = name
        self.client = client
        self.events = events or default_bus
        self.faults = RemoteFaultLog()
        self.config: Any = None
        self._operations: dict[str, Operation] = operations_for(self.kind)
        self._line = ""

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


class RemoteEhr(RemoteActor):
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

    def admit(self, patient: Patient) -> AckResult:
        return self._call("admit", patient=patient)

    def register(self, patient: Patient) -> AckResult:
        return self._call("register", patient=patient)

    def update(self, patient: Patient) -> AckResult:
        return self._call("update", patient=patient)

    def merge(self, surviving: Patient, merged: Patient) -> AckResult:
        return self._call("merge", surviving=surviving, merged=merged)

    def place_order(self, order: Order, style: str = "ORM") -> AckResult:
        return self._call("place_order", order=order, style=style)

    def cancel_order(self, order: Order, style: str = "ORM") -> AckResult:
        return self._call("cancel_order", order=order, style=style)

    @property
    def acks(self) -> list[AckResult]:
        """Every ACK the EHR received, oldest first (read fresh from the actor)."""
        return self._call("acks")

    @property
    def results(self) -> list[ReceivedResult]:
        """Every ORU^R01 report the EHR accepted, oldest first (read fresh)."""
        return self._call("results")

    def forget_logs(self, keep: int) -> None:
        self._call("forget_logs", keep=keep)


class RemoteRis(RemoteActor):
    """A RIS in another process; its addresses are where this machine reaches it."""

    kind = "ris"
    config_class = RisConfig

    def __init__(self, name: str, client: ControlClient, *, dicom_address: tuple[str, int],
                 hl7_address: tuple[str, int], events: EventBus | None = None) -> None:
        super().__init__(name, client, events=events)
        self.dicom_address = dicom_address
        self.hl7_address = hl7_address

    def order(self, accession: str) -> Order | None:
        return self._call("order", accession=accession)

    def orders(self) -> list[Order]:
        return self._call("orders")

    def worklist_items(self) -> list[Dataset]:
        return self._call("worklist_items")

    def schedule(self, order: Order) -> Order:
        return self._call("schedule", order=order)

    def cancel(self, accession: str) -> Order | None:
        return self._call("cancel", accession=accession)


class RemoteArchive(RemoteActor):
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

    def find_studies(self, **match: str) -> list[dict[str, Any]]:
        return self._call("find_studies", match=match)

    def study_count(self) -> int:
        return self._call("study_count")

    def studies(self) -> list[StudySummary]:
        return self._call("studies")


class RemoteModality(RemoteActor):
    """A modality in another process; exams stay there, steps hold local ``Exam`` views."""

    kind = "modality"
    config_class = ModalityConfig

    def __init__(self, name: str, client: ControlClient, *, world: World,
                 address: tuple[str, int], events: EventBus | None = None) -> None:
        super().__init__(name, client, events=events)
        self.world = world
        self.address = address
        #: id(local Exam) -> (the Exam, the remote handle); the Exam is kept alive so
        #: its id is never reused while the entry exists.
        self._exams: dict[int, tuple[Exam, str]] = {}

    @property
    def port(self) -> int:
        return self.address[1]

    def query_worklist(self, **match: Any) -> list[Dataset]:
        return self._call("query_worklist", match={k: None if v is None else str(v)
                                                   for k, v in match.items()})

    def mpps_start(self, item: Dataset) -> Exam:
        return self._track(self._call("mpps_start", item=item))

    def mpps_start_unscheduled(self, context: StudyContext) -> Exam:
        return self._track(self._call("mpps_start_unscheduled", context=context))

    def store_study(self, exam: Exam, *, series: int | None = None,
                    per_series: int | None = None) -> list[int]:
        reply = self._call("store_study", exam=self._handle(exam), series=series,
                           per_series=per_series)
        self._track(reply.exam, exam)
        return list(reply.statuses)

    def request_commitment(self, exam: Exam, *, timeout: float | None = None
                           ) -> CommitmentResult:
        reply = self._call("request_commitment", exam=self._handle(exam), timeout=timeout)
        self._track(reply.exam, exam)
        return reply.result

    def mpps_complete(self, exam: Exam) -> int:
        reply = self._call("mpps_complete", exam=self._handle(exam))
        self._track(reply.exam, exam)
        return reply.status

    def mpps_discontinue(self, exam: Exam, *, reason: str = "110514") -> int:
        reply = self._call("mpps_discontinue", exam=self._handle(exam), reason=reason)
        self._track(reply.exam, exam)
        return reply.status

    def perform(self, item: Dataset, *, series: int | None = None,
                per_series: int | None = None, outcome: str = "COMPLETED",
                reason: str = "110514") -> PerformResult:
        return self._call("perform", item=item, series=series, per_series=per_series,
                          outcome=outcome, reason=reason)

    def set_faults(self, profile: list[Any] | None) -> list[str]:
        """Faults the container's modality injects from now on (None: as configured)."""
        return self._call("set_faults", profile=None if profile is None else list(profile))

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


__all__ = ["ControlClient", "Reply", "RemoteActor", "RemoteEhr", "RemoteRis",
           "RemoteArchive", "RemoteModality", "RemoteFaultLog"]
