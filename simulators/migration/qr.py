"""Query/Retrieve sessions the migration keeps open against the legacy and the target.

Why not the scenario steps' ``QrClient``: it opens an association per call, which is
fine for a step and ruinous for a migration that issues several queries per study
for tens of thousands of studies. A session keeps one C-FIND association (the fast
client) and one C-MOVE association (pynetdicom: the fast client speaks no C-MOVE)
open for its worker, reconnecting after a failure. C-GET needs the SOP classes of
what it fetches in its presentation contexts (with our SCP role), so each C-GET
gets its own association. Every retrieve emits one exchange event.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelMove,
)

from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.fast import FIND_MODELS, EncodedInstance, FastClient
from simulators.errors import AssociationError, ProtocolError
from simulators.events import EventBus

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
#: A C-GET association has room for 127 storage contexts besides the Q/R one.
MAX_GET_CLASSES = 120
PENDING = (0xFF00, 0xFF01)


@dataclass
class RetrieveResult:
    """The final C-MOVE/C-GET status and its sub-operation counts."""

    status: int = 0xC000
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (0x0000, 0xB000) and self.failed == 0


def identifier(level: str, keys: Iterable[str], match: dict[str, str]) -> Dataset:
    """A Study Root identifier: ``match`` values plus empty return ``keys``."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in dict.fromkeys([*keys, *match]):
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ProtocolError(f"{keyword!r} is not a DICOM keyword")
        ds.add_new(tag, dictionary_VR(tag), match.get(keyword, ""))
    return ds


class QrSession:
    """Q/R against one peer from one worker thread (not thread-safe by design)."""

    def __init__(self, peer: AeAddress, calling_ae: str, events: EventBus, actor: str,
                 timeout: float = 60.0) -> None:
        self.peer, self.calling_ae, self.events, self.actor = peer, calling_ae, events, actor
        self.timeout = timeout
        self._finder: FastClient | None = None
        self._mover: Association | None = None
        self.thread = threading.get_ident()

    # ------------------------------------------------------------------ C-FIND
    def find(self, level: str, keys: Iterable[str], match: dict[str, str]) -> list[Dataset]:
        """All matches of a Study Root C-FIND; ProtocolError on a failure status."""
        query = identifier(level, keys, match)
        for attempt in (1, 2):  # one reconnect: the peer may have closed an idle association
            client = self._find_client()
            try:
                status, matches = client.find(query, "study")
                break
            except (AssociationError, OSError):
                self._drop_finder()
                if attempt == 2:
                    raise
        if status != 0x0000:
            raise ProtocolError(f"C-FIND {level} failed with status 0x{status:04X}",
                                peer=str(self.peer), match=str(match))
        return matches

    def _find_client(self) -> FastClient:
        if self._finder is None or not self._finder.is_established:
            self._drop_finder()
            client = FastClient(actor=self.actor, events=self.events, dimse_timeout=self.timeout)
            try:
                client.connect(self.peer.host, self.peer.port, self.calling_ae,
                               self.peer.ae_title, [(FIND_MODELS["study"], UNCOMPRESSED)],
                               timeout=self.timeout)
            except BaseException:
                client.close()
                raise
            self._finder = client
        return self._finder

    def _drop_finder(self) -> None:
        if self._finder is not None:
            try:
                self._finder.close()
            except Exception:  # noqa: BLE001 - a dead association cannot be released
                pass
            self._finder = None

    # ------------------------------------------------------------------ C-MOVE
    def move_study(self, study_uid: str, destination: str) -> RetrieveResult:
        """C-MOVE one study to ``destination`` (the legacy must know that AE title)."""
        return self.move("STUDY", {"StudyInstanceUID": study_uid}, destination)

    def move(self, level: str, match: dict[str, str], destination: str) -> RetrieveResult:
        """C-MOVE at ``level`` (IMAGE with a UID list moves only those instances)."""
        query = identifier(level, (), match)
        with self.events.exchange("dicom.c-move", self.actor, f"{self.peer.host}:{self.peer.port}",
                                  called_ae=self.peer.ae_title, destination=destination,
                                  study_uid=match.get("StudyInstanceUID", ""),
                                  level=level) as event:
            assoc = self._move_association()
            try:
                result = _collect(assoc.send_c_move(query, destination,
                                                    StudyRootQueryRetrieveInformationModelMove),
                                  str(match))
            except ProtocolError:
                self._drop_mover()
                raise
            _describe(event, result)
        return result

    def _move_association(self) -> Association:
        if self._mover is None or not self._mover.is_established:
            ae = make_ae(AeSettings(self.calling_ae, dimse_timeout=self.timeout,
                                    network_timeout=self.timeout))
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
            self._mover = associate(ae, self.peer.host, self.peer.port, self.peer.ae_title)
        return self._mover

    def _drop_mover(self) -> None:
        if self._mover is not None:
            if self._mover.is_established:
                self._mover.abort()
            self._mover = None

    # ------------------------------------------------------------------ C-GET
    def get(self, level: str, match: dict[str, str], sop_classes: Iterable[str]
            ) -> tuple[RetrieveResult, list[EncodedInstance]]:
        """C-GET and keep every received object as the bytes that came over the wire."""
        classes = list(dict.fromkeys(sop_classes))[:MAX_GET_CLASSES]
        ae = make_ae(AeSettings(self.calling_ae, dimse_timeout=self.timeout,
                                network_timeout=self.timeout))
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in classes:
            ae.add_requested_context(sop_class, UNCOMPRESSED)
        received: list[EncodedInstance] = []

        def on_store(event: Any) -> int:
            request = event.request
            received.append(EncodedInstance(
                str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID),
                str(event.context.transfer_syntax), request.DataSet.getvalue()))
            return 0x0000

        query = identifier(level, (), match)
        with self.events.exchange("dicom.c-get", self.actor, f"{self.peer.host}:{self.peer.port}",
                                  called_ae=self.peer.ae_title, level=level) as event:
            assoc = associate(ae, self.peer.host, self.peer.port, self.peer.ae_title,
                              [(evt.EVT_C_STORE, on_store)],
                              ext_neg=[build_role(c, scp_role=True) for c in classes])
            try:
                result = _collect(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet),
                                  str(match))
            finally:
                if assoc.is_established:
                    assoc.release()
            _describe(event, result)
            event.detail["received"] = len(received)
        return result, received

    def close(self) -> None:
        self._drop_finder()
        if self._mover is not None and self._mover.is_established:
            self._mover.release()
        self._mover = None


def _collect(responses: Iterable[tuple[Dataset | None, Dataset | None]], what: str
             ) -> RetrieveResult:
    """Read a C-MOVE/C-GET response stream into its final status and counts."""
    result = RetrieveResult()
    for status, data in responses:
        if status is None or "Status" not in status:
            raise ProtocolError("retrieve ended without a final status (association lost)",
                                what=what)
        code = int(status.Status)
        if code in PENDING:
            continue
        result.status = code
        result.completed = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
        result.failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
        result.warning = int(status.get("NumberOfWarningSuboperations", 0) or 0)
        if data is not None and "FailedSOPInstanceUIDList" in data:
            value = data.FailedSOPInstanceUIDList
            result.failed_uids = [str(v) for v in (value if isinstance(value, list) else [value])
                                  if str(v)]
    return result


def _describe(event: Any, result: RetrieveResult) -> None:
    event.status = f"0x{result.status:04X}"
    event.outcome = "ok" if result.status == 0 else ("warning" if result.status == 0xB000
                                                     else "failed")
    event.detail.update(completed=result.completed, failed=result.failed,
                        warning=result.warning)


__all__ = ["QrSession", "RetrieveResult", "identifier", "UNCOMPRESSED"]
