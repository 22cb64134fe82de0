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

Idle, slow or hostile clients never lock others out (issue 13): only *established*
associations count against ``max_associations``. A TCP connection that has not
completed negotiation is *unassociated*; it must send a whole A-ASSOCIATE-RQ within
ARTIM (``artim_timeout``, PS3.8 9.1.5) or it is closed, and unassociated connections
have their own, much larger cap (``max_unassociated``) beyond which new connections
are closed at once rather than queued. So 300 sockets that connect and say nothing
cost 300 cheap coroutines for at most ARTIM, and a real C-ECHO still gets a slot.

TLS (``ServerSettings.tls``, PS3.15 B.9-B.13): each accepted connection is upgraded in
its own coroutine, so a slow handshake never holds up the accept loop; the handshake
counts as unassociated time and must finish within ARTIM, so a client that opens a TLS
port and never finishes the handshake is closed like one that never sends its
A-ASSOCIATE-RQ, and never takes an association slot. A failed handshake (TLS 1.1
offered, unknown CA, expired or missing client certificate, plain DICOM on a TLS port)
closes the connection with nothing DICOM sent and emits one ``dicom.tls-refused`` event
with OpenSSL's reason.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Coroutine, Mapping, TypeVar

from simulators.dicom.ae import (
    DEFAULT_ARTIM_TIMEOUT, DEFAULT_MAX_PDU, DEFAULT_MAX_UNASSOCIATED, LISTEN_BACKLOG, AeSettings,
)
from simulators.dicom.fast.acceptance import AcceptorPolicy, SupportedContext, build_supported
from simulators.dicom.fast.association import _tune_socket
from simulators.dicom.fast.channel import ServerAssociation
from simulators.dicom.fast.service import COMMANDS, DimseRequest, Handler, Reply
from simulators.errors import ConfigError, PortInUse
from simulators.events import EventBus, Exchange, bus as default_bus
from simulators.tls import TlsSettings, describe_tls_failure

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
    #: Established associations at once; one more is refused with A-ASSOCIATE-RJ
    #: (transient, service provider, local-limit-exceeded). Connections still
    #: negotiating do not count (see ``max_unassociated``).
    max_associations: int = 50
    #: TCP connections accepted but not (yet) associated, at once. Beyond this new
    #: connections are closed immediately; generous, because each costs only a
    #: coroutine for at most ``artim_timeout``.
    max_unassociated: int = DEFAULT_MAX_UNASSOCIATED
    allowed_calling: frozenset[str] = field(default_factory=frozenset)
    require_called: bool = True
    #: ARTIM (PS3.8 9.1.5), seconds: a new connection must deliver its whole
    #: A-ASSOCIATE-RQ within this, and after an A-ASSOCIATE-RJ we wait at most this
    #: long for the peer to close. Short, because until then the socket is unassociated.
    artim_timeout: float = DEFAULT_ARTIM_TIMEOUT
    #: How long we wait for the peer to close after our A-RELEASE-RP.
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
    #: TLS on this port (None: plain TCP). Every connection must complete a handshake
    #: of ``tls.profile`` within ``artim_timeout``; ``tls.require_client_cert`` makes
    #: it mutual TLS.
    tls: TlsSettings | None = None
    #: Answers SOP Class Extended Negotiation (PS3.7 D.3.3.5); None ignores it.
    extended_negotiation: ExtendedAnswer | None = None

    def __post_init__(self) -> None:
        if self.max_pdu and self.max_pdu < 4096:
            raise ConfigError("max_pdu must be 0 (unlimited) or at least 4096", max_pdu=self.max_pdu)
        if self.max_associations < 1:
            raise ConfigError("max_associations must be at least 1",
                              max_associations=self.max_associations)
        if self.max_unassociated < 1:
            raise ConfigError("max_unassociated must be at least 1",
                              max_unassociated=self.max_unassociated)
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be between 0 and 65535", port=self.port)
        for name in ("artim_timeout", "acse_timeout", "idle_timeout", "dimse_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive", **{name: getattr(self, name)})
        if self.workers < 1:
            raise ConfigError("workers must be at least 1", workers=self.workers)

    @classmethod
    def for_ae(cls, ae: AeSettings, contexts: tuple[SupportedContext, ...], *,
               host: str = "127.0.0.1", port: int = 0, workers: int = 8,
               tls: TlsSettings | None = None) -> "ServerSettings":
        """Acceptor settings for an AE described by the shared :class:`AeSettings`.

        Why: ``AeSettings`` is where an actor states its AE title, PDU size, calling-AE
        allowlist, called-AE check, association limits, ARTIM and timeouts; a listener built
        from it here keeps exactly those (``network_timeout`` is our ``idle_timeout``,
        as in pynetdicom), so moving a listener onto this acceptor changes no policy.
        """
        return cls(ae_title=ae.ae_title, host=host, port=port, contexts=tuple(contexts),
                   max_pdu=ae.max_pdu, max_associations=ae.maximum_associations,
                   max_unassociated=ae.max_unassociated, artim_timeout=ae.artim_timeout,
                   allowed_calling=frozenset(ae.allowed_calling),
                   require_called=ae.require_called, acse_timeout=ae.acse_timeout,
                   idle_timeout=ae.network_timeout, dimse_timeout=ae.dimse_timeout,
                   workers=workers, tls=tls)


async def _echo(request: DimseRequest) -> int:
    return 0x0000


class FastServer:
    """The acceptor: an event loop in a daemon thread, started and stopped like an actor."""

    def __init__(self, settings: ServerSettings, handlers: Mapping[str, Handler] | None = None,
                 *, events: EventBus | None = None, actor: str = "fast-server") -> None:
        self.settings = settings
        self.policy = AcceptorPolicy(settings.ae_title, tuple(settings.contexts), settings.max_pdu,
                                     settings.require_called, frozenset(settings.allowed_calling),
                                     settings.extended_negotiation)
        self.supported = build_supported(settings.contexts)
        # built now, so a missing key or CA file is a ConfigError before anything listens
        self._ssl: ssl.SSLContext | None = (settings.tls.server_context()
                                            if settings.tls is not None else None)
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
        self._unassociated = 0

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
        """Established associations: what ``max_associations`` limits."""
        return self._active

    @property
    def unassociated_connections(self) -> int:
        """Accepted connections with no association (yet): what ``max_unassociated`` limits."""
        return self._unassociated

    def admit(self) -> bool:
        """Take an association slot for a connection whose RQ we would accept.

        Called by the association once negotiation succeeded, so a connection is
        counted against ``max_associations`` only from then on; False means the
        limit is reached and the caller answers local-limit-exceeded. Loop thread only.
        """
        if self._active >= self.settings.max_associations:
            return False
        self._active += 1
        self._unassociated -= 1
        return True

    def report_closed(self, peer: str, kind: str, **detail: Any) -> None:
        """One ``failed`` event for a connection we closed before any association
        (ARTIM expired, unassociated cap), so a lock-out attempt shows in the timeline."""
        self.events.emit(Exchange(kind=kind, actor=self.actor, peer=peer, start=time.time(),
                                  outcome="failed", detail=detail))

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
            backlog=max(LISTEN_BACKLOG, self.settings.max_associations * 2))
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
        if self._unassociated >= self.settings.max_unassociated:
            # closed at once (FIN, nothing sent): queueing it would only let a flood of
            # silent sockets grow without bound; the peer may retry later
            peer = "%s:%s" % tuple((writer.get_extra_info("peername") or ("?", 0))[:2])
            log.warning("%s: %d connections without an association; closing %s at once",
                        self.actor, self._unassociated, peer)
            self.report_closed(peer, "dicom.connection-refused",
                               max_unassociated=self.settings.max_unassociated)
            writer.close()
            return
        _tune_socket(writer)
        self._unassociated += 1
        if self._ssl is not None and not await self._handshake(writer):
            self._unassociated -= 1
            return
        association = ServerAssociation(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._connections[association] = task
        try:
            await association.run()
        except asyncio.CancelledError:
            pass  # our own stop(); re-raising makes asyncio log it as a failed callback
        finally:
            self._connections.pop(association, None)
            if association.admitted:
                self._active -= 1
            else:
                self._unassociated -= 1

    async def _handshake(self, writer: asyncio.StreamWriter) -> bool:
        """Upgrade the accepted connection to TLS within ARTIM; False (and closed) if not.

        Runs in the connection's own coroutine, so other connections are accepted
        meanwhile; the connection stays counted as unassociated until it is done.
        """
        assert self._ssl is not None
        peer = "%s:%s" % tuple((writer.get_extra_info("peername") or ("?", 0))[:2])
        artim = self.settings.artim_timeout
        try:
            async with asyncio.timeout(artim):
                # asyncio.timeout decides (one reason, "timed out"); the ssl timeout is a backstop
                await writer.start_tls(self._ssl, ssl_handshake_timeout=artim + 1.0)
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except (OSError, TimeoutError, ConnectionError, EOFError) as exc:
            reason = describe_tls_failure(exc)
            log.info("%s: TLS handshake with %s failed: %s", self.actor, peer, reason)
            self.report_closed(peer, "dicom.tls-refused", reason=reason,
                               profile=self.settings.tls.profile if self.settings.tls else None)
            writer.transport.abort()
            return False
        return True

    def __enter__(self) -> "FastServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["FastServer", "ServerSettings", "SupportedContext", "DimseRequest", "Reply",
           "VERIFICATION"]
