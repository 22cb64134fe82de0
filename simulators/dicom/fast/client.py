"""``FastClient``: the synchronous face of ``FastAssociation`` for actors and scripts.

Actors and the scenario runner are synchronous. Instead of a background thread
(every call would pay a thread hand-off, the very cost that slows pynetdicom), the
client owns a private event loop and runs each call on it in the caller's thread.
Batch calls (``store_files``) run a whole batch inside one loop turn. Use it from
one thread at a time, and not from inside a running event loop: async code uses
``FastAssociation`` directly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any, Awaitable, Iterable, Sequence, TypeVar

from pydicom.dataset import Dataset

from simulators.dicom.ae import DEFAULT_MAX_PDU
from simulators.dicom.fast.association import FastAssociation
from simulators.dicom.fast.dimse import EventReport, NResult
from simulators.dicom.fast.files import EncodedInstance, read_part10
from simulators.dicom.fast.negotiation import AcceptedContext, ContextRequest
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.tls import TlsSettings

T = TypeVar("T")


def _retrieve(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()


class FastClient:
    """One association driven synchronously; a context manager that releases on exit."""

    def __init__(self, *, actor: str = "fast-client", events: EventBus | None = None,
                 max_pdu: int = DEFAULT_MAX_PDU, dimse_timeout: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self.association = FastAssociation(actor=actor, events=events, max_pdu=max_pdu,
                                           dimse_timeout=dimse_timeout)

    def _run(self, coroutine: Awaitable[T]) -> T:
        if asyncio._get_running_loop() is not None:
            coroutine.close()  # type: ignore[attr-defined]
            raise ConfigError("FastClient cannot run inside an event loop; use FastAssociation")
        task = asyncio.ensure_future(coroutine, loop=self._loop)
        try:
            return self._loop.run_until_complete(task)
        except KeyboardInterrupt:
            # Ctrl-C/SIGTERM left the task mid-exchange: cancel it and take its outcome,
            # or asyncio prints "Task exception was never retrieved" and a traceback
            # when the peer later drops the connection.
            task.cancel()
            task.add_done_callback(_retrieve)
            raise

    def connect(self, host: str, port: int, calling_ae: str, called_ae: str,
                contexts: Iterable[ContextRequest], max_pdu: int | None = None,
                timeout: float = 30.0, tls: TlsSettings | None = None) -> list[AcceptedContext]:
        """Open the association (over TLS when ``tls`` is given; see FastAssociation)."""
        return self._run(self.association.connect(host, port, calling_ae, called_ae,
                                                  list(contexts), max_pdu, timeout, tls))

    def echo(self) -> int:
        return self._run(self.association.echo())

    def store(self, data: Dataset | bytes | Sequence[bytes] | EncodedInstance,
              sop_class: str | None = None,
              sop_instance: str | None = None, transfer_syntax: str | None = None) -> int:
        return self._run(self.association.store(data, sop_class, sop_instance, transfer_syntax))

    def store_many(self, items: Sequence[Dataset | EncodedInstance]) -> list[int]:
        """C-STORE several instances in one loop run; returns their statuses in order."""
        async def send_all() -> list[int]:
            return [await self.association.store(item) for item in items]
        return self._run(send_all())

    def store_files(self, paths: Iterable[str | Path]) -> list[int]:
        """C-STORE Part 10 files byte for byte (each read just before it is sent)."""
        async def send_all() -> list[int]:
            return [await self.association.store(read_part10(path)) for path in paths]
        return self._run(send_all())

    def find(self, identifier: Dataset, model: str = "worklist") -> tuple[int, list[Dataset]]:
        """Complete C-FIND: final status and all matches."""
        return self._run(self.association.find_all(identifier, model))

    def n_create(self, sop_class: str, instance_uid: str | None, attributes: Dataset) -> NResult:
        return self._run(self.association.n_create(sop_class, instance_uid, attributes))

    def n_set(self, sop_class: str, instance_uid: str, modification: Dataset) -> NResult:
        return self._run(self.association.n_set(sop_class, instance_uid, modification))

    def n_action(self, sop_class: str, instance_uid: str, action_type: int,
                 information: Dataset | None = None) -> NResult:
        return self._run(self.association.n_action(sop_class, instance_uid, action_type, information))

    def wait_event_report(self, timeout: float | None = None) -> EventReport:
        return self._run(self.association.wait_event_report(timeout))

    def poll_event_report(self, timeout: float) -> EventReport | None:
        return self._run(self.association.poll_event_report(timeout))

    def release(self) -> None:
        self._run(self.association.release())

    def abort(self) -> None:
        self._run(self.association.abort())

    def close(self) -> None:
        """Release if still open, then close the private loop. Idempotent."""
        if self._loop.is_closed():
            return
        try:
            if self.association.is_established:
                self.release()
        finally:
            self._loop.close()

    def __enter__(self) -> "FastClient":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and self.association.is_established and not self._loop.is_closed():
            self.abort()
        self.close()

    @property
    def contexts(self) -> list[AcceptedContext]:
        """Every proposed context with the peer's answer (after ``connect``)."""
        return self.association.contexts

    @property
    def peer_max_pdu(self) -> int:
        """The peer's Maximum Length; every PDU we send respects it (0 = unlimited)."""
        return self.association.peer_max_pdu

    @property
    def is_established(self) -> bool:
        return self.association.is_established


__all__ = ["FastClient"]
