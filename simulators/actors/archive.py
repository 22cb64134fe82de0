"""The archive actor: the legacy PACS to migrate from, and the built-in reference target.

One fast asyncio acceptor (:class:`~simulators.dicom.fast.server.FastServer`)
serving Verification, Storage (every storage SOP class pynetdicom knows, any
transfer syntax, stored as received), Query/Retrieve FIND, MOVE and GET in the
Patient and Study Root models, the Storage Commitment Push Model SCP and,
optionally, an MPPS SCP. Every request is one exchange event (the acceptor opens
it; the handlers here add detail).

Why the fast acceptor: the archive's durable ingest must keep up with Orthanc's
(benchmarks/archive_ingest.py); pynetdicom's reactor alone capped a do-nothing
C-STORE handler near 325 objects/s. A C-STORE here never decodes the whole data
set: the index attributes are read from the received bytes (groups 0008-0020
only) and those same bytes are written behind a Part 10 header.

What the archive promises (and the tests check over the wire):

* a C-STORE success is sent only after :meth:`DicomStore.put_encoded` made the
  object durable and indexed; a store that fails answers a failure status;
* bad identifiers answer 0xA900, unknown move destinations 0xA801, failed
  sub-operations 0xB000 with the Failed SOP Instance UID List;
* a malformed PDU, an abort or a disconnect ends only that association.

With ``dicomweb_port`` set, the same store is also served over DICOMweb
(:mod:`simulators.dicomweb.server`: QIDO-RS, WADO-RS, STOW-RS); STOW-RS writes go
through the same durable ``put_encoded`` path as a C-STORE.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary
from pynetdicom import ALL_TRANSFER_SYNTAXES, DEFAULT_TRANSFER_SYNTAXES, AllStoragePresentationContexts
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep, StorageCommitmentPushModel, Verification,
)

from simulators.actors.base import Actor
from simulators.dicom.ae import DEFAULT_MAX_PDU
from simulators.dicom.commitment import CommitmentScp
from simulators.dicom.fast import suboperations
from simulators.dicom.fast.server import DimseRequest, FastServer, Reply, ServerSettings, SupportedContext
from simulators.dicom.mpps import MppsManager
from simulators.dicom.qr import (
    MODEL_OF_SOP_CLASS, STATUS_IDENTIFIER_MISMATCH, STATUS_UNABLE_TO_PROCESS, check_identifier,
    match_instances, run_find, status_of, vr_of,
)
from simulators.dicom.store import DicomStore, StoreOutcome, StudySummary
from simulators.dicomweb.server import DicomWebServer
from simulators.errors import ConfigError, ProtocolError, StatusError, StoreError
from simulators.events import EventBus
from simulators.tls import TlsSettings

STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANCELLED = 0xFE00
REPLY_MODES = ("same", "new", "auto")
#: Studies whose "stored study" line was written; forgotten in bulk past this many.
STUDIES_REMEMBERED = 10_000


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
    max_pdu: int = DEFAULT_MAX_PDU
    #: An association with no traffic and no work in progress is aborted after this.
    idle_timeout: float = 60.0
    #: Threads for blocking work (fsync, SQLite); associations beyond this queue.
    workers: int = 8
    #: DICOMweb (QIDO/WADO/STOW-RS) on this port of ``host``; 0 = a free port, None = off.
    dicomweb_port: int | None = None
    #: Store objects with malformed UIDs (``1.02.3``, ``1.2.abc``) as a legacy PACS did;
    #: False (the reference target) refuses them with 0xA900 (store.py says why).
    lenient_uids: bool = False
    #: DICOM TLS on ``port`` (cert, key, ca, profile, require_client_cert); None = plain.
    tls: TlsSettings | None = None
    #: TLS for our associations to ``destinations`` (C-MOVE sub-operations, commitment
    #: reports on a new association); None = plain TCP.
    destination_tls: TlsSettings | None = None

    def __post_init__(self) -> None:
        if self.commitment_reply not in REPLY_MODES:
            raise ConfigError("commitment_reply must be same, new or auto",
                              commitment_reply=self.commitment_reply)
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be between 0 and 65535", port=self.port)
        if not isinstance(self.lenient_uids, bool):
            raise ConfigError("lenient_uids must be true or false", lenient_uids=self.lenient_uids)
        if self.dicomweb_port is not None and not 0 <= self.dicomweb_port <= 65535:
            raise ConfigError("dicomweb_port must be between 0 and 65535",
                              dicomweb_port=self.dicomweb_port)
        for title, address in self.destinations.items():
            if len(address) != 2 or not 0 < int(address[1]) <= 65535:
                raise ConfigError("destination must be (host, port)", destination=title)


#: Storage SOP classes PS3.6 has since retired (US, NM, XA bi-plane, trial SR ...):
#: pynetdicom's storage list leaves them out, but a legacy PACS holds such objects.
RETIRED_STORAGE = tuple(uid for uid, (_name, kind, _, status, _) in UID_dictionary.items()
                        if kind == "SOP Class" and status == "Retired"
                        and uid.startswith("1.2.840.10008.5.1.4.1.1."))


def supported_contexts(mpps: bool, legacy: bool = False) -> tuple[SupportedContext, ...]:
    """What the archive accepts: storage in both roles (storescu sends without role
    selection, getscu asks for our SCU role), Q/R, commitment, optionally MPPS.

    ``legacy`` (a lenient archive) also accepts the retired storage classes, so what
    it holds - a seeded ``retired-sop-class`` series - is stored and retrieved by C-GET
    like any other object; the reference target keeps refusing them."""
    contexts = [SupportedContext(Verification, tuple(DEFAULT_TRANSFER_SYNTAXES))]
    storage = [cx.abstract_syntax for cx in AllStoragePresentationContexts]
    storage += list(RETIRED_STORAGE) if legacy else []
    contexts += [SupportedContext(uid, tuple(ALL_TRANSFER_SYNTAXES), True, True)
                 for uid in storage]
    contexts += [SupportedContext(uid, tuple(DEFAULT_TRANSFER_SYNTAXES)) for uid in MODEL_OF_SOP_CLASS]
    contexts.append(SupportedContext(StorageCommitmentPushModel, tuple(DEFAULT_TRANSFER_SYNTAXES)))
    if mpps:
        contexts.append(SupportedContext(ModalityPerformedProcedureStep,
                                         tuple(DEFAULT_TRANSFER_SYNTAXES)))
    return tuple(contexts)


class Archive(Actor):
    """Durable Storage/Query/Retrieve/Commitment SCP on loopback or any interface."""

    kind = "archive"

    def __init__(self, config: ArchiveConfig | None = None, events: EventBus | None = None) -> None:
        self.config = config or ArchiveConfig()
        super().__init__(self.config.name, events)
        self._server: FastServer | None = None
        self._store: DicomStore | None = None
        self._temp_dir: Path | None = None
        self._commitment: CommitmentScp | None = None
        self._dicomweb: DicomWebServer | None = None
        self.mpps: MppsManager | None = None
        self.port: int = self.config.port
        self._studies_seen: set[str] = set()
        self._studies_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------
    def _start(self) -> None:
        config = self.config
        root = config.storage_dir
        if root is None:
            self._temp_dir = root = Path(tempfile.mkdtemp(prefix="pacsim-archive-"))
        self._store = DicomStore(root, lenient_uids=config.lenient_uids)
        self._commitment = CommitmentScp(self._store, ae_title=config.ae_title,
                                         reply_mode=config.commitment_reply,  # type: ignore[arg-type]
                                         destinations=dict(config.destinations),
                                         destination_tls=config.destination_tls,
                                         events=self.events, actor=self.name)
        settings = ServerSettings(
            ae_title=config.ae_title, host=config.host, port=config.port,
            contexts=supported_contexts(config.mpps, legacy=config.lenient_uids),
            max_pdu=config.max_pdu,
            max_associations=config.max_associations,
            allowed_calling=frozenset(config.allowed_calling),
            idle_timeout=config.idle_timeout, workers=config.workers, tls=config.tls)
        server = FastServer(settings, events=self.events, actor=self.name)
        server.handle("C-STORE", self._on_store)
        server.handle("C-FIND", self._on_find)
        server.handle("C-MOVE", self._on_move)
        server.handle("C-GET", self._on_get)
        server.handle("N-ACTION", self._commitment.handle_n_action)
        if config.mpps:
            self.mpps = MppsManager()
            server.handle("N-CREATE", self._on_n_create)
            server.handle("N-SET", self._on_n_set)
        try:
            server.start()
        except ConfigError:
            self._release_storage()
            raise
        self._server = server
        self.port = server.port
        if config.dicomweb_port is not None:
            try:
                self._dicomweb = DicomWebServer(self._store, host=config.host,
                                                port=config.dicomweb_port, events=self.events,
                                                actor=self.name).start()
            except BaseException:
                self._stop()
                raise

    def _stop(self) -> None:
        if self._dicomweb is not None:
            self._dicomweb.stop()
            self._dicomweb = None
        if self._server is not None:
            if self._commitment is not None:
                try:
                    self._server.call(self._commitment.drain(), timeout=10)
                except Exception:  # noqa: BLE001 - stopping must not raise
                    self.log.exception("storage commitment deliveries did not finish")
            self._server.stop()
            self._server = None
        self._release_storage()

    def _release_storage(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def describe(self) -> str:
        web = f", DICOMweb {self.dicomweb_url}" if self._dicomweb is not None else ""
        tls = f" ({self.config.tls.describe()})" if self.config.tls is not None else ""
        return f"{self.config.ae_title} on {self.config.host}:{self.port}{tls}{web}"

    @property
    def dicomweb_url(self) -> str | None:
        """Base URL of the DICOMweb endpoint (``.../dicom-web``), None when it is off."""
        return self._dicomweb.url if self._dicomweb is not None else None

    # -- operations for tests and scenarios --------------------------------------------
    @property
    def store(self) -> DicomStore:
        if self._store is None:
            raise ConfigError("the archive is not running", actor=self.name)
        return self._store

    @property
    def active_associations(self) -> int:
        """Associations the archive holds right now (load tests watch this)."""
        return self._server.active_associations if self._server is not None else 0

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
                for found in run_find(self.store, "STUDY", identifier, root="STUDY")]

    # -- C-STORE -----------------------------------------------------------------------
    async def _on_store(self, request: DimseRequest) -> Reply:
        """Make the object durable and indexed, *then* answer (in the thread pool)."""
        data = request.data
        request.event.bytes = len(data)
        status, comment = await request.run_blocking(
            self._store_received, data, request.context.transfer_syntax,
            str(request.get("AffectedSOPClassUID", "")), str(request.get("AffectedSOPInstanceUID", "")),
            request.calling_ae, request.event.detail, inline_when_alone=True)
        return Reply(status, fields={"ErrorComment": comment or None})

    def _store_received(self, data: bytes, transfer_syntax: str, sop_class: str, sop_uid: str,
                        calling: str, detail: dict[str, Any]) -> tuple[int, str]:
        """Blocking part of C-STORE: the store checks the bytes against the request
        (0xA900/0xC210), applies the duplicate policy and makes the object durable."""
        detail["sop_instance_uid"] = sop_uid
        try:
            outcome: StoreOutcome = self.store.put_received(
                data, transfer_syntax=transfer_syntax, sop_class=sop_class, sop_uid=sop_uid,
                calling_ae=calling)
        except StoreError as exc:
            self.log.error("store failed: %s", exc)
            return STATUS_OUT_OF_RESOURCES, "object could not be stored"
        if outcome.duplicate:
            detail["duplicate"] = True
        elif outcome.ok and outcome.study_uid:
            self._log_new_study(outcome, calling)
        return outcome.status, outcome.comment if not outcome.ok else ""

    def _log_new_study(self, outcome: StoreOutcome, calling: str) -> None:
        """One INFO line per study this archive starts holding (not per image): what an
        integration engineer greps for when asking "did my study arrive?"."""
        with self._studies_lock:
            if outcome.study_uid in self._studies_seen:
                return
            if len(self._studies_seen) >= STUDIES_REMEMBERED:  # a load run: stay bounded
                self._studies_seen.clear()
            self._studies_seen.add(outcome.study_uid)
        self.log.info("stored study %s from %s (patient %s, accession %s)", outcome.study_uid,
                      calling or "?", outcome.patient_id or "?", outcome.accession or "-")

    # -- C-FIND ------------------------------------------------------------------------
    async def _on_find(self, request: DimseRequest) -> Reply | int:
        sop_class = str(request.get("AffectedSOPClassUID", ""))
        try:
            identifier = request.dataset()
            if identifier is None:
                raise StatusError("C-FIND without an identifier", status=STATUS_IDENTIFIER_MISMATCH)
            level = check_identifier(identifier, sop_class)
            matches = await request.run_blocking(
                lambda: list(run_find(self.store, level, identifier, root=MODEL_OF_SOP_CLASS[sop_class])))
        except ProtocolError as exc:
            request.event.detail["error"] = str(exc)
            return status_of(exc)
        except Exception as exc:  # noqa: BLE001 - undecodable identifier, index error
            request.event.detail["error"] = str(exc)
            return STATUS_UNABLE_TO_PROCESS
        request.event.detail["level"] = level
        for count, match in enumerate(matches):
            if request.cancelled:
                request.event.detail["matches"] = count
                return STATUS_CANCELLED
            await request.pending(match)
        request.event.detail["matches"] = len(matches)
        return 0x0000

    # -- C-MOVE, C-GET -----------------------------------------------------------------
    async def _retrieve_set(self, request: DimseRequest) -> list[suboperations.StoredObject]:
        """Objects a C-MOVE/C-GET selects; raises ProtocolError for bad identifiers."""
        try:
            identifier = request.dataset()
        except Exception as exc:  # noqa: BLE001
            raise StatusError("identifier cannot be decoded",
                              status=STATUS_IDENTIFIER_MISMATCH) from exc
        if identifier is None:
            raise StatusError("retrieve without an identifier", status=STATUS_IDENTIFIER_MISMATCH)
        level = check_identifier(identifier, str(request.get("AffectedSOPClassUID", "")),
                                 retrieve=True)
        found = await request.run_blocking(match_instances, self.store, level, identifier)
        return [suboperations.StoredObject(i.sop_class_uid, i.sop_instance_uid, i.transfer_syntax,
                                           i.path) for i in found]

    async def _on_move(self, request: DimseRequest) -> Reply | int:
        target = str(request.get("MoveDestination", "") or "").strip()
        request.event.detail["destination"] = target
        address = self.config.destinations.get(target)
        if address is None:
            return suboperations.STATUS_MOVE_DESTINATION_UNKNOWN
        try:
            objects = await self._retrieve_set(request)
        except ProtocolError as exc:
            request.event.detail["error"] = str(exc)
            return status_of(exc)
        return await suboperations.move(request, objects, address=address, destination_ae=target,
                                        own_ae=self.config.ae_title, events=self.events,
                                        actor=self.name, tls=self.config.destination_tls)

    async def _on_get(self, request: DimseRequest) -> Reply | int:
        try:
            objects = await self._retrieve_set(request)
        except ProtocolError as exc:
            request.event.detail["error"] = str(exc)
            return status_of(exc)
        return await suboperations.get(request, objects)

    # -- MPPS --------------------------------------------------------------------------
    async def _on_n_create(self, request: DimseRequest) -> Reply:
        """MPPS N-CREATE: the same state machine and answers as the RIS (F.7.2)."""
        assert self.mpps is not None
        return await self.mpps.serve_n_create(request)

    async def _on_n_set(self, request: DimseRequest) -> Reply:
        assert self.mpps is not None
        return await self.mpps.serve_n_set(request)


def _plain(value: Any) -> Any:
    """pydicom values as plain Python for scenario expectations."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return str(value)


__all__ = ["Archive", "ArchiveConfig", "supported_contexts"]
