"""``FastServer``: a DICOM association acceptor on asyncio, built on pynetdicom codecs.

Why not pynetdicom's ``AE.start_server``: it runs a thread and a polling reactor per
association (1 ms sleeps, thread hand-offs; BASELINES.md). A C-STORE handler that
does nothing tops out near 325 objects/s on one association, below what a durable
archive must ingest, and hundreds of simultaneous associations mean hundreds of
threads. Here one event loop (in one daemon thread) serves every association; the
codecs stay pynetdicom's (``codec``, ``dimse``, ``acceptance``), blocking work
(fsync, SQLite) runs in a thread pool, and the loop keeps serving meanwhile.

Usage::

    server = FastServer(ServerSettings(ae_title="ARC", contexts=(...)), events=bus)
    server.handle("C-STORE", on_store)      # async def on_store(request) -> Reply | int
    server.start(); server.port; ...; server.stop()

What it guarantees on the wire: contexts and roles negotiated as pynetdicom would;
called-AE and calling-AE checks and the association limit answered with the PS3.8
A-ASSOCIATE-RJ result/source/reason (see ``acceptance``), never a TCP reset; our
maximum PDU announced and enforced on receive; ARTIM and idle timeouts; garbage,
oversized PDUs and dropped sockets end only their own association.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Coroutine, Mapping, TypeVar

from simulators.dicom.ae import DEFAULT_MAX_PDU, AeSettings
from simulators.dicom.fast.acceptance import AcceptorPolicy, SupportedContext, build_supported
from simulators.dicom.fast.association import _tune_socket
from simulators.dicom.fast.channel import ServerAssociation
from simulators.dicom.fast.service import COMMANDS, DimseRequest, Handler, Reply
from simulators.errors import ConfigError, PortInUse
from simulators.events import EventBus, bus as default_bus

log = logging.getLogger(__name__)
T = TypeVar("T")
VERIFICATION = "1.2.840.10008.1.1"
_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerSettings:
    """Everything the acceptor needs, fixed at construction (no late changes)."""

    ae_title: str
    host: str = "127.0.0.1"
    port: int = 0
    contexts: tuple[SupportedContext, ...] = ()
    max_pdu: int = DEFAULT_MAX_PDU
    max_associations: int = 50
    allowed_calling: frozenset[str] = field(default_factory=frozenset)
    require_called: bool = True
    #: ARTIM: how long a new connection may take to send its A-ASSOCIATE-RQ, and how
    #: long we wait for the peer to close after RJ/RP.
    acse_timeout: float = 30.0
    #: An established association with no PDU and no work in progress for this long
    #: is aborted (pynetdicom's ``network_timeout``).
    idle_timeout: float = 60.0
    #: Longest stall inside one PDU, and longest wait for a response to our requests.
    dimse_timeout: float = 30.0
    #: Biggest DIMSE message (command + data set) buffered; bounds memory per association.
    max_message: int = 1 << 30
    #: Threads for blocking handler work (fsync, SQLite, file reads).
    workers: int = 8

    def __post_init__(self) -> None:
        if self.max_pdu and self.max_pdu < 4096:
            raise ConfigError("max_pdu must be 0 (unlimited) or at least 4096", max_pdu=self.max_pdu)
        if self.max_associations < 1:
            raise ConfigError("max_associations must be at least 1",
                              max_associations=self.max_associations)
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be between 0 and 65535", port=self.port)
        for name in ("acse_timeout", "idle_timeout", "dimse_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive", **{name: getattr(self, name)})
        if self.workers < 1:
            raise ConfigError("workers must be at least 1", workers=self.workers)

    @classmethod
    def for_ae(cls, ae: AeSettings, contexts: tuple[SupportedContext, ...], *,
               host: str = "127.0.0.1", port: int = 0, workers: int = 8) -> "ServerSettings":
        """Acceptor settings for an AE described by the shared :class:`AeSettings`.

        Why: ``AeSettings`` is where an actor states its AE title, PDU size, calling-AE
        allowlist, called-AE check, association limit and timeouts; a listener built
        from it here keeps exactly those (``network_timeout`` is our ``idle_timeout``,
        as in pynetdicom), so moving a listener onto this acceptor changes no policy.
        """
        return cls(ae_title=ae.ae_title, host=host, port=port, contexts=tuple(contexts),
                   max_pdu=ae.max_pdu, max_associations=ae.maximum_associations,
                   allowed_calling=frozenset(ae.allowed_calling),
                   require_called=ae.require_called, acse_timeout=ae.acse_timeout,
                   idle_timeout=ae.network_timeout, dimse_timeout=ae.dimse_timeout,
                   workers=workers)


async def _echo(request: DimseRequest) -> int:
    return 0x0000


class FastServer:
    """The acceptor: an event loop in a daemon thread, started and stopped like an actor."""

    def __init__(self, settings: ServerSettings, handlers: Mapping[str, Handler] | None = None,
                 *, events: EventBus | None = None, actor: str = "fast-server") -> None:
        self.settings = settings
        self.policy = AcceptorPolicy(settings.ae_title, tuple(settings.contexts), settings.max_pdu,
                                     settings.require_called, frozenset(settings.allowed_calling))
        self.supported = build_supported(settings.contexts)
        self.events = events or default_bus
        self.actor = actor
        self.handlers: dict[str, Handler] = {"C-ECHO": _echo}
        for command, handler in (handlers or {}).items():
            self.handle(command, handler)
        self.executor: ThreadPoolExecutor | None = None
        self.port = settings.port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[ServerAssociation, asyncio.Task[None]] = {}
        self._active = 0

    def handle(self, command: str, handler: Handler) -> None:
        """Register ``handler`` for a DIMSE command ("C-STORE", "N-ACTION", ...)."""
        if command not in COMMANDS.values():
            raise ConfigError("unknown DIMSE command", command=command,
                              known=",".join(sorted(COMMANDS.values())))
        self.handlers[command] = handler

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def active_associations(self) -> int:
        """Connections holding an association slot (negotiating or established)."""
        return self._active

    def start(self) -> "FastServer":
        """Bind, start the loop thread and return once listening (idempotent).

        :class:`PortInUse` when another socket holds the port, :class:`ConfigError`
        for any other failure to listen.
        """
        if self._thread is not None:
            return self
        self.executor = ThreadPoolExecutor(self.settings.workers,
                                           thread_name_prefix=f"{self.actor}-work")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name=f"{self.actor}-loop", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        if not ready.wait(_START_TIMEOUT) or failure:
            self._thread = None
            thread.join(_START_TIMEOUT)
            loop.close()
            self.executor.shutdown(wait=False)
            error = failure[0] if failure else TimeoutError("loop did not start")
            message = (f"cannot listen on {self.settings.host}:{self.settings.port}: "
                       f"{getattr(error, 'strerror', None) or error}")
            if getattr(error, "errno", None) == errno.EADDRINUSE:
                raise PortInUse(message, host=self.settings.host, port=self.settings.port,
                                ae_title=self.settings.ae_title) from error
            raise ConfigError(message, ae_title=self.settings.ae_title) from error
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self.settings.host, self.settings.port,
            limit=max(self.settings.max_pdu, 1 << 16) * 2,
            backlog=max(128, self.settings.max_associations * 2))
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every association (A-ABORT), then the loop. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        except Exception:  # noqa: BLE001 - stopping must not raise
            log.exception("%s: unclean shutdown", self.actor)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._thread = None
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections.values())
        for association in list(self._connections):
            association.abort()  # A-ABORT and close: their reads end by themselves
        if tasks:
            _, stragglers = await asyncio.wait(tasks, timeout=2)
            for task in stragglers:
                task.cancel()
            if stragglers:
                await asyncio.wait(stragglers, timeout=3)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except TimeoutError:
                pass

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the server's loop from another thread and wait for it."""
        if self._loop is None or self._thread is None:
            coroutine.close()
            raise ConfigError("server is not running", actor=self.actor)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # -- connections -----------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        _tune_socket(writer)
        over_limit = self._active >= self.settings.max_associations
        if not over_limit:
            self._active += 1
        association = ServerAssociation(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[association] = task
        try:
            await association.run(over_limit)
        except asyncio.CancelledError:
            pass  # our own stop(); re-raising makes asyncio log it as a failed callback
        finally:
            self._connections.pop(association, None)
            if not over_limit:
                self._active -= 1

    def __enter__(self) -> "FastServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["FastServer", "ServerSettings", "SupportedContext", "DimseRequest", "Reply",
           "VERIFICATION"]
