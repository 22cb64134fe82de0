"""The archive's DICOMweb endpoint: the QIDO-RS, WADO-RS and STOW-RS subset a viewer uses.

Resources under ``{root}`` (default ``/dicom-web``, as Orthanc's plugin, so a
scenario points a viewer at either the same way):

* QIDO-RS ``GET /studies``, ``/series``, ``/instances``, ``/studies/{s}/series``,
  ``/studies/{s}/instances``, ``/studies/{s}/series/{se}/instances``
  (:mod:`simulators.dicomweb.qido`);
* WADO-RS ``GET /studies/{s}[/series/{se}[/instances/{i}]]`` and ``.../metadata``
  (:mod:`simulators.dicomweb.wado`);
* STOW-RS ``POST /studies[/{s}]`` (:mod:`simulators.dicomweb.stow`).

Why the standard library's ThreadingHTTPServer: no new dependency, and each
request is blocking work anyway (SQLite, file reads, fsync). Index access goes
through a small fixed pool because :class:`DicomStore` keeps one read connection
per thread until it closes, and HTTP connections come and go. Every request is one
exchange event (``dicomweb.qido``/``.wado``/``.stow``). Errors are HTTP statuses
(400 bad parameters or body, 404 unknown UID or path, 405, 406, 411, 413, 415);
an exception in a handler is a 500 for that request, never the end of the server.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

from simulators.dicom.store import DicomStore
from simulators.dicomweb import qido, stow, wado
from simulators.dicomweb.media import (
    DICOM, DICOM_JSON, MULTIPART, HttpError, multipart_boundary, new_boundary,
    require_json, split_multipart, wanted_transfer_syntaxes,
)
from simulators.errors import ConfigError
from simulators.events import EventBus, bus as default_bus

log = logging.getLogger(__name__)
T = TypeVar("T")
_UID = r"([0-9A-Za-z.\-]{1,64})"
#: (method, path pattern, kind of exchange, handler name)
_ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    (m, re.compile(p), k, h) for m, p, k, h in (
        ("GET", r"/studies", "qido", "_search_studies"),
        ("GET", r"/series", "qido", "_search_series"),
        ("GET", r"/instances", "qido", "_search_instances"),
        ("GET", rf"/studies/{_UID}/series", "qido", "_search_series"),
        ("GET", rf"/studies/{_UID}/instances", "qido", "_search_instances"),
        ("GET", rf"/studies/{_UID}/series/{_UID}/instances", "qido", "_search_instances"),
        ("GET", rf"/studies/{_UID}(?:/series/{_UID}(?:/instances/{_UID})?)?/metadata",
         "wado", "_metadata"),
        ("GET", rf"/studies/{_UID}(?:/series/{_UID}(?:/instances/{_UID})?)?", "wado",
         "_retrieve"),
        ("POST", rf"/studies(?:/{_UID})?", "stow", "_store"),
    )]
MAX_BODY = 1 << 30


class DicomWebServer:
    """DICOMweb on a :class:`DicomStore`; ``start()`` binds (port 0 = a free port)."""

    def __init__(self, store: DicomStore, *, host: str = "127.0.0.1", port: int = 0,
                 root: str = "/dicom-web", events: EventBus | None = None,
                 actor: str = "archive", max_body: int = MAX_BODY, index_workers: int = 4) -> None:
        self.store = store
        self.host, self.requested_port = host, port
        self.root = "/" + root.strip("/") if root.strip("/") else ""
        self.events = events or default_bus
        self.actor = actor
        self.max_body = max_body
        self._index_workers = index_workers
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise ConfigError("the DICOMweb server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT/dicom-web``) as DICOMwebClient takes it."""
        return f"http://{self.host}:{self.port}{self.root}"

    def start(self) -> DicomWebServer:
        if self._httpd is not None:
            return self
        handler = type("BoundDicomWebHandler", (_Handler,), {"web": self})
        try:
            httpd = ThreadingHTTPServer((self.host, self.requested_port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen for DICOMweb: {exc.strerror or exc}",
                              host=self.host, port=self.requested_port) from exc
        httpd.daemon_threads = True
        self._pool = ThreadPoolExecutor(self._index_workers, thread_name_prefix="dicomweb-index")
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"dicomweb-{self.actor}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def index(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` (index work) on the fixed pool and wait for it."""
        assert self._pool is not None
        return self._pool.submit(fn, *args).result()

    def __enter__(self) -> DicomWebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    """One HTTP connection; ``web`` is bound per server by :meth:`DicomWebServer.start`."""

    web: DicomWebServer
    protocol_version = "HTTP/1.1"
    server_version = "pacsim-dicomweb/1"
    #: Socket timeout: an idle keep-alive or a stalled upload frees its thread.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        root = self.web.root
        route = None
        if path.startswith(root):
            relative = path[len(root):] or "/"
            matching = [(m, k, h, match) for m, pattern, k, h in _ROUTES
                        if (match := pattern.fullmatch(relative))]
            route = next((r for r in matching if r[0] == method),
                         matching[0] if matching else None)
        kind = route[1] if route else "http"
        self._started = self._body_read = False
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        with self.web.events.exchange(f"dicomweb.{kind}", self.web.actor, peer,
                                      method=method, path=path) as event:
            try:
                if route is None:
                    raise HttpError(404, "no such DICOMweb resource")
                if route[0] != method:
                    raise HttpError(405, f"{method} is not allowed here")
                self.query = parts.query
                event.bytes = getattr(self, route[2])(*[g for g in route[3].groups()])
                event.status = "200"
            except HttpError as exc:
                event.outcome, event.status = "failed", str(exc.status)
                event.detail["error"] = exc.reason
                self._drain_body()
                self._plain(exc.status, exc.reason)
            except (BrokenPipeError, ConnectionResetError) as exc:
                event.outcome, event.detail["error"] = "error", f"client went away: {exc}"
                self.close_connection = True
            except Exception as exc:  # noqa: BLE001 - one bad request must not kill the server
                log.exception("DICOMweb request failed: %s %s", method, path)
                event.outcome, event.status, event.detail["error"] = "error", "500", str(exc)
                self._plain(500, "internal error")

    # ------------------------------------------------------------------ responses
    def _plain(self, status: int, text: str) -> None:
        if getattr(self, "_started", False):
            self.close_connection = True  # headers already out: only closing tells the client
            return
        body = (text + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> int:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", DICOM_JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return len(body)

    def _chunked(self, content_type: str, chunks: Iterator[bytes]) -> int:
        """Stream ``chunks`` with chunked transfer encoding; returns the body size.

        The first chunk is produced before the headers go out, so an error while
        preparing (an unreadable file) is still a proper status line."""
        first = next(chunks, b"")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._started = True
        sent = 0
        for chunk in _prepend(first, chunks):
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        self.wfile.write(b"0\r\n\r\n")
        self._started = False
        return sent

    # ------------------------------------------------------------------ request bodies
    def _body(self) -> bytes:
        """The request body (Content-Length or chunked), bounded by ``max_body``."""
        self._body_read = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise HttpError(411, "a body needs Content-Length or chunked encoding")
        if not length_text.strip().isdigit():
            raise HttpError(400, "invalid Content-Length")
        length = int(length_text)
        if length > self.web.max_body:
            self.close_connection = True
            raise HttpError(413, "request body too large")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise HttpError(400, "request body shorter than its Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        for _ in range(1_000_000):
            line = self.rfile.readline(1026)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self.close_connection = True
                raise HttpError(400, "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(8194).strip():  # trailers
                    pass
                return bytes(body)
            if len(body) + size > self.web.max_body:
                self.close_connection = True
                raise HttpError(413, "request body too large")
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.read(2) != b"\r\n":
                self.close_connection = True
                raise HttpError(400, "chunked body ends early")
            body += data
        self.close_connection = True
        raise HttpError(400, "too many chunks")

    def _drain_body(self) -> None:
        """After an early refusal, keep the connection usable or close it."""
        if getattr(self, "_body_read", False) or self.command != "POST":
            return
        self.close_connection = True

    # ------------------------------------------------------------------ QIDO-RS
    def _search(self, level: str, fixed: dict[str, str]) -> int:
        require_json(self.headers.get("Accept"))
        found = self.web.index(lambda: list(qido.search(
            self.web.store, level, self.query, fixed, self.web.url)))
        return self._json(200, found)

    def _search_studies(self) -> int:
        return self._search("STUDY", {})

    def _search_series(self, study: str | None = None) -> int:
        return self._search("SERIES", {"StudyInstanceUID": study} if study else {})

    def _search_instances(self, study: str | None = None, series: str | None = None) -> int:
        fixed = {k: v for k, v in (("StudyInstanceUID", study), ("SeriesInstanceUID", series))
                 if v}
        return self._search("IMAGE", fixed)

    # ------------------------------------------------------------------ WADO-RS
    def _retrieve(self, study: str, series: str | None, instance: str | None) -> int:
        wanted = wanted_transfer_syntaxes(self.headers.get("Accept"))
        found = self.web.index(wado.select, self.web.store, study, series, instance)
        plan = wado.plan_syntaxes(found, wanted)
        boundary = new_boundary()
        content_type = f'{MULTIPART}; type="{DICOM}"; boundary={boundary}'
        return self._chunked(content_type, wado.stream_instances(found, plan, boundary))

    def _metadata(self, study: str, series: str | None, instance: str | None) -> int:
        require_json(self.headers.get("Accept"))
        found = self.web.index(wado.select, self.web.store, study, series, instance)
        return self._chunked(DICOM_JSON, wado.stream_metadata(found))

    # ------------------------------------------------------------------ STOW-RS
    def _store(self, study: str | None) -> int:
        boundary = multipart_boundary(self.headers.get("Content-Type"))
        body = self._body()
        parts = list(split_multipart(body, boundary))
        result = self.web.index(stow.store_parts, self.web.store, parts, self.web.url, study)
        self._json(result.status, result.response.to_json_dict())
        return len(body)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


__all__ = ["DicomWebServer", "MAX_BODY"]
