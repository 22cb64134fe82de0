"""What each actor can be asked to do, declared once: one Protocol per actor kind.

Why here, in the actors layer: an actor operation (``ehr.admit(patient)``,
``ct1.store_study(exam, series=2)``) used to be written four times: the actor's
method, the control API's allowlist, the remote proxy's method and its wire
encoding. Now each kind's operations are the methods of one :class:`typing.Protocol`
below (name, argument types and defaults, result type, and how long it may take),
and everything else is derived from it:

* :mod:`simulators.runtime.operations` builds the control API's allowlist from it
  (only declared names can ever run, arguments decode to the declared types);
* :mod:`simulators.runtime.remote` generates the proxies' methods from it, with
  these signatures and docstrings, so a proxy cannot lack an operation;
* :mod:`simulators.runtime.wire` encodes and decodes exactly the declared types.

The real actors (:class:`~simulators.actors.ehr.Ehr`...) satisfy these protocols
structurally; a unit test checks every declared operation exists on the actor with
the same parameters. Arguments a caller passes as ``**match`` are declared with the
type of one matching value. ``acks`` and ``results`` are properties: steps read them
as attributes on the EHR.

What is *not* an actor operation stays in the runtime: ``describe`` (who serves,
with which settings) and ``adopt_exam`` (exams live where the modality runs, and a
caller hands over one it built itself).

The actors layer must not import :mod:`simulators.runtime`; this module imports the
actors' own result types only.
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

from pydicom.dataset import Dataset

from simulators.actors.ehr import AckResult, ReceivedResult
from simulators.actors.modality import CommitmentResult, Exam, PerformResult
from simulators.actors.viewer import ViewerSource
from simulators.dicom.store import StudySummary
from simulators.dicomweb.client import LoadTiming
from simulators.errors import ConfigError
from simulators.world.context import StudyContext
from simulators.world.models import Order, Patient

#: Seconds an operation may take unless its declaration says otherwise.
DEFAULT_TIMEOUT = 120.0
#: One fault entry as a scenario or the trainer writes it: an id or profile name, or
#: a rule mapping (``{"id": ..., "rate": 0.5}``); the actor's parser validates it.
FaultEntry = str | dict[str, str | int | float]
#: One matching value of a viewer search: a value, a list of values, or universal.
SearchValue = str | list[str] | None
#: Matching values a viewer search takes (keyword -> value, a list, or universal).
SearchMatch = dict[str, SearchValue]

F = TypeVar("F", bound=Callable[..., Any])


def operation(*, timeout: float = DEFAULT_TIMEOUT) -> Callable[[F], F]:
    """Mark a protocol method as an actor operation that may take ``timeout`` seconds
    (the control API stops waiting then; the proxy's HTTP read allows a margin)."""
    def mark(function: F) -> F:
        function.__pacsim_timeout__ = float(timeout)  # type: ignore[attr-defined]
        return function
    return mark


# ---------------------------------------------------------------------- the declarations
class EhrOperations(Protocol):
    """An EHR: ADT and orders to the RIS; what it was answered and sent back."""

    @operation()
    def admit(self, patient: Patient) -> AckResult:
        """ADT^A01: the patient is admitted; the RIS's ACK."""
        ...

    @operation()
    def register(self, patient: Patient) -> AckResult:
        """ADT^A04: an outpatient is registered; the RIS's ACK."""
        ...

    @operation()
    def update(self, patient: Patient) -> AckResult:
        """ADT^A08: demographics changed; the RIS's ACK."""
        ...

    @operation()
    def merge(self, surviving: Patient, merged: Patient) -> AckResult:
        """ADT^A40: ``merged`` becomes ``surviving``; the RIS's ACK."""
        ...

    @operation()
    def place_order(self, order: Order, style: str = "ORM") -> AckResult:
        """A new order (ORM^O01 or OMG^O19 by ``style``); the RIS's ACK."""
        ...

    @operation()
    def cancel_order(self, order: Order, style: str = "ORM") -> AckResult:
        """Cancel an order (ORC-1 CA); the RIS's ACK."""
        ...

    @property
    @operation(timeout=10.0)
    def acks(self) -> list[AckResult]:
        """Every ACK so far, oldest first (fault verdicts pair the N-th fired fault
        with it)."""
        ...

    @property
    @operation(timeout=10.0)
    def results(self) -> list[ReceivedResult]:
        """The ORU^R01 reports the EHR received and answered AA, oldest first."""
        ...

    @operation(timeout=10.0)
    def forget_logs(self, keep: int) -> None:
        """Keep only the newest ``keep`` ACKs and results (a sandbox runs all day)."""
        ...


class RisOperations(Protocol):
    """A RIS (order filler): its orders and the worklist it serves."""

    @operation(timeout=10.0)
    def order(self, accession: str) -> Order | None:
        """The order with ``accession``, if the RIS has it."""
        ...

    @operation(timeout=30.0)
    def orders(self) -> list[Order]:
        """Every order, oldest first."""
        ...

    @operation(timeout=30.0)
    def worklist_items(self) -> list[Dataset]:
        """The visible Modality Worklist items."""
        ...

    @operation(timeout=10.0)
    def schedule(self, order: Order) -> Order:
        """Put an order on the worklist directly (no HL7); the stored order."""
        ...

    @operation(timeout=10.0)
    def cancel(self, accession: str) -> Order | None:
        """Take an order off the worklist; the cancelled order, if there was one."""
        ...


class ModalityOperations(Protocol):
    """A modality: worklist, MPPS, C-STORE and storage commitment, step by step or
    whole; and the faults a trainer injects."""

    @operation()
    def query_worklist(self, **match: str | None) -> list[Dataset]:
        """MWL C-FIND for this station and today; keywords set matching keys, None
        makes a key universal."""
        ...

    @operation()
    def mpps_start(self, item: Dataset) -> Exam:
        """N-CREATE MPPS IN PROGRESS for a worklist item; the exam begun."""
        ...

    @operation()
    def mpps_start_unscheduled(self, context: StudyContext) -> Exam:
        """N-CREATE MPPS IN PROGRESS for an exam without a worklist item."""
        ...

    @operation(timeout=600.0)
    def store_study(self, exam: Exam, *, series: int | None = None,
                    per_series: int | None = None) -> list[int]:
        """Build the exam's images and C-STORE them; one status per image."""
        ...

    @operation(timeout=300.0)
    def request_commitment(self, exam: Exam, *, timeout: float | None = None
                           ) -> CommitmentResult:
        """Storage commitment of the exam's images, waiting for the report."""
        ...

    @operation()
    def mpps_complete(self, exam: Exam) -> int:
        """N-SET MPPS COMPLETED; the status."""
        ...

    @operation()
    def mpps_discontinue(self, exam: Exam, *, reason: str = "110514") -> int:
        """N-SET MPPS DISCONTINUED with a reason code; the status."""
        ...

    @operation(timeout=900.0)
    def perform(self, item: Dataset, *, series: int | None = None,
                per_series: int | None = None, outcome: str = "COMPLETED",
                reason: str = "110514") -> PerformResult:
        """A worklist item end to end (MPPS, images, commitment, MPPS final)."""
        ...

    @operation(timeout=10.0)
    def set_faults(self, profile: list[FaultEntry] | None) -> list[str]:
        """Inject ``profile`` from now on (None: as configured); the ids now active."""
        ...


class ArchiveOperations(Protocol):
    """An archive (legacy PACS, built-in target): what it holds."""

    @operation(timeout=30.0)
    def find_studies(self, **match: str) -> list[dict[str, Any]]:
        """Study-level C-FIND semantics without the network."""
        ...

    @operation(timeout=30.0)
    def study_count(self) -> int:
        """How many studies it holds."""
        ...

    @operation(timeout=30.0)
    def studies(self) -> list[StudySummary]:
        """A summary of every study it holds."""
        ...


class ViewerOperations(ArchiveOperations, Protocol):
    """A viewer: an archive (its storage SCP receives C-MOVEs) that searches and loads.
    The viewer's own timeout bounds each search or load; these allow a margin."""

    @operation(timeout=180.0)
    def search_studies(self, source: ViewerSource | None = None, *, via: str = "qido",
                       **match: SearchValue) -> list[dict[str, Any]]:
        """Studies matching DICOM keywords, by QIDO-RS or C-FIND (``via="find"``)."""
        ...

    @operation(timeout=600.0)
    def load_study(self, study_uid: str, via: str = "wado",
                   source: ViewerSource | None = None) -> LoadTiming:
        """Load every image of a study (WADO-RS, C-MOVE or C-GET); its timings."""
        ...


#: The declaration of each actor kind.
DECLARATIONS: dict[str, type] = {
    "ehr": EhrOperations, "ris": RisOperations, "modality": ModalityOperations,
    "archive": ArchiveOperations, "viewer": ViewerOperations,
}


# ---------------------------------------------------------------------- reading them
@dataclass(frozen=True)
class OperationSpec:
    """One declared operation, as the control API and the proxies read it.

    ``params`` maps each parameter to its type; a ``**match`` parameter appears
    under its own name as ``dict[str, <value type>]`` and is named by ``var_keyword``.
    ``attribute`` operations are read, not called (``ehr.acks``).
    """

    name: str
    signature: inspect.Signature
    params: dict[str, Any]
    defaults: dict[str, Any]
    returns: Any
    timeout: float
    var_keyword: str | None = None
    attribute: bool = False
    doc: str = ""


def _spec(name: str, member: Any) -> OperationSpec:
    attribute = isinstance(member, property)
    function = member.fget if attribute else member
    timeout = getattr(function, "__pacsim_timeout__", None)
    if timeout is None:
        raise ConfigError(f"{function.__qualname__} is not marked with @operation()")
    hints = typing.get_type_hints(function)
    signature = inspect.signature(function)
    params: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    var_keyword = None
    resolved = []
    for parameter in list(signature.parameters.values())[1:]:  # without self
        hint = hints.get(parameter.name, Any)
        resolved.append(parameter.replace(annotation=hint))
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = parameter.name
            params[parameter.name] = dict[str, hint]  # type: ignore[valid-type]
            defaults[parameter.name] = {}
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL,
                              inspect.Parameter.POSITIONAL_ONLY):
            raise ConfigError(f"{function.__qualname__}: operations take named arguments only")
        params[parameter.name] = hint
        if parameter.default is not inspect.Parameter.empty:
            defaults[parameter.name] = parameter.default
    returns = hints.get("return", type(None))
    return OperationSpec(name, signature.replace(parameters=resolved, return_annotation=returns),
                         params, defaults, returns, timeout, var_keyword, attribute,
                         inspect.getdoc(function) or "")


@functools.lru_cache(maxsize=None)
def declared_operations(kind: str) -> dict[str, OperationSpec]:
    """The operations declared for actor ``kind`` (its protocol and the protocols it
    extends), by name; ConfigError for a kind without a declaration."""
    protocol = DECLARATIONS.get(kind)
    if protocol is None:
        raise ConfigError(f"no operations are declared for actor kind {kind!r}",
                          kinds=",".join(sorted(DECLARATIONS)))
    found: dict[str, OperationSpec] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (Protocol, typing.Generic, object) or \
                not getattr(klass, "_is_protocol", False):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or not (inspect.isfunction(member)
                                            or isinstance(member, property)):
                continue
            found[name] = _spec(name, member)
    return found


__all__ = ["EhrOperations", "RisOperations", "ModalityOperations", "ArchiveOperations",
           "ViewerOperations", "DECLARATIONS", "OperationSpec", "declared_operations",
           "operation", "DEFAULT_TIMEOUT", "FaultEntry", "SearchMatch", "SearchValue"]
