"""The trainer's HTTP API: small JSON endpoints on the standard library's http.server.

Why stdlib: the API has seven routes and one user at a time; a web framework would
be a dependency for nothing. It binds 127.0.0.1 by default (a trainer who wants it
on the network says so with ``--api-host``). Bad requests get 400 with a JSON
``error``, unknown routes 404, and the server never dies from a bad body.

Routes: ``GET /status``; ``POST /pace {"pace": "10x"}``, ``/rate {"factor": 2.0}``,
``/pathways {"pathway": "routine", "patient": "Mrs Training Smith", "modality": "CT"}``,
``/faults {"modality": "CT1", "fault": "<catalogue id>"}`` (``null`` clears),
``/reset``, ``/down``.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from simulators.errors import PacsimError
from simulators.sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class _BadRequest(Exception):
    pass


class _NoRoute(Exception):
    pass


def _body_fields(body: dict[str, Any], *names: str) -> None:
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise _BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(names)}")


class TrainerApi:
    """Serves one sandbox; ``on_down`` is called (once) when a trainer POSTs /down."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0,
                 on_down: Callable[[], None] | None = None) -> None:
        self.sandbox = sandbox
        self.on_down = on_down or (lambda: None)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> TrainerApi:
        self._thread = threading.Thread(target=self._server.serve_forever, name="trainer-api",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ routes
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        box = self.sandbox
        if path == "/pace":
            _body_fields(body, "pace")
            return {"pace": f"{box.set_pace(body.get('pace', '')):g}x"}
        if path == "/rate":
            _body_fields(body, "factor")
            if not isinstance(body.get("factor"), (int, float)) or isinstance(body["factor"], bool):
                raise _BadRequest("factor is a number, e.g. {\"factor\": 2.0}")
            return {"rate_factor": box.set_rate(body["factor"])}
        if path == "/pathways":
            _body_fields(body, "pathway", "patient", "modality")
            return box.start_pathway(str(body.get("pathway", "routine")),
                                     patient=body.get("patient") or None,
                                     modality=str(body.get("modality", "CT")))
        if path == "/faults":
            _body_fields(body, "modality", "fault", "nth", "every", "rate")
            if not body.get("modality"):
                raise _BadRequest("say which modality: {\"modality\": \"CT1\", \"fault\": ...}")
            return box.inject_fault(str(body["modality"]), body.get("fault"),
                                    nth=body.get("nth"), every=body.get("every"),
                                    rate=body.get("rate"))
        if path == "/reset":
            return box.reset()
        if path == "/down":
            threading.Thread(target=self.on_down, name="sandbox-down", daemon=True).start()
            return {"down": True}
        raise _NoRoute(path)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "pacsim-sandbox"

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet: no access log
                log.debug("api: " + fmt, *args)

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] in ("/status", "/"):
                    self._reply(200, api.sandbox.status())
                else:
                    self._reply(404, {"error": f"no route GET {self.path}"})

            def do_POST(self) -> None:  # noqa: N802
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    if not 0 <= length <= MAX_BODY:
                        raise _BadRequest(f"body larger than {MAX_BODY} bytes")
                    raw = self.rfile.read(length) if length else b"{}"
                    body = json.loads(raw or b"{}")
                    if not isinstance(body, dict):
                        raise _BadRequest("the body is a JSON object")
                    self._reply(200, api.post(self.path.split("?", 1)[0], body))
                except _NoRoute:
                    self._reply(404, {"error": f"no route POST {self.path}"})
                except (_BadRequest, PacsimError, ValueError) as exc:
                    self._reply(400, {"error": str(exc)})
                except Exception as exc:  # noqa: BLE001 - the API must outlive a bug
                    log.exception("trainer API failed on %s", self.path)
                    self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

        return Handler


__all__ = ["TrainerApi"]
