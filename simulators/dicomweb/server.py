"""The archive's DICOMweb endpoint: the QIDO-RS, WADO-RS and STOW-RS subset a viewer uses.

Resources under ``{root}`` (default ``/dicom-web``, as Orthanc's plugin, so a
scenario points a viewer at either the same way):

* QIDO-RS ``GET /studies``, ``/series``, ``/instances``, ``/studies/{s}/series``,
  ``/studies/{s}/instances``, ``/studies/{s}/series/{se}/instances``
  (:mod:`simulators.dicomweb.qido`);
* WADO-RS ``GET /studies/{s}[/series/{se}[/instances/{i}]]`` and ``.../metadata``
  (:mod:`simulators.dicomweb.wado`);
* STOW-RS ``POST /studies[/{s}]`` (:mod:`simulators.dicomweb.stow`).

Why pacsim's JSON server base (:class:`~simulators.http.server.JsonHttpServer`, the
standard library's ThreadingHTTPServer underneath): no new dependency, and each
request is blocking work anyway (SQLite, file reads, fsync); binding, threads, the
idle timeout and body reading are the base's. Index access goes through a small
fixed pool because :class:`DicomStore` keeps one read connection per thread until it
closes, and HTTP connections come and go. Every request is one exchange event
(``dicomweb.qido``/``.wado``/``.stow``).

Errors are HTTP statuses (400 bad parameters or body, 404 unknown UID or path, 405,
406, 411, 413, 415) with pacsim's one JSON error body; PS3.18 only prescribes a body for
STOW-RS (the Store Instances Response Module as DICOM JSON, 200/202/409), which
keeps it. An exception in a handler is a 500 for that request, never the end of the
server.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

from simulators.dicom.store import DicomStore
from simulators.dicomweb import qido, stow, wado
from simulators.dicomweb.media import (
    DICOM, DICOM_JSON, MULTIPART, HttpError, multipart_boundary, new_boundary,
    require_json, split_multipart, wanted_transfer_syntaxes,
)
from simulators.errors import PacsimError
from simulators.events import EventBus, bus as default_bus
from simulators.http.problem import Refused
from simulators.http.server import JsonHandler, JsonHttpServer

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


class DicomWebServer(JsonHttpServer):
    """DICOMweb on a :class:`DicomStore`; ``start()`` binds (port 0 = a free port)."""

    what = "DICOMweb server"
    server_version = "pacsim-dicomweb/1"

    def __init__(self, store: DicomStore, *, host: str = "127.0.0.1", port: int = 0,
                 root: str = "/dicom-web", events: EventBus | None = None,
                 actor: str = "archive", max_body: int = MAX_BODY, index_workers: int = 4) -> None:
        super().__init__(host, port)
        self.store = store
        self.root = "/" + root.strip("/") if root.strip("/") else ""
        self.events = events or default_bus
        self.actor = actor
        self.max_body = max_body
        self._index_workers = index_workers
        self._pool: ThreadPoolExecutor | None = None

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT/dicom-web``) as DICOMwebClient takes it."""
        return f"http://{self.host}:{self.port}{self.root}"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("BoundDicomWebHandler", (_Handler,),
                    {"api": self, "server_version": self.server_version})

    def start(self) -> DicomWebServer:
        if self.running:
            return self
        # The pool exists before the first request can arrive, and goes if binding fails.
        self._pool = ThreadPoolExecutor(self._index_workers, thread_name_prefix="dicomweb-index")
        try:
            return super().start()
        except BaseException:
            self._pool.shutdown(wait=False)
            self._pool = None
            raise

    def stop(self) -> None:
        if not self.running:
            return
        super().stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def index(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` (index work) on the fixed pool and wait for it."""
        assert self._pool is not None
        return self._pool.submit(fn, *args).result()


class _Handler(JsonHandler):
    """One HTTP connection; ``api`` is the :class:`DicomWebServer` it belongs to.

    The base's :meth:`~JsonHandler.dispatch` is replaced: DICOMweb routes answer
    DICOM JSON and streamed multipart, not JSON objects."""

    api: DicomWebServer

    @property
    def web(self) -> DicomWebServer:
        return self.api

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, method: str) -> None:
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
        self._started = False
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
            except Refused as exc:
                event.outcome, event.status = "failed", str(exc.status)
                event.detail["error"] = exc.error.message
                self._refuse(exc)
            except (BrokenPipeError, ConnectionResetError) as exc:
                event.outcome, event.detail["error"] = "error", f"client went away: {exc}"
                self.close_connection = True
            except Exception as exc:  # noqa: BLE001 - one bad request must not kill the server
                if isinstance(exc, TimeoutError) and not isinstance(exc, PacsimError):
                    # The socket's idle timeout: the client stalled mid-request (a
                    # pacsim Timeout is a TimeoutError too, but a failure of ours).
                    event.outcome, event.status = "failed", "408"
                    event.detail["error"] = "the client stalled mid-request"
                    if getattr(self, "_started", False):
                        self.close_connection = True  # mid-stream: only closing is left
                    else:
                        self.timed_out()
                    return
                log.exception("DICOMweb request failed: %s %s", method, path)
                event.outcome, event.status, event.detail["error"] = "error", "500", str(exc)
                self._refuse(Refused(500, PacsimError("internal error")))

    # ------------------------------------------------------------------ responses
    def _refuse(self, refused: Refused) -> None:
        if getattr(self, "_started", False):
            self.close_connection = True  # headers already out: only closing tells the client
            return
        self.send_problem(refused)

    def _json(self, status: int, payload: Any) -> int:
        return self.send_json(status, payload, DICOM_JSON)

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
        """The request body (Content-Length or chunked), bounded by ``max_body``; a
        STOW-RS without either is refused (it must carry instances)."""
        if "Content-Length" not in self.headers and \
                "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "a body needs Content-Length or chunked encoding")
        return self.read_body(self.web.max_body)

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
