"""The archive actor: the legacy PACS to migrate from, and the built-in reference target.

One pynetdicom acceptor serving Verification, Storage (every storage SOP class
pynetdicom knows, any transfer syntax, stored as received), Query/Retrieve FIND,
MOVE and GET in the Patient and Study Root models, the Storage Commitment Push
Model SCP and, optionally, an MPPS SCP. Every request is one exchange event.

What the archive promises (and the tests check over the wire):

* a C-STORE success is sent only after :meth:`DicomStore.put` made the object
  durable and indexed; a store that fails answers a failure status, never success;
* bad identifiers answer 0xA900, unknown move destinations 0xA801, failed
  sub-operations 0xB000 with the Failed SOP Instance UID List (pynetdicom's Q/R
  service class builds the pending/final responses from what the handlers yield);
* a malformed PDU, an abort or a disconnect ends only that association.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep, StorageCommitmentPushModel, Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from simulators.actors.base import Actor
from simulators.dicom.ae import NODELAY_HANDLERS, AeSettings, make_ae, start_server
from simulators.dicom.commitment import CommitmentScp
from simulators.dicom.mpps import MppsManager
from simulators.dicom.qr import (
    MODEL_OF_SOP_CLASS, STATUS_UNABLE_TO_PROCESS, check_identifier, match_instances,
    status_of, storage_contexts, vr_of,
)
from simulators.dicom.store import DicomStore, StoredInstance, StudySummary
from simulators.errors import ConfigError, ProtocolError, StoreError
from simulators.events import EventBus

STATUS_CANNOT_UNDERSTAND = 0xC210
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_SOP_MISMATCH = 0xA900
STATUS_PENDING = 0xFF00
STATUS_CANCELLED = 0xFE00
REPLY_MODES = ("same", "new", "auto")


@dataclass(frozen=True)
class ArchiveConfig:
    """How the archive appears on the network. ``storage_dir`` None = a temp dir
    removed on stop; ``destinations`` maps AE titles to (host, port) for C-MOVE and
    for storage commitment reports sent on a new association."""

    name: str = "archive"
    host: str = "127.0.0.1"
    port: int = 0
    ae_title: str = "PACSIM_ARC"
    storage_dir: Path | None = None
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    allowed_calling: frozenset[str] = frozenset()
    max_associations: int = 50
    commitment_reply: str = "auto"
    mpps: bool = False
    #: Seconds pynetdicom's per-association reader sleeps when idle (its default is
    #: 0.001). Each C-STORE waits for that poll a few times, so on one association
    #: the default caps ingest near 300 objects/s before any work is done; 0.0002
    #: measured ~1.4x faster for ~10% more CPU per open association.
    poll_interval: float = 0.0002

    def __post_init__(self) -> None:
        if self.commitment_reply not in REPLY_MODES:
            raise ConfigError("commitment_reply must be same, new or auto",
                              commitment_reply=self.commitment_reply)
        if not 0 <= self.poll_interval <= 0.01:
            raise ConfigError("poll_interval must be between 0 and 0.01 s",
                              poll_interval=self.poll_interval)
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be between 0 and 65535", port=self.port)
        for title, address in self.destinations.items():
            if len(address) != 2 or not 0 < int(address[1]) <= 65535:
                raise ConfigError("destination must be (host, port)", destination=title)


def _peer(event: evt.Event) -> tuple[str, str]:
    requestor = event.assoc.requestor
    return f"{requestor.address}:{requestor.port}", str(requestor.ae_title).strip()


class Archive(Actor):
    """Durable Storage/Query/Retrieve/Commitment SCP on loopback or any interface."""

    kind = "archive"

    def __init__(self, config: ArchiveConfig | None = None, events: EventBus | None = None) -> None:
        self.config = config or ArchiveConfig()
        super().__init__(self.config.name, events)
        self._server: ThreadedAssociationServer | None = None
        self._store: DicomStore | None = None
        self._temp_dir: Path | None = None
        self._commitment: CommitmentScp | None = None
        self.mpps: MppsManager | None = None
        self.port: int = self.config.port

    # -- lifecycle -------------------------------------------------------------------
    def _start(self) -> None:
        config = self.config
        root = config.storage_dir
        if root is None:
            self._temp_dir = root = Path(tempfile.mkdtemp(prefix="pacsim-archive-"))
        self._store = DicomStore(root)
        ae = make_ae(AeSettings(ae_title=config.ae_title,
                                maximum_associations=config.max_associations,
                                allowed_calling=frozenset(config.allowed_calling)))
        ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            # both roles: storescu sends without role selection, getscu asks for SCP role
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES,
                                     scu_role=True, scp_role=True)
        for sop_class in MODEL_OF_SOP_CLASS:
            ae.add_supported_context(sop_class)
        ae.add_supported_context(StorageCommitmentPushModel)
        self._commitment = CommitmentScp(self._store, ae, reply_mode=config.commitment_reply,  # type: ignore[arg-type]
                                         destinations=dict(config.destinations),
                                         events=self.events, actor=self.name)
        handlers: list[tuple[Any, Any]] = [
            (evt.EVT_CONN_OPEN, self._on_connection),
            (evt.EVT_C_ECHO, self._on_echo), (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find), (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_GET, self._on_get), (evt.EVT_N_ACTION, self._commitment.handle_n_action),
        ]
        if config.mpps:
            self.mpps = MppsManager()
            ae.add_supported_context(ModalityPerformedProcedureStep)
            handlers += [(evt.EVT_N_CREATE, self._on_mpps("dicom.n-create", self.mpps.handle_n_create)),
                         (evt.EVT_N_SET, self._on_mpps("dicom.n-set", self.mpps.handle_n_set))]
        try:
            self._server = start_server(ae, config.host, config.port, handlers)
        except ConfigError:
            self._release_storage()
            raise
        self.port = self._server.server_address[1]

    def _stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._commitment is not None:
            self._commitment.join()
        self._release_storage()

    def _release_storage(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def describe(self) -> str:
        return f"{self.config.ae_title} on {self.config.host}:{self.port}"

    # -- operations for tests and scenarios --------------------------------------------
    @property
    def store(self) -> DicomStore:
        if self._store is None:
            raise ConfigError("the archive is not running", actor=self.name)
        return self._store

    def study_count(self) -> int:
        return self.store.stats()["studies"]

    def studies(self) -> list[StudySummary]:
        return self.store.studies()

    def find_studies(self, **match: str) -> list[dict[str, Any]]:
        """Study-level C-FIND semantics without the network: ``find_studies(PatientID="X")``.

        Keys are DICOM keywords with C-FIND matching values (wildcards, ranges);
        every study comes back as a dict of the usual study attributes.
        """
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        returned = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber",
                    "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                    "NumberOfStudyRelatedInstances")
        for keyword in (*returned, *match):
            try:
                identifier.add_new(keyword, vr_of(keyword), match.get(keyword))
            except ProtocolError as exc:
                raise ConfigError(str(exc), key=keyword) from exc
        return [{e.keyword: _plain(e.value) for e in found if e.keyword != "QueryRetrieveLevel"}
                for found in self.store.find("STUDY", identifier, root="STUDY")]

    # -- handlers ----------------------------------------------------------------------
    def _on_connection(self, event: evt.Event) -> None:
        """Shorten pynetdicom's idle poll for this association (see ``poll_interval``)."""
        dul = event.assoc.dul
        if hasattr(dul, "_run_loop_delay"):
            dul._run_loop_delay = self.config.poll_interval

    def _on_echo(self, event: evt.Event) -> int:
        peer, calling = _peer(event)
        with self.events.exchange("dicom.c-echo", self.name, peer, calling_ae=calling) as x:
            x.status = "0x0000"
        return 0x0000

    def _on_store(self, event: evt.Event) -> Dataset:
        """C-STORE: make the object durable and indexed, *then* answer."""
        peer, calling = _peer(event)
        with self.events.exchange("dicom.c-store", self.name, peer, calling_ae=calling) as x:
            status, comment = self._store_one(event, calling, x.detail)
            x.status = f"0x{status:04X}"
            x.outcome = "ok" if status == 0 else "failed"
            x.bytes = len(event.request.DataSet.getbuffer()) if event.request.DataSet else 0
        reply = Dataset()
        reply.Status = status
        if comment:
            reply.ErrorComment = comment[:64]
        return reply

    def _store_one(self, event: evt.Event, calling: str, detail: dict[str, Any]) -> tuple[int, str]:
        try:
            ds = event.dataset
            encoded = event.request.DataSet.getvalue()
            sop_class = str(ds.get("SOPClassUID", "") or "")
            sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        except Exception as exc:  # noqa: BLE001 - undecodable data set: answer, don't crash
            return STATUS_CANNOT_UNDERSTAND, f"data set cannot be decoded: {exc}"
        detail["sop_instance_uid"] = sop_uid
        if sop_class and sop_class != str(event.request.AffectedSOPClassUID):
            return STATUS_SOP_MISMATCH, "SOP Class UID differs from the request's"
        if sop_uid and sop_uid != str(event.request.AffectedSOPInstanceUID):
            return STATUS_SOP_MISMATCH, "SOP Instance UID differs from the request's"
        try:
            outcome = self.store.put(ds, transfer_syntax=event.context.transfer_syntax,
                                     calling_ae=calling, encoded=encoded)
        except StoreError as exc:
            self.log.error("store failed: %s", exc)
            return STATUS_OUT_OF_RESOURCES, "object could not be stored"
        if outcome.duplicate:
            detail["duplicate"] = True
        return outcome.status, outcome.comment if not outcome.ok else ""

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        peer, calling = _peer(event)
        sop_class = str(event.request.AffectedSOPClassUID)
        with self.events.exchange("dicom.c-find", self.name, peer, calling_ae=calling) as x:
            try:
                identifier = event.identifier
                level = check_identifier(identifier, sop_class)
                matches = self.store.find(level, identifier, root=MODEL_OF_SOP_CLASS[sop_class])
            except ProtocolError as exc:
                x.outcome, x.status, x.detail["error"] = "failed", f"0x{status_of(exc):04X}", str(exc)
                yield status_of(exc), None
                return
            except Exception as exc:  # noqa: BLE001 - undecodable identifier, index error
                x.outcome, x.status, x.detail["error"] = "failed", "0xC000", str(exc)
                yield STATUS_UNABLE_TO_PROCESS, None
                return
            x.detail["level"], count = level, 0
            try:
                for match in matches:
                    if event.is_cancelled:
                        x.status = "0xFE00"
                        yield STATUS_CANCELLED, None
                        return
                    count += 1
                    yield STATUS_PENDING, match
            except StoreError as exc:
                x.outcome, x.status, x.detail["error"] = "failed", "0xC000", str(exc)
                yield STATUS_UNABLE_TO_PROCESS, None
                return
            x.status, x.detail["matches"] = "0x0000", count

    def _retrieve_set(self, event: evt.Event) -> list[StoredInstance]:
        """Instances a C-MOVE/C-GET selects; raises ProtocolError for bad identifiers."""
        try:
            identifier = event.identifier
        except Exception as exc:  # noqa: BLE001
            raise ProtocolError("identifier cannot be decoded", status="0xA900") from exc
        level = check_identifier(identifier, str(event.request.AffectedSOPClassUID), retrieve=True)
        return match_instances(self.store, level, identifier)

    def _sub_operations(self, event: evt.Event, instances: list[StoredInstance],
                        x: Any) -> Iterator[tuple[int, Dataset | None]]:
        """Yield each stored object for pynetdicom to send; cancels answer 0xFE00."""
        for item in instances:
            if event.is_cancelled:
                x.status = "0xFE00"
                yield STATUS_CANCELLED, None
                return
            try:
                ds = dcmread(item.path)
            except (OSError, ValueError) as exc:
                # a stub fails the C-STORE sub-operation and lands in the failed UID list
                self.log.error("cannot read %s: %s", item.path, exc)
                ds = Dataset()
                ds.SOPInstanceUID = item.sop_instance_uid
            yield STATUS_PENDING, ds

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        peer, calling = _peer(event)
        target = (event.move_destination or "").strip()
        with self.events.exchange("dicom.c-move", self.name, peer, calling_ae=calling,
                                  destination=target) as x:
            address = self.config.destinations.get(target)
            if address is None:
                x.outcome, x.status = "failed", "0xA801"
                yield None, None
                return
            try:
                instances = self._retrieve_set(event)
                failure = None
            except ProtocolError as exc:
                instances, failure = [], exc
            # pynetdicom associates with the destination even before a failure is
            # yielded, so there is always at least one context to propose
            contexts = storage_contexts(instances) or [build_context(Verification)]
            yield address[0], int(address[1]), {
                "contexts": contexts, "evt_handlers": list(NODELAY_HANDLERS)}
            if failure is not None:
                x.outcome, x.status = "failed", f"0x{status_of(failure):04X}"
                yield 1
                yield status_of(failure), None
                return
            x.detail["instances"] = len(instances)
            yield len(instances)
            yield from self._sub_operations(event, instances, x)

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        peer, calling = _peer(event)
        with self.events.exchange("dicom.c-get", self.name, peer, calling_ae=calling) as x:
            try:
                instances = self._retrieve_set(event)
            except ProtocolError as exc:
                x.outcome, x.status = "failed", f"0x{status_of(exc):04X}"
                yield 1
                yield status_of(exc), None
                return
            x.detail["instances"] = len(instances)
            yield len(instances)
            yield from self._sub_operations(event, instances, x)

    def _on_mpps(self, kind: str, handler: Any) -> Any:
        def emit(event: evt.Event) -> Any:
            peer, calling = _peer(event)
            with self.events.exchange(kind, self.name, peer, calling_ae=calling) as x:
                status, reply = handler(event)
                code = int(status.Status)
                x.status, x.outcome = f"0x{code:04X}", "ok" if code == 0 else "failed"
                return status, reply
        return emit


def _plain(value: Any) -> Any:
    """pydicom values as plain Python for scenario expectations."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return str(value)


__all__ = ["Archive", "ArchiveConfig"]
