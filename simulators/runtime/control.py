"""The control API: an actor process answers its public operations as JSON over HTTP.

Why: with ``--runtime docker`` every actor runs in its own container, but scenario
steps still call ``ehr.admit(patient)`` or ``ct1.store_study(exam)``. ``pacsim serve
KIND --control-port N`` serves those operations here, and
:mod:`simulators.runtime.remote` gives steps proxies with the same methods. Only the
stdlib (``http.server`` in a thread): no new dependency inside the image.

Protocol (version 1)::

    GET  /v1/health            {"kind", "name", "operations": [...]}
    POST /v1/op/<operation>    {"args": {...}, "fired_since": 0, "timeout": 60}
      200 {"result": ..., "events": [...], "fired": [...]}
      4xx/5xx {"error": {"type", "message", "context"}, "events": [...]}

Operations come from the allowlist of the actor's kind
(:func:`~simulators.runtime.operations.operations_for`); arguments are decoded to the
declared types, so a request can never name a method or a class. ``events`` are the
exchange events the actor emitted while the operation ran (the caller re-emits them on
its own bus, so reports read the same as in-process); ``fired`` are the fault-log
entries after ``fired_since``. A failing operation answers its PacsimError as JSON
(422), a bad request 400, an unknown operation 404, a slow one 504; the server keeps
serving whatever a client sends. Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulators.errors import ConfigError, PacsimError, ProtocolError
from simulators.events import Exchange
from simulators.runtime.operations import ActorSession, Operation, operations_for
from simulators.runtime.wire import decode, encode, encode_error

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
#: Largest request body accepted (a worklist item or an order is a few kilobytes).
MAX_BODY = 4 * 1024 * 1024
#: Upper bound of any operation's timeout, whatever the caller asks for.
MAX_TIMEOUT = 900.0


class _Reply(Exception):
    """Ends a request early with an HTTP status and an error payload."""

    def __init__(self, status: HTTPStatus, error: PacsimError,
                 record: dict[str, Any] | None = None) -> None:
        super().__init__(str(error))
        #: ``events`` and ``fired`` of an operation that ran and failed: a refused
        #: N-CREATE is still an exchange the caller reports, and a fault that fired.
        self.status, self.error, self.record = status, error, record or {}


class _EventWindow:
    """Collects the actor's events while one operation runs (operations are serial)."""

    def __init__(self) -> None:
        self._current: list[Exchange] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            self._current = []

    def close(self) -> list[Exchange]:
        with self._lock:
            events, self._current = self._current or [], None
        return events

    def __call__(self, event: Exchange) -> None:
        with self._lock:
            if self._current is not None:
                self._current.append(event)


class ControlServer:
    """Serves one actor's allowlisted operations; ``start()``/``stop()``, or ``with``."""

    def __init__(self, actor: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.session = ActorSession(actor)
        self.operations = operations_for(actor.kind)
        self.host, self.requested_port = host, port
        self._window = _EventWindow()
        self._unsubscribe: Any = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise ConfigError("the control API is not running")
        return int(self._httpd.server_address[1])

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> ControlServer:
        if self._httpd is not None:
            return self
        handler = type("ControlHandler", (_Handler,), {"control": self})
        self._httpd = ThreadingHTTPServer((self.host, self.requested_port), handler)
        self._httpd.daemon_threads = True
        self._unsubscribe = self.session.actor.events.subscribe(self._window)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="pacsim-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ one operation
    def health(self) -> dict[str, Any]:
        actor = self.session.actor
        return {"kind": actor.kind, "name": actor.name, "operations": sorted(self.operations)}

    def run(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, run with a timeout, and answer; raises _Reply for every failure."""
        operation = self.operations.get(name)
        if operation is None:
            raise _Reply(HTTPStatus.NOT_FOUND, ConfigError(
                f"{self.session.actor.kind} has no operation {name!r}",
                operations=",".join(sorted(self.operations))))
        args = self._arguments(operation, body.get("args", {}))
        fired_since = body.get("fired_since", 0)
        timeout = body.get("timeout", operation.timeout)
        if not isinstance(fired_since, int) or fired_since < 0 or \
                not isinstance(timeout, (int, float)) or timeout <= 0:
            raise _Reply(HTTPStatus.BAD_REQUEST, ConfigError(
                "fired_since must be a count and timeout a positive number of seconds"))
        box: dict[str, Any] = {}
        worker = threading.Thread(target=self._work, args=(operation, args, box),
                                  name=f"pacsim-control-{name}", daemon=True)
        worker.start()
        worker.join(min(float(timeout), MAX_TIMEOUT))
        if worker.is_alive():
            raise _Reply(HTTPStatus.GATEWAY_TIMEOUT, ProtocolError(
                f"{self.session.actor.name}: {name} did not finish within {timeout:g}s",
                operation=name))
        record = {"events": [encode(event) for event in box.get("events", [])],
                  "fired": encode(self._fired()[fired_since:])}
        if "error" in box:
            error = box["error"]
            if not isinstance(error, PacsimError):
                log.error("operation %s failed unexpectedly", name, exc_info=error)
                raise _Reply(HTTPStatus.INTERNAL_SERVER_ERROR, PacsimError(
                    f"{name} failed: {type(error).__name__}: {error}"), record)
            raise _Reply(HTTPStatus.UNPROCESSABLE_ENTITY, error, record) from None
        return {"result": encode(box.get("result")), **record}

    def _arguments(self, operation: Operation, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise _Reply(HTTPStatus.BAD_REQUEST, ConfigError("args must be a JSON object"))
        unknown = sorted(set(raw) - set(operation.params))
        missing = sorted(set(operation.params) - set(raw) - set(operation.defaults))
        if unknown or missing:
            raise _Reply(HTTPStatus.BAD_REQUEST, ConfigError(
                f"{operation.name}: " + "; ".join(filter(None, [
                    f"unknown argument(s) {', '.join(unknown)}" if unknown else "",
                    f"missing argument(s) {', '.join(missing)}" if missing else ""])),
                accepted=",".join(operation.params) or "none"))
        try:
            decoded = {key: decode(operation.params[key], value, key)
                       for key, value in raw.items()}
        except ConfigError as exc:
            raise _Reply(HTTPStatus.BAD_REQUEST, exc) from None
        except Exception as exc:  # noqa: BLE001 - e.g. a DICOM JSON pydicom cannot read
            raise _Reply(HTTPStatus.BAD_REQUEST, ConfigError(
                f"{operation.name}: undecodable argument: {exc}")) from None
        return {**operation.defaults, **decoded}

    def _work(self, operation: Operation, args: dict[str, Any], box: dict[str, Any]) -> None:
        with self.session.lock:
            self._window.open()
            try:
                box["result"] = operation.run(self.session, **args)
            except BaseException as exc:  # noqa: BLE001 - answered, never fatal
                box["error"] = exc
            finally:
                box["events"] = self._window.close()

    def _fired(self) -> list[Any]:
        injector = getattr(self.session.actor, "faults", None)
        return list(getattr(injector, "fired", []) or [])


class _Handler(BaseHTTPRequestHandler):
    control: ControlServer
    protocol_version = "HTTP/1.1"
    server_version = "pacsim-control/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.rstrip("/") == f"{API_PREFIX}/health":
            self._send(HTTPStatus.OK, self.control.health())
        else:
            self._error(HTTPStatus.NOT_FOUND, ConfigError(f"no resource {self.path}"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        prefix = f"{API_PREFIX}/op/"
        try:
            if not self.path.startswith(prefix):
                raise _Reply(HTTPStatus.NOT_FOUND, ConfigError(f"no resource {self.path}"))
            body = self._body()
            self._send(HTTPStatus.OK, self.control.run(self.path[len(prefix):], body))
        except _Reply as reply:
            self._error(reply.status, reply.error, reply.record)
        except Exception as exc:  # noqa: BLE001 - the server outlives any request
            log.exception("control request %s failed", self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, PacsimError(str(exc)))

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise _Reply(HTTPStatus.LENGTH_REQUIRED,
                         ConfigError("Content-Length is required")) from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise _Reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         ConfigError("request body too large", limit=MAX_BODY))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Reply(HTTPStatus.BAD_REQUEST,
                         ConfigError(f"request body is not JSON: {exc}")) from None
        if not isinstance(body, dict):
            raise _Reply(HTTPStatus.BAD_REQUEST, ConfigError("request body must be an object"))
        return body

    def _error(self, status: HTTPStatus, error: PacsimError,
               record: dict[str, Any] | None = None) -> None:
        self._send(status, {"error": encode_error(error), **(record or {})})

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, default=str).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


__all__ = ["ControlServer", "API_PREFIX", "MAX_BODY"]
