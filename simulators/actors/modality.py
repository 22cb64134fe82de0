"""The acquisition modality (IHE SWF RAD-5, 6, 8, 10, 7), on the fast DICOM client.

A modality queries the worklist for its own station, then performs one item:
MPPS N-CREATE IN PROGRESS, C-STORE of a study generated from the item (identity
taken from the worklist answer, as a real scanner does), storage commitment
(N-ACTION, then an N-EVENT-REPORT on the same association or on a new one to our
own listener), and MPPS N-SET COMPLETED or DISCONTINUED. Each part is also a public
operation (``mpps_start`` returns the ``Exam`` the others take), so scenarios can
run them separately or stop half-way on purpose.

Requests go through ``FastClient`` (asyncio on pynetdicom's codecs) because the load
engine runs hundreds of modalities in one process. The listener for commitment
reports on a new association is a ``FastServer``, the same acceptor the archive and
the RIS run on, so pacsim has one acceptor stack to harden (and to give TLS) instead
of two that drift apart.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from simulators.actors.base import Actor
from simulators.dicom.address import AeAddress
from simulators.dicom.ae import DEFAULT_MAX_PDU, AeSettings
from simulators.dicom.fast import (
    FIND_MODELS, STORAGE_COMMITMENT, DimseRequest, EventReport, FastClient, FastServer,
    ServerSettings, SupportedContext,
)
from simulators.dicom.fast.requests import (
    DISCONTINUED_REASONS, commitment_request, mpps_create, mpps_final, parse_commitment,
    worklist_identifier,
)
from simulators.errors import ConfigError, PacsimError, ProtocolError, StatusError
from simulators.events import EventBus
from simulators.tls import TlsSettings
from simulators.injection import mutations
from simulators.injection.profile import MODALITY_FAULTS, FaultInjector, parse_faults
from simulators.world.context import StudyContext
from simulators.world.images import build_study
from simulators.world.world import World

MODALITIES = ("CT", "MR", "CR", "DX", "MG", "US")
MPPS_CLASS = "1.2.840.10008.3.1.2.3.3"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # well-known SOP instance, PS3.4 J.3.5
VERIFICATION = "1.2.840.10008.1.1"
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
#: What the listener accepts. Storage Commitment with both roles offered, so a reporter
#: that proposes the SCP role for itself (PS3.4 J.3.3; pacsim's archive, Orthanc) gets
#: it, and one that proposes no role selection at all is still accepted.
LISTENER_CONTEXTS = (
    SupportedContext(STORAGE_COMMITMENT, tuple(UNCOMPRESSED), scu_role=True, scp_role=True),
    SupportedContext(VERIFICATION, tuple(UNCOMPRESSED)),
)
#: N-EVENT-REPORT statuses the listener answers with (PS3.7 10.1.1.1.8).
STATUS_PROCESSING_FAILURE = 0x0110
STATUS_INVALID_ARGUMENT = 0x0115
STATUS_NO_SUCH_SOP_CLASS = 0x0118

#: What ``mpps_complete``/``mpps_discontinue`` return when an ``mpps.orphan`` fault
#: kept the N-SET from being sent at all.
NOT_SENT = -1


@dataclass(frozen=True)
class ModalityConfig:
    """One scanner as the site configured it. Image sizes are small by default."""

    name: str = "modality"
    ae_title: str = "MODALITY"
    modality: str = "CT"
    station_name: str = "CT01"
    host: str = "127.0.0.1"
    port: int = 0  # listener for storage-commitment reports on a new association
    #: TLS on that listener; the peers' own ``tls`` secure our associations to them.
    tls: TlsSettings | None = None
    #: The peers each transaction goes to (None: the modality does not do it). Config
    #: files write them as ``AE@HOST:PORT`` (see :meth:`AeAddress.from_config`).
    worklist: AeAddress | None = None
    mpps: AeAddress | None = None
    store: AeAddress | None = None
    commitment: AeAddress | None = None
    series: int = 1
    per_series: int = 2
    rows: int = 64
    cols: int = 64
    commitment_timeout: float = 30.0
    timeout: float = 30.0
    max_pdu: int = DEFAULT_MAX_PDU
    seed: int = 42
    #: Unattended mode for ``pacsim serve modality``: poll the worklist every this many
    #: seconds and perform each new item (0 = only listen; scenarios drive the modality).
    auto_interval: float = 0.0
    #: Fault profile (``simulators.injection.profile``): ids, profile names or
    #: ``{id, rate, nth, every, seed}`` mappings; the hooks change outgoing requests.
    faults: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", parse_faults(self.faults, allowed=MODALITY_FAULTS,
                                                        actor="modality"))
        if self.modality.upper() not in MODALITIES:
            raise ConfigError("unsupported modality", modality=self.modality,
                              supported=",".join(MODALITIES))
        object.__setattr__(self, "modality", self.modality.upper())
        AeSettings(self.ae_title, max_pdu=self.max_pdu)  # validates AE title and PDU size
        for role in ("worklist", "mpps", "store", "commitment"):
            peer = getattr(self, role)
            if peer is not None and not isinstance(peer, AeAddress):
                raise ConfigError(f"{role} peer must be an AeAddress (AE@HOST:PORT in a "
                                  "config file)", peer=repr(peer))
        if min(self.series, self.per_series, self.rows, self.cols) < 1:
            raise ConfigError("series, per_series, rows and cols must be positive")
        if self.commitment_timeout <= 0 or self.timeout <= 0:
            raise ConfigError("timeouts must be positive")
        if self.auto_interval < 0:
            raise ConfigError("auto_interval must be 0 (off) or a number of seconds")
        if self.auto_interval and self.worklist is None:
            raise ConfigError("auto_interval needs a worklist peer to poll")


@dataclass
class Exam:
    """One performed procedure step in progress: what the later parts need."""

    context: StudyContext
    mpps_uid: str
    item: Dataset
    started: dt.datetime
    images: list[Dataset] = field(default_factory=list)
    store_statuses: list[int] = field(default_factory=list)
    create_status: int = 0x0000
    mpps_status: str = "IN PROGRESS"
    commitments: int = 0
    #: Extra exchanges fault hooks made: (fault id, status of that exchange).
    fault_statuses: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class CommitmentResult:
    """A storage commitment outcome (PS3.4 J.3.3)."""

    transaction_uid: str
    action_status: int
    committed: tuple[str, ...] = ()
    failed: tuple[tuple[str, int], ...] = ()  # (SOP instance, Failure Reason)
    same_association: bool | None = None  # None: no report arrived

    @property
    def complete(self) -> bool:
        return self.same_association is not None and not self.failed


@dataclass(frozen=True)
class PerformResult:
    """What ``perform`` did, step by step."""

    study_uid: str
    mpps_uid: str
    performed_step_id: str
    outcome: str
    store_statuses: tuple[int, ...]
    commitment: CommitmentResult | None
    mpps_create_status: int
    mpps_final_status: int

    @property
    def images(self) -> int:
        return len(self.store_statuses)


class Modality(Actor):
    """Simulated acquisition modality; see the module docstring for the workflow."""

    kind = "modality"

    def __init__(self, config: ModalityConfig, *, world: World | None = None,
                 events: EventBus | None = None) -> None:
        super().__init__(config.name, events)
        self.config = config
        self.world = world or World(config.seed)
        self.port = config.port
        self._server: FastServer | None = None
        self._reports: dict[str, EventReport] = {}
        self._reports_changed = threading.Condition()
        self._attempts: dict[str, int] = {}
        #: Which faults fire on which exchange (deterministic; ``faults.fired`` logs them).
        self.faults = FaultInjector(config.faults)

    # -- lifecycle ---------------------------------------------------------------------
    def _start(self) -> None:
        ae = AeSettings(self.config.ae_title, max_pdu=self.config.max_pdu)
        # The handler never blocks (it files the report and returns), so one worker thread.
        settings = ServerSettings.for_ae(ae, LISTENER_CONTEXTS, host=self.config.host,
                                         port=self.config.port, workers=1, tls=self.config.tls)
        server = FastServer(settings, events=self.events, actor=self.name)
        server.handle("N-EVENT-REPORT", self._on_event_report)
        server.start()
        self._server = server
        self.port = server.port

    def _stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def describe(self) -> str:
        return (f"{self.config.modality} {self.config.ae_title} station {self.config.station_name}"
                f" listening on {self.config.host}:{self.port}")

    def set_faults(self, profile: Iterable[Any] | None) -> list[str]:
        """Inject ``profile`` (fault ids, profile names, rule mappings) from now on;
        ``None`` goes back to the configured faults. The ids now active.

        Why a method: a trainer changes a room's faults while it runs, in-process or
        in a container (the control API calls this), and the log of what already
        fired is kept so fault verdicts and remote callers keep counting from it."""
        rules = self.config.faults if profile is None else parse_faults(
            list(profile), allowed=MODALITY_FAULTS, actor=self.name)
        self.faults = FaultInjector(tuple(rules), fired=self.faults.fired)
        return [rule.id for rule in rules]

    def run_until(self, stop: threading.Event) -> None:
        """Unattended scanner: poll the worklist and perform every new item until ``stop``.

        Used by ``pacsim serve modality`` so a container behaves like a busy room.
        A failing peer is logged and retried at the next poll, never fatal: a real
        scanner also keeps running when the RIS is briefly away.
        """
        if not self.config.auto_interval:
            stop.wait()
            return
        done: set[str] = set()
        while not stop.is_set():
            try:
                for item in self.query_worklist():
                    key = str(item.get("AccessionNumber", "")) or str(item.get("StudyInstanceUID", ""))
                    if key in done or stop.is_set():
                        continue
                    done.add(key)
                    result = self.perform(item)
                    self.log.info("performed %s: %d images, MPPS %s", key, result.images,
                                  result.outcome)
            except PacsimError as exc:
                self.log.warning("unattended cycle failed, retrying in %.1fs: %s",
                                 self.config.auto_interval, exc)
            stop.wait(self.config.auto_interval)

    # -- RAD-5 worklist ------------------------------------------------------------------
    def query_worklist(self, **match: Any) -> list[Dataset]:
        """MWL C-FIND; by default for our station AE title and today's date.

        Keyword arguments set matching keys (``PatientID="X"``, ``Modality="CT"``);
        a value of ``None`` makes a key universal (``ScheduledStationAETitle=None``).
        """
        identifier = worklist_identifier(self.config.ae_title, dt.date.today(), match)
        identifier = mutations.apply(mutations.MWL, self.faults.pick("mwl.c-find"), identifier)
        with self._client("worklist", [(FIND_MODELS["worklist"], UNCOMPRESSED)]) as client:
            status, matches = client.find(identifier, "worklist")
        if status != 0x0000:
            raise StatusError("worklist query failed", status=status,
                              called_ae=self._peer("worklist").ae_title)
        return matches

    # -- the whole procedure ---------------------------------------------------------------
    def perform(self, item: Dataset, *, series: int | None = None, per_series: int | None = None,
                outcome: str = "COMPLETED", reason: str = "110514") -> PerformResult:
        """Perform a worklist item end to end (RAD-6, 8, 10, 7).

        ``DISCONTINUED`` stops after MPPS IN PROGRESS (no images, as when the wrong
        worklist entry was selected) and sends the discontinuation reason code.
        """
        outcome = outcome.upper()
        if outcome not in ("COMPLETED", "DISCONTINUED"):
            raise ConfigError("outcome must be COMPLETED or DISCONTINUED", outcome=outcome)
        exam = self.mpps_start(item)
        commitment = None
        if outcome == "COMPLETED":
            self.store_study(exam, series=series, per_series=per_series)
            # Many scanners run without storage commitment configured: skip it then.
            if self.config.commitment is not None:
                commitment = self.request_commitment(exam)
            final_status = self.mpps_complete(exam)
        else:
            final_status = self.mpps_discontinue(exam, reason=reason)
        return PerformResult(exam.context.study_uid, exam.mpps_uid, exam.context.performed_step_id,
                             outcome, tuple(exam.store_statuses), commitment,
                             exam.create_status, final_status)

    # -- RAD-6 / RAD-7 MPPS ------------------------------------------------------------------
    def mpps_start(self, item: Dataset) -> Exam:
        """N-CREATE the MPPS IN PROGRESS for a worklist item; raises on a failure status."""
        started = dt.datetime.now().replace(microsecond=0)
        study_uid = str(item.get("StudyInstanceUID", ""))
        attempt = self._attempts.get(study_uid, 0)  # a repeated exam gets a new MPPS UID
        self._attempts[study_uid] = attempt + 1
        context = StudyContext.from_worklist(item, self.world, station_name=self.config.station_name,
                                             attempt=attempt, performed_start=started)
        mpps_uid = context.mpps_uid or generate_uid()
        attributes = mpps_create(context, item, self.config.ae_title, started)
        faults = self.faults.pick("modality.mpps.n-create")
        attributes = mutations.apply(mutations.MPPS_CREATE, faults, attributes)
        duplicates: list[tuple[str, int]] = []
        with self._client("mpps", [(MPPS_CLASS, UNCOMPRESSED)]) as client:
            result = client.n_create(MPPS_CLASS, mpps_uid, attributes)
            if "mpps.create-duplicate" in faults and result.ok:
                again = client.n_create(MPPS_CLASS, result.instance_uid or mpps_uid, attributes)
                duplicates.append(("mpps.create-duplicate", again.status))
        if not result.ok:
            raise StatusError("MPPS N-CREATE refused", status=result.status,
                              comment=result.comment or None, sop_instance=mpps_uid)
        return Exam(context, result.instance_uid or mpps_uid, item, started,
                    create_status=result.status, fault_statuses=duplicates)

    def mpps_start_unscheduled(self, context: StudyContext) -> Exam:
        """N-CREATE IN PROGRESS for an exam with no worklist item (an emergency): the
        scheduling keys stay empty. Here, not in a step, so the N-CREATE leaves from
        wherever the modality runs (its MPPS peer may be a name only its network knows)."""
        started = context.performed_step_start
        mpps_uid = context.mpps_uid or self.world.uid("mpps", context.study_uid)
        item = Dataset()
        attributes = mpps_create(context, item, self.config.ae_title, started)
        faults = self.faults.pick("modality.mpps.n-create")
        attributes = mutations.apply(mutations.MPPS_CREATE, faults, attributes)
        with self._client("mpps", [(MPPS_CLASS, UNCOMPRESSED)]) as client:
            result = client.n_create(MPPS_CLASS, mpps_uid, attributes)
        if not result.ok:
            raise StatusError("MPPS N-CREATE refused", status=result.status,
                              comment=result.comment or None, sop_instance=mpps_uid)
        return Exam(context, result.instance_uid or mpps_uid, item, started,
                    create_status=result.status)

    def mpps_complete(self, exam: Exam) -> int:
        """N-SET COMPLETED with the Performed Series Sequence of the stored images."""
        return self._mpps_set(exam, "COMPLETED", None)

    def mpps_discontinue(self, exam: Exam, *, reason: str = "110514") -> int:
        """N-SET DISCONTINUED with a reason code (DCM 110514 "Incorrect worklist entry
        selected" by default; see ``DISCONTINUED_REASONS``)."""
        if reason not in DISCONTINUED_REASONS:
            raise ConfigError("unknown discontinuation reason", reason=reason,
                              known=",".join(DISCONTINUED_REASONS))
        return self._mpps_set(exam, "DISCONTINUED", reason)

    def _mpps_set(self, exam: Exam, status: str, reason: str | None) -> int:
        faults = self.faults.pick("modality.mpps.n-set")
        if "mpps.orphan" in faults:
            return NOT_SENT  # the scanner "forgets" to finish: IN PROGRESS forever
        if "mpps.discontinued" in faults:
            status, reason = "DISCONTINUED", reason or "110514"
        modification = mpps_final(exam.context, exam.images, status, self.config.ae_title,
                                  dt.datetime.now().replace(microsecond=0), reason)
        modification = mutations.apply(mutations.MPPS_SET, faults, modification)
        uid = generate_uid() if "mpps.set-unknown" in faults else exam.mpps_uid
        with self._client("mpps", [(MPPS_CLASS, UNCOMPRESSED)]) as client:
            result = client.n_set(MPPS_CLASS, uid, modification)
            if "mpps.set-after-final" in faults and result.ok:
                again = client.n_set(MPPS_CLASS, uid, modification)
                exam.fault_statuses.append(("mpps.set-after-final", again.status))
        if result.ok:
            exam.mpps_status = str(modification.get("PerformedProcedureStepStatus", status))
        return result.status

    # -- RAD-8 store ---------------------------------------------------------------------------
    def build_images(self, exam: Exam, *, series: int | None = None,
                     per_series: int | None = None) -> list[Dataset]:
        """Generate the study's images from the exam's context (deterministic)."""
        exam.images = build_study(exam.context, series=series or self.config.series,
                                  per_series=per_series or self.config.per_series,
                                  rows=self.config.rows, cols=self.config.cols)
        return exam.images

    def store_study(self, exam: Exam, *, series: int | None = None,
                    per_series: int | None = None) -> list[int]:
        """Generate (unless already built) and C-STORE the images; returns the statuses."""
        if not exam.images:
            self.build_images(exam, series=series, per_series=per_series)
        exam.store_statuses = self.store_datasets(exam.images)
        return exam.store_statuses

    def store_datasets(self, datasets: list[Dataset]) -> list[int]:
        """C-STORE datasets on one association (contexts from their SOP classes)."""
        contexts = [(sop_class, [ExplicitVRLittleEndian])
                    for sop_class in dict.fromkeys(str(ds.SOPClassUID) for ds in datasets)]
        if not self.faults:
            with self._client("store", contexts) as client:
                return client.store_many(datasets)
        statuses = []
        with self._client("store", contexts) as client:
            for ds in datasets:  # the command keeps the original class (sop-mismatch)
                faults = self.faults.pick("store.c-store")
                sent = mutations.apply(mutations.STORE, faults, ds)
                statuses.append(client.store(sent, sop_class=str(ds.SOPClassUID)))
                if "store.duplicate-uid-different-content" in faults:
                    statuses.append(client.store(mutations.duplicate_different_content(ds)))
        return statuses

    def store_files(self, paths: Iterable[str | Path]) -> list[int]:
        """C-STORE Part 10 files byte for byte (the benchmark's path). Like storescu,
        it reads every file's meta first to propose one context per SOP class/syntax."""
        paths = list(paths)
        metas = (read_file_meta_info(path) for path in paths)
        contexts = [(sop_class, [syntax]) for sop_class, syntax in dict.fromkeys(
            (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)) for meta in metas)]
        with self._client("store", contexts) as client:
            return client.store_files(paths)

    # -- RAD-10 storage commitment ---------------------------------------------------------
    def request_commitment(self, exam: Exam, *, timeout: float | None = None) -> CommitmentResult:
        """N-ACTION for the stored images, then wait for the N-EVENT-REPORT on the same
        association or on our listener, whichever comes first (bounded by ``timeout``)."""
        exam.commitments += 1
        transaction_uid = self.world.uid("commitment-transaction", exam.mpps_uid, exam.commitments)
        references = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in exam.images]
        deadline = time.monotonic() + (timeout or self.config.commitment_timeout)
        with self._client("commitment", [(STORAGE_COMMITMENT, UNCOMPRESSED)]) as client:
            action = client.n_action(STORAGE_COMMITMENT, COMMITMENT_INSTANCE, 1,
                                     commitment_request(transaction_uid, references))
            if not action.ok:
                return CommitmentResult(transaction_uid, action.status)
            report = self._wait_same_association(client, transaction_uid, deadline)
        same = report is not None
        if report is None:
            report = self._wait_listener(transaction_uid, deadline)
        if report is None:
            return CommitmentResult(transaction_uid, action.status)
        committed, failed = parse_commitment(report.dataset)
        return CommitmentResult(transaction_uid, action.status, committed, failed, same)

    def _wait_same_association(self, client: FastClient, transaction_uid: str,
                               deadline: float) -> EventReport | None:
        """Poll the open association in short slices so a report that arrives on the
        listener instead is noticed too; a peer releasing the association ends it."""
        for _ in range(100_000):  # bounded in count as well as by the deadline
            if time.monotonic() >= deadline or transaction_uid in self._reports:
                return None
            try:
                report = client.poll_event_report(min(0.1, max(deadline - time.monotonic(), 0.01)))
            except ProtocolError:
                return None  # association ended: the report can still come on the listener
            if report is not None and _transaction_of(report) == transaction_uid:
                return report
        return None

    def _wait_listener(self, transaction_uid: str, deadline: float) -> EventReport | None:
        with self._reports_changed:
            self._reports_changed.wait_for(lambda: transaction_uid in self._reports,
                                           timeout=max(deadline - time.monotonic(), 0))
        return self._take_report(transaction_uid)

    def _take_report(self, transaction_uid: str) -> EventReport | None:
        with self._reports_changed:
            return self._reports.pop(transaction_uid, None)

    async def _on_event_report(self, request: DimseRequest) -> int:
        """Listener: a commitment result on a new association (PS3.4 J.3.3).

        Any Transaction UID is filed, also one nobody waits for yet: a report may
        come before ``request_commitment`` starts waiting on the listener (it polls
        the requesting association first), and a late one for a request that timed
        out is harmless. The waiter takes its report by Transaction UID.
        """
        try:
            report = EventReport(str(request.get("AffectedSOPClassUID", "")),
                                 str(request.get("AffectedSOPInstanceUID", "")),
                                 int(request.get("EventTypeID")), request.dataset())
            transaction_uid = _transaction_of(report)
        except Exception:  # noqa: BLE001 - a malformed report gets a status, never a crash
            self.log.warning("undecodable N-EVENT-REPORT from %s", request.calling_ae)
            return STATUS_PROCESSING_FAILURE
        request.event.detail.update(via="new", event_type=report.event_type)
        if report.sop_class != STORAGE_COMMITMENT:
            return STATUS_NO_SUCH_SOP_CLASS
        if not transaction_uid:
            return STATUS_INVALID_ARGUMENT
        request.event.detail["transaction_uid"] = transaction_uid
        with self._reports_changed:
            self._reports[transaction_uid] = report
            self._reports_changed.notify_all()
        return 0x0000

    # -- helpers -------------------------------------------------------------------------------
    def _peer(self, role: str) -> AeAddress:
        peer = getattr(self.config, role)
        if peer is None:
            raise ConfigError(f"modality {self.name} has no {role} peer configured")
        return peer

    def _client(self, role: str, contexts: list[tuple[str, list[str]]]) -> FastClient:
        peer = self._peer(role)
        client = FastClient(actor=self.name, events=self.events, max_pdu=self.config.max_pdu,
                            dimse_timeout=self.config.timeout)
        try:
            client.connect(peer.host, peer.port, self.config.ae_title, peer.ae_title, contexts,
                           timeout=self.config.timeout, tls=peer.tls)
        except BaseException:
            client.close()
            raise
        return client


def _transaction_of(report: EventReport) -> str:
    return str(report.dataset.get("TransactionUID", "")) if report.dataset is not None else ""


__all__ = ["ModalityConfig", "Modality", "Exam", "PerformResult", "CommitmentResult",
           "MODALITIES", "DISCONTINUED_REASONS", "NOT_SENT"]
