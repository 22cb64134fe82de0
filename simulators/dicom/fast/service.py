"""What a fast-acceptor handler sees and returns: ``DimseRequest`` and ``Reply``.

A handler is ``async def handler(request: DimseRequest) -> Reply | int``, registered
on :class:`~simulators.dicom.fast.server.FastServer` by command ("C-STORE", ...).
The server opens one :class:`~simulators.events.Exchange` around each call and
fills its status from the final reply; the handler adds detail to
``request.event``. Pending responses (C-FIND matches, C-MOVE/C-GET progress) go out
with :meth:`DimseRequest.pending`, which also yields to the loop so a C-CANCEL read
meanwhile is seen in :attr:`DimseRequest.cancelled`. Blocking work (fsync, SQLite,
file reads) goes through :meth:`DimseRequest.run_blocking` so one slow disk never
stalls the other associations on the loop.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as msgs

from simulators.dicom.fast.files import decode_dataset, encode_dataset
from simulators.dicom.fast.negotiation import AcceptedContext
from simulators.events import Exchange

if TYPE_CHECKING:
    from simulators.dicom.fast.channel import ServerAssociation

T = TypeVar("T")

#: Request message classes by the command name handlers are registered under.
COMMANDS: dict[type, str] = {
    msgs.C_ECHO_RQ: "C-ECHO", msgs.C_STORE_RQ: "C-STORE", msgs.C_FIND_RQ: "C-FIND",
    msgs.C_MOVE_RQ: "C-MOVE", msgs.C_GET_RQ: "C-GET", msgs.N_CREATE_RQ: "N-CREATE",
    msgs.N_SET_RQ: "N-SET", msgs.N_ACTION_RQ: "N-ACTION", msgs.N_GET_RQ: "N-GET",
    msgs.N_DELETE_RQ: "N-DELETE", msgs.N_EVENT_REPORT_RQ: "N-EVENT-REPORT",
}

#: PS3.7 C.5 status codes the dispatcher itself answers with.
STATUS_PENDING = 0xFF00
STATUS_PROCESSING_FAILURE = 0x0110
STATUS_UNRECOGNIZED_OPERATION = 0x0211


@dataclass(slots=True)
class Reply:
    """A final response: status, an optional data set and status fields by name
    (``ErrorComment``, ``NumberOfFailedSuboperations``, ...)."""

    status: int
    dataset: Dataset | bytes | None = None
    fields: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["DimseRequest"], Awaitable["Reply | int"]]


class DimseRequest:
    """One request received on an association, while its handler runs."""

    __slots__ = ("association", "message", "command", "context", "event", "name", "_cancelled")

    def __init__(self, association: "ServerAssociation", message: msgs.DIMSEMessage,
                 context: AcceptedContext, event: Exchange) -> None:
        self.association = association
        self.message = message
        self.command: Dataset = message.command_set
        self.context = context
        self.event = event
        self.name = COMMANDS[type(message)]
        self._cancelled = False

    # -- what was asked ----------------------------------------------------------------
    @property
    def calling_ae(self) -> str:
        return self.association.calling_ae

    @property
    def peer(self) -> str:
        return self.association.peer

    @property
    def cancelled(self) -> bool:
        """True once the peer sent C-CANCEL for this request (PS3.7 9.3.2.3)."""
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True

    def get(self, keyword: str, default: Any = None) -> Any:
        """A command-set value (``AffectedSOPInstanceUID``, ``MoveDestination``...)."""
        return self.command.get(keyword, default)

    @property
    def data(self) -> bytes:
        """The request's data set exactly as received ('' when it had none)."""
        stream = self.message.data_set
        return stream.getvalue() if isinstance(stream, BytesIO) else b""

    def dataset(self) -> Dataset | None:
        """The data set decoded in the context's transfer syntax (None when absent).

        Raises what pydicom raises for undecodable bytes; handlers turn that into
        their service's "cannot understand" status.
        """
        stream = self.message.data_set
        if not isinstance(stream, BytesIO) or not stream.getbuffer().nbytes:
            return None
        stream.seek(0)
        return decode_dataset(stream, self.context.transfer_syntax)

    def encode(self, ds: Dataset) -> bytes:
        return encode_dataset(ds, self.context.transfer_syntax)

    # -- answering ---------------------------------------------------------------------
    async def pending(self, dataset: Dataset | bytes | None = None, *,
                      status: int = STATUS_PENDING, **fields: Any) -> None:
        """Send one pending response, then let the loop read a C-CANCEL if one came."""
        await self.association.respond(self, status, dataset, fields)
        await asyncio.sleep(0)

    async def pending_encoded(self, datasets: Sequence[bytes | memoryview], *,
                              status: int = STATUS_PENDING) -> None:
        """Send one pending response per encoded data set in one write (see
        ``ServerAssociation.respond_encoded``), then let the loop read a C-CANCEL."""
        await self.association.respond_encoded(self, status, datasets)
        await asyncio.sleep(0)

    async def run_blocking(self, function: Callable[..., T], *args: Any,
                           inline_when_alone: bool = False) -> T:
        """Run blocking work in the server's thread pool and await its result.

        ``inline_when_alone`` is for short, latency-bound work (a C-STORE's fsync
        and index commit): when this association is the only one the server
        holds, the work runs right here on the loop. The pool's two thread
        hand-offs cost ~0.3 ms per call, about 20% of a durable C-STORE on one
        association (measured with benchmarks/archive_ingest.py), and with no
        other association there is nobody for the loop to keep serving
        meanwhile; a connection arriving then waits at most that one call.
        """
        if inline_when_alone and self.association.server.active_associations <= 1:
            return function(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.association.server.executor,
                                          functools.partial(function, *args))


__all__ = ["DimseRequest", "Reply", "Handler", "COMMANDS", "STATUS_PENDING",
           "STATUS_PROCESSING_FAILURE", "STATUS_UNRECOGNIZED_OPERATION"]
