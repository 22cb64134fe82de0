"""The trainer's HTTP API: small JSON endpoints on pacsim's one JSON server base.

Why no web framework: the API has seven routes and one user at a time; binding,
threads, timeouts and the error body come from
:class:`~simulators.http.server.JsonHttpServer`. It binds 127.0.0.1 by default (a
trainer who wants it on the network says so with ``--api-host``). Bad requests get
400 with the one JSON error body (``{"error": {"status", "type", "message", ...}}``),
unknown routes 404, and the server never dies from a bad body.

Routes: ``GET /status``; ``POST /pace {"pace": "10x"}``, ``/rate {"factor": 2.0}``,
``/pathways {"pathway": "routine", "patient": "Mrs Training Smith", "modality": "CT"}``,
``/faults {"modality": "CT1", "fault": "<catalogue id>"}`` (``null`` clears),
``/reset``, ``/down``.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from typing import Any, Callable

from simulators.errors import ConfigError
from simulators.http.problem import Refused
from simulators.http.server import JsonHttpServer, Request, Route
from simulators.sandbox.sandbox import Sandbox

MAX_BODY = 64 * 1024


def _only(body: dict[str, Any], *names: str) -> None:
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(names)}")


class TrainerApi(JsonHttpServer):
    """Serves one sandbox; ``on_down`` is called (once) when a trainer POSTs /down."""

    what = "trainer API"
    server_version = "pacsim-sandbox"
    max_body = MAX_BODY

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0,
                 on_down: Callable[[], None] | None = None) -> None:
        super().__init__(host, port)
        self.sandbox = sandbox
        self.on_down = on_down or (lambda: None)

    def handle(self, request: Request) -> Any:
        """Every route's answer; the sandbox's own refusals (an unknown pathway, a bad
        pace) are the caller's mistake: 400 with the sandbox's message."""
        try:
            return super().handle(request)
        except ValueError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, ConfigError(str(exc))) from None

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("GET", "/"): self._status, ("GET", "/status"): self._status,
                ("POST", "/pace"): self._pace, ("POST", "/rate"): self._rate,
                ("POST", "/pathways"): self._pathways, ("POST", "/faults"): self._faults,
                ("POST", "/reset"): lambda _: self.sandbox.reset(),
                ("POST", "/down"): self._down}

    # ------------------------------------------------------------------ routes
    def _status(self, _: Request) -> dict[str, Any]:
        return self.sandbox.status()

    def _pace(self, request: Request) -> dict[str, Any]:
        _only(request.body, "pace")
        return {"pace": f"{self.sandbox.set_pace(request.body.get('pace', '')):g}x"}

    def _rate(self, request: Request) -> dict[str, Any]:
        body = request.body
        _only(body, "factor")
        if not isinstance(body.get("factor"), (int, float)) or isinstance(body["factor"], bool):
            raise ConfigError("factor is a number, e.g. {\"factor\": 2.0}")
        return {"rate_factor": self.sandbox.set_rate(body["factor"])}

    def _pathways(self, request: Request) -> dict[str, Any]:
        body = request.body
        _only(body, "pathway", "patient", "modality")
        return self.sandbox.start_pathway(str(body.get("pathway", "routine")),
                                          patient=body.get("patient") or None,
                                          modality=str(body.get("modality", "CT")))

    def _faults(self, request: Request) -> dict[str, Any]:
        body = request.body
        _only(body, "modality", "fault", "nth", "every", "rate")
        if not body.get("modality"):
            raise ConfigError("say which modality: {\"modality\": \"CT1\", \"fault\": ...}")
        return self.sandbox.inject_fault(str(body["modality"]), body.get("fault"),
                                         nth=body.get("nth"), every=body.get("every"),
                                         rate=body.get("rate"))

    def _down(self, _: Request) -> dict[str, Any]:
        threading.Thread(target=self.on_down, name="sandbox-down", daemon=True).start()
        return {"down": True}


__all__ = ["TrainerApi"]
