"""The one JSON error body of pacsim's HTTP servers, and the error it stands for.

Why one format: the DICOMweb server, the actors' control API and the trainer API
used to answer errors three ways (plain text, ``{"error": {...}}``, ``{"error":
"text"}``), so every client parsed them differently. Now every error answer is::

    {"error": {"status": 404, "type": "ConfigError", "message": "...",
               "context": {...}, "attributes": {...}}}

``type`` is the :mod:`simulators.errors` class name, so a client rebuilds the same
exception (a step sees ``ProtocolError(status="0xC310")`` whether the modality ran
in-process or in a container); ``context`` is the error's structured details and
``attributes`` what a subclass keeps besides (a ScenarioError's file and line, the host
and port of PortInUse). A request problem the server itself finds (bad JSON, a body
too large, an unknown route) is a :class:`~simulators.errors.ConfigError`: the
caller sent something that cannot work.
"""

from __future__ import annotations

import json
from typing import Any

from simulators import errors
from simulators.errors import ConfigError, PacsimError

#: Error classes a body may name; anything else comes back as the root PacsimError.
ERROR_TYPES: dict[str, type[PacsimError]] = {
    name: getattr(errors, name) for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), PacsimError)}
#: Attributes every PacsimError has; the rest of ``vars(error)`` travels as ``attributes``.
_BASE_ATTRIBUTES = frozenset({"message", "context"})


class Refused(Exception):
    """A request a server refuses: the HTTP status, the error that says why, and any
    extra top-level fields of the answer (the control API adds the events an
    operation emitted before it failed)."""

    def __init__(self, status: int, error: PacsimError | str,
                 extra: dict[str, Any] | None = None) -> None:
        self.error = error if isinstance(error, PacsimError) else ConfigError(error)
        super().__init__(str(self.error))
        self.status = int(status)
        self.extra = dict(extra or {})


def _plain(value: Any) -> Any:
    """``value`` as JSON can carry it: a context holds text and numbers in practice;
    anything else (a path, a UID object) travels as its text."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def problem(status: int, error: BaseException) -> dict[str, Any]:
    """The ``{"error": {...}}`` body for ``error`` answered with ``status``.

    A non-pacsim exception (a bug) is described as the root PacsimError: its class
    name is an implementation detail no client can act on."""
    if isinstance(error, PacsimError):
        attributes = {key: _plain(value) for key, value in vars(error).items()
                      if key not in _BASE_ATTRIBUTES and not key.startswith("_")}
        body: dict[str, Any] = {
            "status": int(status), "type": type(error).__name__, "message": error.message,
            "context": {key: _plain(value) for key, value in error.context.items()}}
        if attributes:
            body["attributes"] = attributes
        return {"error": body}
    return {"error": {"status": int(status), "type": "PacsimError",
                      "message": f"{type(error).__name__}: {error}", "context": {}}}


def error_from_problem(body: Any, *, status: int | None = None,
                       peer: str | None = None) -> PacsimError:
    """The exception a ``{"error": {...}}`` body describes (the inverse of
    :func:`problem`). A body that is not one becomes a PacsimError quoting it, with
    the HTTP ``status`` and ``peer`` as context, so a proxy or a foreign server in
    the way is still reported readably."""
    payload = body.get("error") if isinstance(body, dict) else None
    if not isinstance(payload, dict):
        shown = payload if isinstance(payload, str) else json.dumps(body, default=str)
        return PacsimError(f"HTTP error: {str(shown)[:200]}", status=status, peer=peer)
    cls = ERROR_TYPES.get(str(payload.get("type")), PacsimError)
    message = str(payload.get("message", "remote error"))
    context = payload.get("context") if isinstance(payload.get("context"), dict) else {}
    given = payload.get("attributes")
    attributes = given if isinstance(given, dict) else {}
    # Rebuilt without calling the subclass's __init__: its signature is its own
    # (PortInUse takes host and port), while message, context and attributes are all
    # an error is; the class's __str__ then renders them as on the server.
    error = cls.__new__(cls)
    PacsimError.__init__(error, message, **context)
    for key, value in attributes.items():
        if key not in _BASE_ATTRIBUTES and not str(key).startswith("_"):
            setattr(error, str(key), value)
    return error


__all__ = ["Refused", "problem", "error_from_problem", "ERROR_TYPES"]
