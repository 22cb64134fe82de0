"""MLLP clients: a blocking one for actors and tests, an asyncio one for load.

Both keep one connection for many messages and read until a *whole* reply frame has
arrived (python-hl7's client reads once, so an ACK split over two TCP segments came
back truncated). Both reconnect once when a kept connection turns out to be closed
by the peer (interface engines close idle connections), and raise
:class:`~simulators.errors.MllpError` on a close without a reply, its subclasses
:class:`~simulators.errors.MllpUnreachable` when the connection is refused and
:class:`~simulators.errors.MllpTimeout` when the connection or the reply does not come
in time. After a timeout the connection is dropped: a late reply would otherwise be
taken as the answer to the next message. Each send is one ``hl7.send`` event with
MSA-1 as status. With ``tls`` both connect over TLS (the profile's versions and suites);
a failed handshake is :class:`~simulators.errors.MllpTlsError` with OpenSSL's reason.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from contextlib import suppress
from types import TracebackType
from typing import Self

from simulators.errors import MllpError, MllpTimeout, MllpTlsError, MllpUnreachable
from simulators.events import EventBus, Exchange, bus as default_bus
from simulators.hl7.er7 import ack_code, message_label
from simulators.hl7.framing import FrameDecoder, decode_frame, encode_frame
from simulators.tls import TlsSettings, describe_tls_failure

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_POSITIVE_ACKS = frozenset({"AA", "CA"})


def record_reply(event: Exchange, reply: str | None) -> None:
    """Put the ACK code on the event; anything but AA/CA counts as a failed exchange.

    Shared by the server (``hl7.receive``) and the clients (``hl7.send``) so reports
    judge both directions the same way.
    """
    code = ack_code(reply) if reply else ""
    event.status = code
    if reply is None:
        event.detail["reply"] = "none"
    elif code not in _POSITIVE_ACKS:
        event.outcome = "failed"


class _ClientSettings:
    """What both clients share: where they send, limits, and the event bus."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0,
                 encoding: str = "utf-8", max_frame: int = 1_048_576,
                 events: EventBus | None = None, name: str = "mllp-client",
                 tls: TlsSettings | None = None) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.tls = tls
        self._ssl = tls.client_context() if tls is not None else None
        self.encoding, self.max_frame, self.name = encoding, max_frame, name
        self.events = events or default_bus
        self._decoder = FrameDecoder(max_frame)

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def _server_hostname(self) -> str | None:
        return self.host if self.tls is not None and self.tls.check_hostname else None

    def _tls_error(self, exc: BaseException) -> MllpTlsError:
        reason = describe_tls_failure(exc)
        return MllpTlsError(f"TLS handshake failed: {reason}", peer=self.peer, reason=reason)


class MllpClient(_ClientSettings):
    """Blocking MLLP client that keeps one connection for many messages."""

    _sock: socket.socket | None = None  # opened on first send

    def send(self, message: str) -> str:
        """Send one message and return the whole reply frame's text.

        Reconnects once when a kept connection turns out to be closed by the peer
        (idle timeouts on interface engines are common); raises :class:`MllpError`
        on timeout (:class:`MllpTimeout`), refusal (:class:`MllpUnreachable`), or a
        close without a reply.
        """
        frame = encode_frame(message, self.encoding)
        with self.events.exchange("hl7.send", self.name, self.peer,
                                  message=message_label(message)) as event:
            event.bytes = len(frame)
            reused = self._sock is not None
            try:
                reply = self._roundtrip(frame)
            except _PeerClosed:
                self.close()
                if not reused:
                    raise MllpError("peer closed the connection without replying",
                                    peer=self.peer) from None
                log.info("MLLP client: %s closed the kept connection; reconnecting", self.peer)
                try:
                    reply = self._roundtrip(frame)
                except _PeerClosed:
                    self.close()
                    raise MllpError("peer closed the connection without replying",
                                    peer=self.peer) from None
            record_reply(event, reply)
            return reply

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError as exc:  # before OSError, its parent: nobody answered the SYN
            raise MllpTimeout(f"cannot connect: {exc}", peer=self.peer) from exc
        except OSError as exc:
            raise MllpUnreachable(f"cannot connect: {exc}", peer=self.peer) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl is not None:
            try:
                sock = self._ssl.wrap_socket(sock, server_hostname=self._server_hostname)
            except ssl.SSLError as exc:
                sock.close()
                raise self._tls_error(exc) from exc
            except OSError as exc:  # reset or closed by the server mid-handshake
                sock.close()
                raise self._tls_error(exc) from exc
        self._decoder = FrameDecoder(self.max_frame)
        self._sock = sock
        return sock

    def _roundtrip(self, frame: bytes) -> str:
        sock = self._sock or self._connect()
        try:
            sock.sendall(frame)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _PeerClosed() from exc
        deadline = time.monotonic() + self.timeout
        received = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()  # a late reply would be paired with the next message
                raise MllpTimeout(f"no complete reply within {self.timeout}s",
                                  peer=self.peer, received=received)
            sock.settimeout(remaining)
            try:
                data = sock.recv(_READ_SIZE)
            except TimeoutError:
                continue
            except ssl.SSLError as exc:  # TLS 1.3: a refused client certificate shows here
                self.close()
                raise self._tls_error(exc) from exc
            except ConnectionResetError as exc:
                if received:
                    self.close()
                    raise MllpError("connection reset mid-reply", peer=self.peer) from exc
                raise _PeerClosed() from exc
            if not data:
                if received:
                    self.close()
                    raise MllpError("peer closed mid-reply", peer=self.peer,
                                    received=received)
                raise _PeerClosed()
            received += len(data)
            result = self._decoder.feed(data)
            if result.oversize:
                self.close()
                raise MllpError("reply exceeds max_frame", peer=self.peer,
                                max_frame=self.max_frame)
            if result.frames:
                if len(result.frames) > 1:
                    log.warning("MLLP client: %d unexpected extra frames from %s dropped",
                                len(result.frames) - 1, self.peer)
                return decode_frame(result.frames[0], self.encoding)

    def close(self) -> None:
        """Close the connection (the next send opens a new one). Idempotent."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with suppress(OSError):
                sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _PeerClosed(Exception):
    """Internal: the peer closed before any reply byte (a retry may be safe)."""


class AsyncMllpClient(_ClientSettings):
    """asyncio MLLP client for load generators: one connection, many messages."""

    _reader: asyncio.StreamReader | None = None  # opened on first send
    _writer: asyncio.StreamWriter | None = None

    async def send(self, message: str) -> str:
        """Send one message, await the whole reply; same rules as :meth:`MllpClient.send`."""
        frame = encode_frame(message, self.encoding)
        with self.events.exchange("hl7.send", self.name, self.peer,
                                  message=message_label(message)) as event:
            event.bytes = len(frame)
            reused = self._writer is not None
            try:
                reply = await asyncio.wait_for(self._roundtrip(frame), self.timeout)
                if reply is None and reused:
                    await self.close()
                    reply = await asyncio.wait_for(self._roundtrip(frame), self.timeout)
            except TimeoutError:
                await self.close()
                raise MllpTimeout(f"no complete reply within {self.timeout}s",
                                  peer=self.peer) from None
            if reply is None:
                await self.close()
                raise MllpError("peer closed the connection without replying", peer=self.peer)
            record_reply(event, reply)
            return reply

    async def _roundtrip(self, frame: bytes) -> str | None:
        """The reply text, or None if the peer closed before sending any of it."""
        if self._writer is None:
            secure = {} if self._ssl is None else {
                "ssl": self._ssl, "server_hostname": self._server_hostname or "",
                "ssl_handshake_timeout": self.timeout + 1.0}  # send()'s own timeout decides
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, **secure)  # type: ignore[arg-type]
            except ssl.SSLError as exc:
                raise self._tls_error(exc) from exc
            except OSError as exc:  # a slow connect ends in send()'s own timeout instead
                raise MllpUnreachable(f"cannot connect: {exc}", peer=self.peer) from exc
            sock = self._writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._decoder = FrameDecoder(self.max_frame)
        assert self._reader is not None and self._writer is not None
        received = 0
        try:
            self._writer.write(frame)
            await self._writer.drain()
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    break
                received += len(data)
                result = self._decoder.feed(data)
                if result.oversize:
                    await self.close()
                    raise MllpError("reply exceeds max_frame", peer=self.peer)
                if result.frames:
                    return decode_frame(result.frames[0], self.encoding)
        except ConnectionError:
            pass
        if received:
            await self.close()
            raise MllpError("peer closed mid-reply", peer=self.peer, received=received)
        return None

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()



__all__ = ["MllpClient", "AsyncMllpClient", "record_reply"]
