"""C-MOVE and C-GET sub-operations for an SCP on the fast acceptor (PS3.4 C.4.2/C.4.3).

Both retrieve services end the same way: one C-STORE per selected instance, a
pending response with the four counters after each, then a final status that
summarises them - 0x0000 when all succeeded, 0xB000 when some failed or warned,
0xA702 when all failed, 0xFE00 after a C-CANCEL - with the Failed SOP Instance
UID List as identifier whenever something failed (C.4.2.1.4, C.4.3.1.4). They
differ only in *where* the C-STOREs go: C-MOVE opens a new association to the
move destination (:class:`FastAssociation`, so no pynetdicom reactor slows the
transfer), C-GET sends them back on the requesting association, in the SCU role
the requestor granted through role selection.

Stored objects are sent as their bytes on disk when the peer accepted their
transfer syntax; an uncompressed object is re-encoded for another uncompressed
syntax; anything else fails that one sub-operation (counted, never fatal).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterable, Sequence

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from simulators.dicom.fast import dimse
from simulators.dicom.fast.association import FastAssociation
from simulators.dicom.fast.files import encode_dataset, read_part10
from simulators.dicom.fast.negotiation import AcceptedContext
from simulators.dicom.fast.service import DimseRequest, Reply
from simulators.errors import PacsimError, StoreError
from simulators.events import EventBus
from simulators.tls import TlsSettings

log = logging.getLogger(__name__)

UNCOMPRESSED = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                DeflatedExplicitVRLittleEndian)
STATUS_PENDING = 0xFF00
STATUS_CANCELLED = 0xFE00
STATUS_SUBOPS_FAILED = 0xA702  # Refused: out of resources, unable to perform sub-operations
STATUS_MOVE_DESTINATION_UNKNOWN = 0xA801
STATUS_WARNING = 0xB000
STATUS_FAILED = 0xA700  # what a sub-operation counts as when it could not even be sent
_WARNINGS = (0xB000, 0xB006, 0xB007)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a sub-operation needs to know about one object on disk."""

    sop_class: str
    sop_instance: str
    transfer_syntax: str
    path: Path


@dataclass(slots=True)
class Progress:
    """The four sub-operation counters and the failed UIDs (PS3.4 C.4.2.1.6)."""

    total: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.total - self.completed - self.failed - self.warning

    def count(self, sop_instance: str, status: int) -> None:
        if status == 0x0000:
            self.completed += 1
        elif status in _WARNINGS:
            self.warning += 1
        else:
            self.failed += 1
            self.failed_uids.append(sop_instance)

    def counters(self, *, remaining: bool) -> dict[str, int]:
        fields = {"NumberOfCompletedSuboperations": self.completed,
                  "NumberOfFailedSuboperations": self.failed,
                  "NumberOfWarningSuboperations": self.warning}
        if remaining:
            fields["NumberOfRemainingSuboperations"] = self.remaining
        return fields

    def final(self, cancelled: bool) -> Reply:
        if cancelled:
            status = STATUS_CANCELLED
        elif not self.failed and not self.warning:
            status = 0x0000
        elif self.failed == self.total:
            status = STATUS_SUBOPS_FAILED
        else:
            status = STATUS_WARNING
        identifier = None
        if self.failed_uids and status != 0x0000:
            identifier = Dataset()
            identifier.FailedSOPInstanceUIDList = self.failed_uids
        return Reply(status, identifier, self.counters(remaining=cancelled))


def pick_context(accepted: Iterable[AcceptedContext], stored: StoredObject) -> AcceptedContext | None:
    """The context to send ``stored`` on: its own syntax first, else any uncompressed."""
    fallback = None
    for context in accepted:
        if context.abstract_syntax != stored.sop_class or not context.accepted:
            continue
        if context.transfer_syntax == stored.transfer_syntax:
            return context
        if (fallback is None and context.transfer_syntax in UNCOMPRESSED
                and stored.transfer_syntax in UNCOMPRESSED):
            fallback = context
    return fallback


def payload_for(stored: StoredObject, transfer_syntax: str) -> bytes:
    """The object's data set in ``transfer_syntax`` (blocking: reads the file)."""
    instance = read_part10(stored.path)
    if instance.transfer_syntax == transfer_syntax:
        return instance.data
    if instance.transfer_syntax not in UNCOMPRESSED or transfer_syntax not in UNCOMPRESSED:
        raise StoreError("stored transfer syntax cannot be converted",
                         stored=instance.transfer_syntax, wanted=transfer_syntax)
    return encode_dataset(dcmread(stored.path), transfer_syntax)


Sender = Callable[[StoredObject], Awaitable[int]]


async def run_suboperations(request: DimseRequest, objects: Sequence[StoredObject],
                            send: Sender) -> Reply:
    """Send each object with ``send``, answering pending after each; the final reply."""
    progress = Progress(len(objects))
    request.event.detail["instances"] = len(objects)
    for stored in objects:
        if request.cancelled:
            return progress.final(cancelled=True)
        try:
            status = await send(stored)
        except PacsimError as exc:
            log.info("sub-operation for %s failed: %s", stored.sop_instance, exc)
            status = STATUS_FAILED
        progress.count(stored.sop_instance, status)
        await request.pending(status=STATUS_PENDING, **progress.counters(remaining=True))
    request.event.detail["failed"] = progress.failed
    return progress.final(cancelled=request.cancelled)


async def move(request: DimseRequest, objects: Sequence[StoredObject], *,
               address: tuple[str, int], destination_ae: str, own_ae: str,
               events: EventBus, actor: str, timeout: float = 30.0,
               tls: TlsSettings | None = None) -> Reply:
    """C-MOVE: the objects to ``destination_ae`` at ``address`` on a new association
    (over TLS with ``tls``)."""
    proposals: dict[str, list[str]] = {}
    for stored in objects:
        wanted = proposals.setdefault(stored.sop_class, [])
        for syntax in (stored.transfer_syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if syntax not in wanted:
                wanted.append(syntax)
    contexts = list(proposals.items())[:128] or [("1.2.840.10008.1.1", [ImplicitVRLittleEndian])]
    association = FastAssociation(actor=actor, events=events, dimse_timeout=timeout)
    try:
        await association.connect(address[0], int(address[1]), own_ae, destination_ae,
                                  contexts, timeout=timeout, tls=tls)
    except PacsimError as exc:
        log.warning("C-MOVE: cannot associate with %s at %s:%s: %s", destination_ae,
                    address[0], address[1], exc)
        request.event.detail["error"] = str(exc)
        return Reply(STATUS_SUBOPS_FAILED, fields={"ErrorComment": "cannot reach the destination"})

    async def send(stored: StoredObject) -> int:
        context = pick_context(association.contexts, stored)
        if context is None:
            return STATUS_FAILED
        data = await request.run_blocking(payload_for, stored, context.transfer_syntax)
        return await association.store(data, stored.sop_class, stored.sop_instance,
                                       context.transfer_syntax)

    try:
        return await run_suboperations(request, objects, send)
    finally:
        if association.is_established:
            await association.release(timeout)


async def get(request: DimseRequest, objects: Sequence[StoredObject], *,
              timeout: float = 30.0) -> Reply:
    """C-GET: the objects back on the requesting association, as its storage SCU."""
    association = request.association
    negotiated = association.negotiated
    own = [cx for cid, cx in negotiated.contexts.items()  # type: ignore[union-attr]
           if negotiated.roles.get(cid, (False, True))[0]] if negotiated else []

    async def send(stored: StoredObject) -> int:
        context = pick_context(own, stored)
        if context is None:
            return STATUS_FAILED  # no storage context with the SCP role for this class
        data = await request.run_blocking(payload_for, stored, context.transfer_syntax)
        message = dimse.c_store_rq(association.next_message_id(), stored.sop_class,
                                   stored.sop_instance)
        response = await association.request(message, context, data, timeout)
        return int(dimse.command_value(response, "Status", 0xC000))  # type: ignore[arg-type]

    return await run_suboperations(request, objects, send)


__all__ = ["StoredObject", "Progress", "pick_context", "payload_for", "run_suboperations",
           "move", "get", "STATUS_MOVE_DESTINATION_UNKNOWN", "STATUS_CANCELLED"]
