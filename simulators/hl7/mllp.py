"""MLLP over TCP: the asyncio server (the clients live in ``mllp_client``, re-exported).

Why our own and not hl7apy's or python-hl7's: hl7apy's server answers one message
and closes, and closes silently on errors; python-hl7's client reads once, so an ACK
split over two TCP segments comes back truncated. Here:

* one connection carries any number of messages, answered in order (original
  acknowledgment mode: the sender waits for each ACK);
* framing is :class:`simulators.hl7.framing.FrameDecoder` (split frames, several
  frames per read, garbage between frames, LF/CRLF separators);
* a frame over ``max_frame`` closes that connection with memory bounded; a frame not
  completed within ``read_timeout`` closes that connection; a disconnect mid-frame
  only ends that connection: the listener keeps serving;
* idle connections never lock others out (issue 13): there is no connection or
  slot limit for them to use up. Each connection is one coroutine; the handler
  pool (``max_workers``) is taken only while a message is being processed, never
  by a connection waiting for its next frame. HL7 senders legitimately keep one
  connection open and quiet for hours, so idle connections are kept by default;
  ``idle_timeout`` closes a connection with no frame in progress after that many
  seconds, for sites that want abandoned sockets reclaimed;
* the handler runs in a thread pool, so a slow handler does not stall other
  connections, and a handler exception becomes an AE ACK with ERR (207), never a
  silent close; :class:`Hl7Error` from the handler picks the ACK code and ERR itself;
* each frame is decoded in the character set its MSH-18 declares
  (:mod:`simulators.hl7.charsets`); ``encoding`` is only the default for frames
  without MSH-18, and an unknown MSH-18 is answered AE 103 without reaching the
  handler (issue 13: ISO-8859-2 names were read as latin-1 and accepted);
* every message is one event: ``hl7.receive`` on the server, ``hl7.send`` on the
  client, with the ACK code (MSA-1) as status;
* MLLP over TLS (``tls``, the same :class:`~simulators.tls.TlsSettings` and profiles
  as DICOM): each connection's handshake runs in its own coroutine and must finish
  within ``read_timeout``; a failed one closes that connection and emits one
  ``hl7.tls-refused`` event with OpenSSL's reason.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from types import TracebackType
from typing import Callable, Self

from simulators.errors import ConfigError, Hl7Error, MllpError, PortInUse
from simulators.events import EventBus, Exchange, bus as default_bus
from simulators.hl7.ack import ack
from simulators.hl7.charsets import decode_message, reply_codec
from simulators.hl7.er7 import is_health_check, message_label, read_header
from simulators.hl7.framing import FrameDecoder, decode_frame, encode_frame
from simulators.hl7.mllp_client import AsyncMllpClient, MllpClient, record_reply
from simulators.tls import TlsSettings, describe_tls_failure

log = logging.getLogger(__name__)

#: One decoded message in (segments separated by CR), ACK text out (None: no reply).
Handler = Callable[[str], "str | None"]

_READ_SIZE = 65536


class MllpServer:
    """An MLLP listener in its own asyncio loop on a daemon thread."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0, *,
                 max_frame: int = 1_048_576, read_timeout: float = 30.0,
                 encoding: str = "utf-8", name: str = "mllp",
                 events: EventBus | None = None, max_workers: int = 32,
                 idle_timeout: float | None = None, tls: TlsSettings | None = None) -> None:
        if max_frame <= 0 or read_timeout <= 0:
            raise ConfigError("max_frame and read_timeout must be positive",
                              max_frame=max_frame, read_timeout=read_timeout)
        if idle_timeout is not None and idle_timeout <= 0:
            raise ConfigError("idle_timeout must be positive (or None: keep idle connections)",
                              idle_timeout=idle_timeout)
        self.idle_timeout = idle_timeout
        self.tls = tls
        # built now, so a missing certificate is a ConfigError before anything listens
        self._ssl: ssl.SSLContext | None = tls.server_context() if tls is not None else None
        self.handler = handler
        self.host, self.port = host, port
        self.max_frame, self.read_timeout = max_frame, read_timeout
        self.encoding, self.name = encoding, name
        self.events = events or default_bus
        self._max_workers = max_workers
        self._address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; the real port when constructed with port 0."""
        if self._address is None:
            raise MllpError("MLLP server is not started", name=self.name)
        return self._address

    @property
    def connection_count(self) -> int:
        """Open connections right now (tests use it to prove a connection was closed)."""
        return len(self._connections)

    def start(self) -> None:
        """Bind and listen; returns once the socket accepts connections. Idempotent.

        :class:`PortInUse` when another socket holds the port (as every pacsim
        listener says it), :class:`MllpError` for any other bind failure.
        """
        with self._lock:
            if self._thread is not None:
                return
            self._loop = asyncio.new_event_loop()
            self._executor = ThreadPoolExecutor(self._max_workers,
                                                thread_name_prefix=f"mllp-{self.name}")
            ready = threading.Event()
            failure: list[BaseException] = []
            self._thread = threading.Thread(target=self._run, args=(ready, failure),
                                            name=f"mllp-{self.name}", daemon=True)
            self._thread.start()
            ready.wait()
            if failure:
                self._thread.join()
                self._thread = None
                self._executor.shutdown(wait=False)
                message = f"cannot listen on {self.host}:{self.port}"
                if getattr(failure[0], "errno", None) == errno.EADDRINUSE:
                    raise PortInUse(message, host=self.host, port=self.port, name=self.name,
                                    error=str(failure[0])) from failure[0]
                raise MllpError(message, name=self.name, error=str(failure[0])) from failure[0]
        log.info("MLLP server %s listening on %s:%d", self.name, *self.address)

    def stop(self) -> None:
        """Close the listener and every connection; safe to call twice."""
        with self._lock:
            thread, loop, executor = self._thread, self._loop, self._executor
            if thread is None or loop is None:
                return
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
            self._thread = self._loop = self._executor = None
            self._address = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- event loop thread -------------------------------------------------------
    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve_connection, self.host, self.port))
            self._address = self._server.sockets[0].getsockname()[:2]
        except OSError as exc:
            failure.append(exc)
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close_all())
            loop.close()

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self._ssl is not None and not await self._handshake(writer, peer):
                return
            await self._read_frames(reader, writer, peer)
        except (ConnectionError, OSError) as exc:
            log.info("MLLP %s: connection from %s lost: %s", self.name, peer, exc)
        except asyncio.CancelledError:
            # stop() cancels open connections; ending normally keeps Python 3.11's
            # stream callback from logging the cancellation as an error.
            pass
        finally:
            try:
                writer.close()
                with suppress(Exception, asyncio.CancelledError):  # last step: cancel is fine
                    await writer.wait_closed()
            finally:  # only now, so stop() also waits for this close to finish
                self._connections.discard(task)

    async def _handshake(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """TLS within ``read_timeout``; False (one ``hl7.tls-refused`` event) if it failed."""
        assert self._ssl is not None
        try:
            async with asyncio.timeout(self.read_timeout):
                await writer.start_tls(self._ssl, ssl_handshake_timeout=self.read_timeout + 1.0)
        except (OSError, TimeoutError, EOFError) as exc:
            reason = describe_tls_failure(exc)
            log.info("MLLP %s: TLS handshake with %s failed: %s", self.name, peer, reason)
            self.events.emit(Exchange(kind="hl7.tls-refused", actor=self.name, peer=peer,
                                      start=time.time(), outcome="failed",
                                      detail={"reason": reason}))
            writer.transport.abort()
            return False
        return True

    async def _read_frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           peer: str) -> None:
        loop = asyncio.get_running_loop()
        decoder = FrameDecoder(self.max_frame)
        frame_started: float | None = None
        while True:
            timeout = self.idle_timeout  # between frames: None keeps a quiet sender
            if decoder.in_frame:
                frame_started = frame_started if frame_started is not None else loop.time()
                timeout = max(0.0, self.read_timeout - (loop.time() - frame_started))
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), timeout)
            except TimeoutError:
                if not decoder.in_frame:
                    log.info("MLLP %s: %s idle for %.1fs; closing", self.name, peer,
                             self.idle_timeout)
                    return
                log.warning("MLLP %s: frame from %s not completed in %.1fs (%d bytes); "
                            "closing", self.name, peer, self.read_timeout, decoder.pending)
                return
            if not data:
                if decoder.in_frame:
                    log.warning("MLLP %s: %s disconnected mid-frame (%d bytes dropped)",
                                self.name, peer, decoder.pending)
                return
            result = decoder.feed(data)
            if result.discarded:
                log.warning("MLLP %s: discarded %d bytes outside a frame from %s",
                            self.name, result.discarded, peer)
            if result.truncated:
                log.warning("MLLP %s: %d truncated frame(s) from %s dropped",
                            self.name, result.truncated, peer)
            if result.frames:
                frame_started = None
            for frame in result.frames:
                answered = await self._answer(frame, peer)
                if answered is not None:
                    reply, codec = answered
                    writer.write(encode_frame(reply, codec, errors="replace"))
                    await writer.drain()
            if result.oversize:
                log.warning("MLLP %s: frame from %s exceeds %d bytes; closing",
                            self.name, peer, self.max_frame)
                return

    async def _answer(self, frame: bytes, peer: str) -> tuple[str, str] | None:
        """Run the handler off the loop; turn its exceptions into AE/AR ACKs.

        Returns the reply and the codec to send it in: the sender's MSH-18 set when
        the message was decoded in it, else the listener's default.
        """
        try:
            text, refused = decode_message(frame, self.encoding), None
        except Hl7Error as exc:  # unknown MSH-18 or bytes not in it: refuse, never guess
            text, refused = decode_frame(frame, "latin-1"), exc  # enough to address a NACK
        # the same rule ack() uses for MSH-18, so the ACK says the set it is in
        codec = reply_codec(text, self.encoding)
        with self.events.exchange("hl7.receive", self.name, peer,
                                  message=message_label(text)) as event:
            event.bytes = len(frame)
            try:
                if refused is not None:
                    raise refused
                reply = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.handler, text)
            except Hl7Error as exc:
                _log_refusal(self.name, peer, text, exc)
                reply = ack(text, exc.ack_code, error_code=exc.hl7_code,
                            error_text=exc.message, error_location=exc.location)
            except Exception as exc:  # noqa: BLE001 - any handler bug must still get a NACK
                log.exception("MLLP %s: handler failed for a message from %s", self.name, peer)
                reply = ack(text, "AE", error_code=207,
                            error_text=f"application error: {type(exc).__name__}")
            record_reply(event, reply)
            return (reply, codec) if reply is not None else None


def _log_refusal(name: str, peer: str, text: str, exc: Hl7Error) -> None:
    """A refused message is worth a line; pacsim's own health check is not (DEBUG)."""
    try:
        health = is_health_check(read_header(text))
    except Hl7Error:
        health = False
    if health:
        log.debug("MLLP %s: health check from %s answered (%s)", name, peer, exc.ack_code)
    else:
        log.info("MLLP %s: %s rejected: %s", name, peer, exc)


__all__ = ["Handler", "MllpServer", "MllpClient", "AsyncMllpClient"]
