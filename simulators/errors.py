"""The one exception tree of pacsim.

Every error pacsim raises on purpose derives from :class:`PacsimError` and carries
the context a user needs to act on it (a file and line, a peer and AE titles, a
status code), so the CLI can print one clear line and pick an exit code::

    PacsimError                 root; ``context`` holds key/value details
    ├── ConfigError             bad settings or actor configuration (exit 2)
    │   └── PortInUse           a listener's port is taken: host, port
    ├── ScenarioError           a scenario file is wrong: file, line, field (exit 2)
    ├── WorldError              the synthetic world cannot build what was asked
    ├── ProtocolError           a peer answered badly: peer, AE titles, status
    │   ├── PeerUnreachable     TCP connect refused, host unreachable, name unknown
    │   ├── Timeout             the peer did not answer in time (also a TimeoutError)
    │   ├── AssociationError    association rejected, aborted or unreachable
    │   └── MllpError           MLLP framing, size or timeout problem
    └── StoreError              the durable store could not keep an object
"""

from __future__ import annotations

from typing import Any


class PacsimError(Exception):
    """Root of every error pacsim raises deliberately.

    ``context`` keeps structured details (peer, ae_title, status, file, line...)
    so reports can show them and the message stays one readable line.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value}" for key, value in self.context.items())
        return f"{self.message} ({details})"


class ConfigError(PacsimError):
    """Settings or actor configuration that cannot work (unknown key, bad port...)."""


class PortInUse(ConfigError):
    """A listener cannot bind because another socket already holds ``host:port``.

    Separate from other bind failures (no such address, no permission) because the
    remedy differs: pick another port or stop the other process, which a caller
    (a test picking free ports, a CLI suggesting ``--port``) can act on.
    """

    attributes = ("host", "port")

    def __init__(self, message: str, *, host: str, port: int, **context: Any) -> None:
        super().__init__(message, **context)
        self.host, self.port = host, port


class ScenarioError(PacsimError):
    """A scenario file is invalid; names the file, line and field like a compiler."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.file, self.line, self.field = file, line, field

    def __str__(self) -> str:
        where = f"{self.file or '<scenario>'}:{self.line if self.line is not None else '?'}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class WorldError(PacsimError):
    """The synthetic world cannot produce what was requested (unknown modality...)."""


class ProtocolError(PacsimError):
    """A peer answered with a failure or broke the protocol.

    Context usually holds ``peer`` ("host:port"), ``calling_ae``, ``called_ae`` and
    ``status`` (the DIMSE status as 0xXXXX, or an HL7 ACK code).
    """


class PeerUnreachable(ProtocolError):
    """No connection to the peer: refused, no route, or its host name is unknown.

    The peer's application never saw the request, so retrying elsewhere or later is
    safe. A connect that simply got no answer in time is a :class:`Timeout` (as in
    httpx); pynetdicom does not tell the two apart, so its failed connects land here.
    """


class Timeout(ProtocolError, TimeoutError):
    """The peer did not answer in time: TCP connect, association, DIMSE or MLLP reply.

    Also a builtin :class:`TimeoutError`, so code that guards a call with
    ``except TimeoutError`` (probes, waits) sees pacsim's timeouts as timeouts.
    """


class AssociationError(ProtocolError):
    """A DICOM association could not be established or was aborted."""


class MllpError(ProtocolError):
    """An MLLP frame was broken, too large or not completed in time."""


class StoreError(PacsimError):
    """The durable store could not keep an object (disk, index or conflict)."""


__all__ = [
    "PacsimError", "ConfigError", "PortInUse", "ScenarioError", "WorldError", "ProtocolError",
    "PeerUnreachable", "Timeout", "AssociationError", "MllpError", "StoreError",
]
