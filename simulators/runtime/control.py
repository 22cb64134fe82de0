"""The control API: an actor process answers its public operations as JSON over HTTP.

Why: with ``--runtime docker`` every actor runs in its own container, but scenario
steps still call ``ehr.admit(patient)`` or ``ct1.store_study(exam)``. ``pacsim serve
KIND --control-port N`` serves those operations here, and
:mod:`simulators.runtime.remote` gives steps proxies with the same methods. The HTTP
side is pacsim's one JSON server base (:class:`~simulators.http.server.JsonHttpServer`,
stdlib only: no new dependency inside the image).

Protocol (version 1)::

    GET  /v1/health            {"kind", "name", "operations": [...]}
    POST /v1/op/<operation>    {"args": {...}, "fired_since": 0, "timeout": 60}
      200 {"result": ..., "events": [...], "fired": [...]}
      4xx/5xx {"error": {"status", "type", "message", "context"}, "events": [...]}

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

import logging
import threading
from http import HTTPStatus
from typing import Any

from simulators.errors import ConfigError, PacsimError, ProtocolError
from simulators.events import Exchange
from simulators.http.problem import Refused
from simulators.http.server import JsonHttpServer, Request
from simulators.runtime.operations import ActorSession, Operation, operations_for
from simulators.runtime.wire import decode, encode

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
#: Largest request body accepted (a worklist item or an order is a few kilobytes).
MAX_BODY = 4 * 1024 * 1024
#: Upper bound of any operation's timeout, whatever the caller asks for.
MAX_TIMEOUT = 900.0


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


class ControlServer(JsonHttpServer):
    """Serves one actor's allowlisted operations; ``start()``/``stop()``, or ``with``.

    Binding, threads, timeouts and the error body are :class:`JsonHttpServer`'s;
    what is here is the protocol: health, and one operation at a time."""

    what = "control API"
    server_version = "pacsim-control/1"
    max_body = MAX_BODY

    def __init__(self, actor: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.session = ActorSession(actor)
        self.operations = operations_for(actor.kind)
        self._window = _EventWindow()
        self._unsubscribe: Any = None

    def start(self) -> ControlServer:
        if self.running:
            return self
        # Listen to the actor before the first request can arrive, and stop if binding
        # fails (a taken port): no subscription outlives a server that never ran.
        self._unsubscribe = self.session.actor.events.subscribe(self._window)
        try:
            return super().start()
        except BaseException:
            self._unsubscribe()
            self._unsubscribe = None
            raise

    def stop(self) -> None:
        if not self.running:
            return
        super().stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def handle(self, request: Request) -> Any:
        prefix = f"{API_PREFIX}/op/"
        if request.method == "GET" and request.path.rstrip("/") == f"{API_PREFIX}/health":
            return self.health()
        if request.method == "POST" and request.path.startswith(prefix):
            return self.run(request.path[len(prefix):], request.body)
        raise Refused(HTTPStatus.NOT_FOUND, ConfigError(f"no resource {request.path}"))

    # ------------------------------------------------------------------ one operation
    def health(self) -> dict[str, Any]:
        actor = self.session.actor
        return {"kind": actor.kind, "name": actor.name, "operations": sorted(self.operations)}

    def run(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, run with a timeout, and answer; raises Refused for every failure."""
        operation = self.operations.get(name)
        if operation is None:
            raise Refused(HTTPStatus.NOT_FOUND, ConfigError(
                f"{self.session.actor.kind} has no operation {name!r}",
                operations=",".join(sorted(self.operations))))
        args = self._arguments(operation, body.get("args", {}))
        fired_since = body.get("fired_since", 0)
        timeout = body.get("timeout", operation.timeout)
        if not isinstance(fired_since, int) or fired_since < 0 or \
                not isinstance(timeout, (int, float)) or timeout <= 0:
            raise Refused(HTTPStatus.BAD_REQUEST, ConfigError(
                "fired_since must be a count and timeout a positive number of seconds"))
        box: dict[str, Any] = {}
        worker = threading.Thread(target=self._work, args=(operation, args, box),
                                  name=f"pacsim-control-{name}", daemon=True)
        worker.start()
        worker.join(min(float(timeout), MAX_TIMEOUT))
        if worker.is_alive():
            raise Refused(HTTPStatus.GATEWAY_TIMEOUT, ProtocolError(
                f"{self.session.actor.name}: {name} did not finish within {timeout:g}s",
                operation=name))
        record = {"events": [encode(event) for event in box.get("events", [])],
                  "fired": encode(self._fired()[fired_since:])}
        if "error" in box:
            error = box["error"]
            if not isinstance(error, PacsimError):
                log.error("operation %s failed unexpectedly", name, exc_info=error)
                raise Refused(HTTPStatus.INTERNAL_SERVER_ERROR, PacsimError(
                    f"{name} failed: {type(error).__name__}: {error}"), record)
            raise Refused(HTTPStatus.UNPROCESSABLE_ENTITY, error, record) from None
        return {"result": encode(box.get("result")), **record}

    def _arguments(self, operation: Operation, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise Refused(HTTPStatus.BAD_REQUEST, ConfigError("args must be a JSON object"))
        unknown = sorted(set(raw) - set(operation.params))
        missing = sorted(set(operation.params) - set(raw) - set(operation.defaults))
        if unknown or missing:
            raise Refused(HTTPStatus.BAD_REQUEST, ConfigError(
                f"{operation.name}: " + "; ".join(filter(None, [
                    f"unknown argument(s) {', '.join(unknown)}" if unknown else "",
                    f"missing argument(s) {', '.join(missing)}" if missing else ""])),
                accepted=",".join(operation.params) or "none"))
        try:
            decoded = {key: decode(operation.params[key], value, key)
                       for key, value in raw.items()}
        except ConfigError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, exc) from None
        except Exception as exc:  # noqa: BLE001 - e.g. a DICOM JSON pydicom cannot read
            raise Refused(HTTPStatus.BAD_REQUEST, ConfigError(
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


__all__ = ["ControlServer", "API_PREFIX", "MAX_BODY"]
