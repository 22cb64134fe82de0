"""One small JSON-over-HTTP server base: threaded, loopback by default, one error body.

Why the standard library's ThreadingHTTPServer: the DICOMweb endpoint, the actors'
control API and the trainer API each have a handful of routes and few clients, and
the actor images should not need a web framework. Why one base: the three used to
copy their start/stop code and answer errors three ways; now binding, threads,
timeouts, body limits and the error format (:mod:`simulators.http.problem`) are
written here once.

What every server built on :class:`JsonHttpServer` gets:

* ``start()``/``stop()`` or ``with``; port 0 picks a free port (``.port`` tells it);
  a port another process holds raises :class:`~simulators.errors.PortInUse`;
* binds 127.0.0.1 unless told otherwise (these are test services, not meant for the
  hospital network unless someone says so);
* one daemon thread per connection, and a socket timeout (``idle_timeout``) so an
  idle keep-alive or a client that stalls mid-request frees its thread instead of
  holding it forever; other clients are served meanwhile;
* JSON routes: ``routes()`` maps ``(method, path)`` to a function of the
  :class:`Request`, or a subclass overrides :meth:`JsonHttpServer.handle`; a server
  that streams other media (DICOMweb) brings its own handler class instead;
* errors as ``{"error": {"status", "type", "message", "context"}}``: a route raises
  :class:`~simulators.http.problem.Refused` (or any PacsimError, answered 400), a
  bug is a 500 for that request and never the end of the server.

This package sits with the protocols, below the actors: it imports nothing of
pacsim but :mod:`simulators.errors` and :mod:`simulators.events`.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, Self
from urllib.parse import urlsplit

from simulators.errors import ConfigError, PacsimError, PortInUse
from simulators.http.problem import Refused, problem

log = logging.getLogger(__name__)

#: Seconds a connection may sit idle (or stall inside a request) before it is closed.
IDLE_TIMEOUT = 30.0
#: Largest JSON request body a JSON route accepts unless the server says otherwise.
MAX_JSON_BODY = 4 * 1024 * 1024
#: Methods whose request may carry a body.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Upper bound on the chunks of one chunked body (each is read whole).
_MAX_CHUNKS = 1_000_000

Route = Callable[["Request"], Any]


@dataclass(frozen=True)
class Request:
    """One JSON request as a route sees it (path without the query string)."""

    method: str
    path: str
    query: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    client: str = ""


class _Listener(ThreadingHTTPServer):
    """The socket server: daemon threads, no SO_REUSEPORT (so a second server on a
    taken port fails instead of silently sharing it), IPv6 when the host is one."""

    daemon_threads = True
    allow_reuse_address = True
    allow_reuse_port = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left mid-answer is routine; anything else is a bug, logged.

        Why: socketserver's default prints a traceback to stderr for every request that
        raised - a client closing before reading its answer (BrokenPipe/reset, seen by
        the socket fuzzer, issue 13) then floods stderr, and real bugs bypass logging.
        """
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("HTTP client %s went away: %s", client_address, exc)
            return
        log.error("HTTP request from %s failed", client_address, exc_info=True)


class JsonHttpServer:
    """Base of pacsim's HTTP servers; see the module docstring for what it provides.

    Subclasses set ``what`` (named in errors and thread names), may set
    ``idle_timeout`` and ``max_body``, and either implement :meth:`routes`, override
    :meth:`handle`, or return their own handler from :meth:`handler_class`.
    """

    #: What this server is, for messages ("the control API is not running").
    what = "HTTP server"
    server_version = "pacsim/1"
    idle_timeout = IDLE_TIMEOUT
    max_body = MAX_JSON_BODY

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.requested_port = host, port
        self._httpd: _Listener | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise ConfigError(f"the {self.what} is not running")
        return int(self._httpd.server_address[1])

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` as bound (the configured host, the real port)."""
        return self.host, self.port

    def start(self) -> Self:
        """Bind and serve in a background thread; a second call does nothing."""
        if self._httpd is not None:
            return self
        try:
            httpd = _Listener((self.host, self.requested_port), self.handler_class())
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"{self.host}:{self.requested_port} is already in use",
                                host=self.host, port=self.requested_port,
                                server=self.what) from None
            raise ConfigError(f"the {self.what} cannot listen: {exc.strerror or exc}",
                              host=self.host, port=self.requested_port) from exc
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"pacsim-http-{self.what}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close the socket; idempotent. Requests still running
        finish on their daemon threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ requests
    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler bound to this server (a subclass per server, so the
        handler reaches it as ``self.api``)."""
        return type(f"{type(self).__name__}Handler", (JsonHandler,),
                    {"api": self, "server_version": self.server_version})

    def routes(self) -> dict[tuple[str, str], Route]:
        """``(method, path) -> route``; the default :meth:`handle` reads it."""
        return {}

    def handle(self, request: Request) -> Any:
        """The JSON payload of a 200 answer to ``request``; raise
        :class:`Refused` for any other answer."""
        table = self.routes()
        route = table.get((request.method, request.path.rstrip("/") or "/"))
        if route is not None:
            return route(request)
        if any(path == (request.path.rstrip("/") or "/") for _, path in table):
            raise Refused(HTTPStatus.METHOD_NOT_ALLOWED,
                          ConfigError(f"{request.method} is not allowed on {request.path}"))
        raise Refused(HTTPStatus.NOT_FOUND,
                      ConfigError(f"no route {request.method} {request.path}"))


class JsonHandler(BaseHTTPRequestHandler):
    """One connection of a :class:`JsonHttpServer`: HTTP/1.1 keep-alive, the idle
    timeout, bounded bodies, JSON answers and the one error body."""

    api: JsonHttpServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # StreamRequestHandler applies ``timeout`` to the socket: reads and writes of
        # a stalled client fail after it, and handle_one_request closes the connection.
        self.timeout = self.api.idle_timeout
        super().setup()

    def parse_request(self) -> bool:
        # One handler serves every request of a keep-alive connection: reset what
        # belongs to the previous request before reading the next one.
        self.body_read = False
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("%s %s %s", self.api.what, self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.dispatch("DELETE")

    # ------------------------------------------------------------------ JSON routes
    def dispatch(self, method: str) -> None:
        """Read the JSON body, ask the server, answer; every failure is one error body."""
        parts = urlsplit(self.path)
        try:
            body = self.read_json() if method in _BODY_METHODS else {}
            request = Request(method, parts.path, parts.query, body, self.headers,
                              f"{self.client_address[0]}:{self.client_address[1]}")
            self.send_json(HTTPStatus.OK, self.api.handle(request))
        except Refused as refused:
            self.send_problem(refused)
        except PacsimError as exc:
            self.send_problem(Refused(HTTPStatus.BAD_REQUEST, exc))
        except TimeoutError:
            self.timed_out()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - the server outlives any request
            log.exception("%s: %s %s failed", self.api.what, method, self.path)
            self.send_problem(Refused(HTTPStatus.INTERNAL_SERVER_ERROR, PacsimError(
                f"{type(exc).__name__}: {exc}")))

    def read_json(self) -> dict[str, Any]:
        """The request body as a JSON object (no body: ``{}``)."""
        raw = self.read_body(self.api.max_body)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refused(HTTPStatus.BAD_REQUEST,
                          ConfigError(f"request body is not JSON: {exc}")) from None
        if not isinstance(body, dict):
            raise Refused(HTTPStatus.BAD_REQUEST, ConfigError("request body must be an object"))
        return body

    # ------------------------------------------------------------------ bodies
    def read_body(self, limit: int) -> bytes:
        """The request body (Content-Length or chunked), at most ``limit`` bytes.

        No Content-Length and no chunked encoding means no body (RFC 9112 6.3).
        Whenever the body cannot be read to its end, the connection is closed:
        its next bytes would otherwise be taken for the next request."""
        self.body_read = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            self.close_connection = True
            raise Refused(HTTPStatus.BAD_REQUEST, ConfigError("invalid Content-Length"))
        length = int(length_text)
        if length > limit:
            self.close_connection = True
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          ConfigError("request body too large", limit=limit))
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise Refused(HTTPStatus.BAD_REQUEST,
                          ConfigError("request body shorter than its Content-Length"))
        return body

    def _read_chunked(self, limit: int) -> bytes:
        body = bytearray()
        for _ in range(_MAX_CHUNKS):
            line = self.rfile.readline(1026)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise Refused(HTTPStatus.BAD_REQUEST,
                              ConfigError("malformed chunked body")) from None
            if size == 0:
                while self.rfile.readline(8194).strip():  # trailers
                    pass
                return bytes(body)
            if len(body) + size > limit:
                self.close_connection = True
                raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              ConfigError("request body too large", limit=limit))
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.read(2) != b"\r\n":
                self.close_connection = True
                raise Refused(HTTPStatus.BAD_REQUEST, ConfigError("chunked body ends early"))
            body += data
        self.close_connection = True
        raise Refused(HTTPStatus.BAD_REQUEST, ConfigError("too many chunks"))

    # ------------------------------------------------------------------ answers
    def send_json(self, status: int, payload: Any,
                  content_type: str = "application/json") -> int:
        """Answer ``payload`` as JSON; returns the body's size."""
        data = json.dumps(payload, default=str).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        return len(data)

    def timed_out(self) -> None:
        """The client stalled mid-request for longer than the idle timeout: answer
        408 if it still listens, and close the connection either way (the socket is
        unusable after a timeout)."""
        self.close_connection = True
        try:
            self.send_problem(Refused(HTTPStatus.REQUEST_TIMEOUT, ConfigError(
                f"request not completed within {self.api.idle_timeout:g}s")))
        except OSError:
            pass

    def send_problem(self, refused: Refused) -> None:
        """Answer the one error body (plus the refusal's extra fields). A request
        whose body was refused unread gets ``Connection: close``."""
        if self.command in _BODY_METHODS and not getattr(self, "body_read", False):
            self.close_connection = True
        self.send_json(refused.status, {**problem(refused.status, refused.error),
                                        **refused.extra})


__all__ = ["JsonHttpServer", "JsonHandler", "Request", "Refused", "Route", "IDLE_TIMEOUT",
           "MAX_JSON_BODY"]
