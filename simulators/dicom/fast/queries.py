"""C-FIND on the requestor: the full query (``find``) and the lean one (``count_matches``).

A mixin of :class:`~simulators.dicom.fast.association.FastAssociation`, kept apart
because C-FIND is the one service with many responses per request: pending
responses are matched to the query, counted, decoded only when asked, and a query
left early is cancelled (C-CANCEL) and drained so the association stays usable.
One ``dicom.c-find`` event is emitted per query, whichever method ran it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator

from pydicom.dataset import Dataset

from simulators.dicom.fast import codec, dimse, raw
from simulators.dicom.fast.files import encode_dataset
from simulators.dicom.fast.negotiation import AcceptedContext
from simulators.errors import AssociationError, ProtocolError
from simulators.events import Exchange

if TYPE_CHECKING:
    from simulators.dicom.fast.association import FastAssociation

#: Most pending C-FIND responses ``count_matches``/``find_all`` accept before cancelling.
MAX_MATCHES = 1_000_000


class FindServices:
    """C-FIND methods of ``FastAssociation`` (see the module docstring)."""

    async def find(self: "FastAssociation", identifier: Dataset | bytes, model: str = "worklist",
                   *, priority: int = 2) -> AsyncIterator[tuple[int, Dataset | None]]:
        """C-FIND: yields ``(status, identifier)`` per match, then ``(final status, None)``.

        Leaving the loop early sends C-CANCEL and drains the remaining responses so
        the association stays usable. One event is emitted for the whole query.
        ``identifier`` may be given already encoded in the accepted transfer syntax
        (:meth:`transfer_syntax_for`), e.g. by a modality polling the same query.
        """
        query = self._open_query(model)
        try:
            self._send_query(query, identifier, priority)
            while True:  # the consumer decides how long; each response has a timeout
                status, data = await self._query_response(query)
                if query.final:
                    yield status, None
                    return
                yield status, self._decode(data, query.context)
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                query.failed(exc)
            raise
        finally:
            await self._close_query(query)

    async def count_matches(self: "FastAssociation", identifier: Dataset | bytes,
                            model: str = "worklist", *, keep: int = 0,
                            priority: int = 2) -> dimse.FindCount:
        """C-FIND to the end, decoding only the first ``keep`` matches.

        The lean path for load: a worklist poll needs the final status and how many
        items came back, not 250 decoded datasets (decoding cost the generator
        0.25 ms per match, queueing the other modalities behind it). Status and
        Message ID are read from the raw command set; the other identifiers are
        counted and dropped. Same wire exchange and event as :meth:`find`; more than
        ``MAX_MATCHES`` pending responses cancel the query with an error.
        """
        query = self._open_query(model)
        kept: list[Dataset] = []
        try:
            self._send_query(query, identifier, priority)
            for _ in range(MAX_MATCHES + 1):
                status, data = await self._query_response(query)
                if query.final:
                    return dimse.FindCount(status, query.event.detail["matches"], tuple(kept))
                if len(kept) < keep and data:
                    kept.append(self._decode(data, query.context))  # type: ignore[arg-type]
            raise self._error("peer sent more C-FIND matches than the limit", limit=MAX_MATCHES)
        except BaseException as exc:
            query.failed(exc)
            raise
        finally:
            await self._close_query(query)

    async def find_all(self: "FastAssociation", identifier: Dataset,
                       model: str = "worklist") -> tuple[int, list[Dataset]]:
        """Run a C-FIND to the end; returns the final status and every match."""
        result = await self.count_matches(identifier, model, keep=MAX_MATCHES)
        return result.status, list(result.items)

    async def _cancel_find(self: "FastAssociation", message_id: int, context_id: int,
                           event: Exchange) -> None:
        """C-CANCEL an unfinished query and drain to its final response (bounded)."""
        try:
            self._send(codec.message_pdus(dimse.c_cancel_rq(message_id), context_id, self.peer_max_pdu))
            for _ in range(100_000):
                status = status_of(await self._await_response(message_id))
                if not dimse.is_pending(status):
                    event.status = f"0x{status:04X}"
                    event.detail["cancelled"] = True
                    return
        except (AssociationError, ProtocolError):
            pass
        await self.abort()

    # -- plumbing shared by find() and count_matches() ------------------------------------
    def _open_query(self: "FastAssociation", model: str) -> "_Query":
        sop_class = dimse.FIND_MODELS.get(model, model)
        context = self._context_for(sop_class)
        event = Exchange(kind="dicom.c-find", actor=self.actor, peer=self.peer,
                         start=time.time(), detail={"model": model, "matches": 0})
        return _Query(self._next_id(), sop_class, context, event)

    def _send_query(self: "FastAssociation", query: "_Query", identifier: Dataset | bytes,
                    priority: int) -> None:
        encoded = identifier if isinstance(identifier, bytes) else \
            encode_dataset(identifier, query.context.transfer_syntax)
        command = dimse.c_find_rq_command(query.message_id, query.sop_class, priority)
        context_id = query.context.context_id
        parts = codec.encoded_command_pdus(command, context_id, self.peer_max_pdu)
        parts.extend(codec.dataset_pdus(encoded, context_id, self.peer_max_pdu))
        self._send(parts)

    async def _query_response(self: "FastAssociation", query: "_Query") -> tuple[int, bytes | None]:
        """The next C-FIND-RSP: (status, identifier bytes); marks the query final."""
        response = await self._await_response(query.message_id)
        status = status_of(response)
        if not dimse.is_pending(status):
            query.final = True
            query.event.status, query.event.outcome = f"0x{status:04X}", dimse.outcome_of(status)
            return status, None
        query.event.detail["matches"] += 1
        return status, response.data

    async def _close_query(self: "FastAssociation", query: "_Query") -> None:
        if not query.final and self._writer is not None:
            await self._cancel_find(query.message_id, query.context.context_id, query.event)
        query.event.duration = time.perf_counter() - query.began
        self.events.emit(query.event)



@dataclass(slots=True)
class _Query:
    """One C-FIND in flight: what its responses are matched and reported against."""

    message_id: int
    sop_class: str
    context: AcceptedContext
    event: Exchange
    began: float = field(default_factory=time.perf_counter)
    final: bool = False

    def failed(self, exc: BaseException) -> None:
        self.event.outcome = "error"
        self.event.detail["error"] = str(exc)


def status_of(response: raw.RawMessage) -> int:
    """The response's Status; a response without one counts as a processing failure."""
    status = response.status
    return 0xC000 if status is None else status



__all__ = ["FindServices", "MAX_MATCHES", "status_of"]
