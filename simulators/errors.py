"""The one exception tree of pacsim.

Every error pacsim raises on purpose derives from :class:`PacsimError` and carries
the context a user needs to act on it (a file and line, a peer and AE titles, a
status code), so the CLI can print one clear line and pick an exit code. Callers
tell errors apart by type and attributes, never by message text (the messages are
for people and may be reworded)::

    PacsimError                     root; ``context`` holds key/value details
    ├── ConfigError                 bad settings or actor configuration (exit 2)
    │   └── PortInUse               a listener's port is taken: host, port
    ├── ScenarioError               a scenario file is wrong: file, line, field (exit 2)
    ├── WorldError                  the synthetic world cannot build what was asked
    ├── ProtocolError               a peer answered badly: peer, AE titles, status
    │   ├── PeerUnreachable         TCP connect refused, host unreachable, name unknown
    │   ├── Timeout                 the peer did not answer in time (also a TimeoutError)
    │   ├── StatusError             the peer answered a failure status: status
    │   ├── AssociationError        a DICOM association failed or could not be made
    │   │   ├── AssociationRejected A-ASSOCIATE-RJ: result, source, reason
    │   │   ├── AssociationAborted  A-ABORT, or the connection dropped mid-association
    │   │   ├── AssociationClosed   (acceptor) it ended while a request waited on it
    │   │   ├── PduTooLarge         the peer claimed a PDU over our limit (we A-ABORT)
    │   │   ├── DicomUnreachable    PeerUnreachable for a DICOM peer
    │   │   ├── DicomTimeout        Timeout of a DICOM peer (ACSE, DIMSE or connect)
    │   │   └── DicomTlsError       TlsError on a DICOM connection
    │   ├── MllpError               MLLP framing, size or connection problem
    │   │   ├── MllpUnreachable     PeerUnreachable for an MLLP peer
    │   │   ├── MllpTimeout         Timeout of an MLLP peer (connect or reply)
    │   │   └── MllpTlsError        TlsError on an MLLP connection
    │   ├── TlsError                the TLS handshake failed: reason (expired, unknown CA...)
    │   └── Hl7Error                an incoming HL7 message is refused: hl7_code, location
    ├── StoreError                  the durable store could not keep an object
    ├── StepTimeout                 a scenario step did not finish in its time limit
    ├── ProbeTimeout                a probe's deadline passed before the target answered
    ├── NotMeasured                 a probe has no peer to measure against
    ├── NoWorklistItem              a load modality found nothing to perform
    ├── PathwayFailed               the sandbox hospital answered a pathway action wrongly
    └── PathwayInterrupted          the sandbox stopped or reset during a pathway

Why both a condition and a protocol family (``DicomTimeout`` is an
``AssociationError`` *and* a ``Timeout``): a probe asks "was it a timeout?" whatever
the protocol, while code written before the split catches ``AssociationError`` or
``MllpError`` and must keep catching the timeouts and refused connections it caught
then. Raise the leaf; catch whichever of the two questions you are asking.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PacsimError(Exception):
    """Root of every error pacsim raises deliberately.

    ``context`` keeps structured details (peer, ae_title, status, file, line...)
    so reports can show them and the message stays one readable line.
    """

    #: Constructor keywords this class keeps as attributes (``status``, ``result``...).
    #: With ``message`` and ``context`` they rebuild the same error on the far side of
    #: a process boundary (the control API, pickling): see :meth:`arguments`.
    attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value}" for key, value in self.context.items())
        return f"{self.message} ({details})"

    def arguments(self) -> dict[str, Any]:
        """Keywords that rebuild this error: ``type(self)(self.message, **arguments)``.

        An attribute wins over a context entry of the same name, because context may
        hold only its display form (``status="0xA702"`` for ``status=0xA702``).
        """
        rebuilt = {k: v for k, v in self.context.items() if k not in self.attributes}
        rebuilt.update((name, getattr(self, name)) for name in self.attributes)
        return rebuilt

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's default pickles ``args`` only, which drops the context and
        # cannot call a constructor with required keywords (AssociationRejected).
        return (_rebuild, (type(self), self.message, self.arguments()))


def _rebuild(cls: type[PacsimError], message: str, arguments: dict[str, Any]) -> PacsimError:
    return cls(message, **arguments)


# ---------------------------------------------------------------------- configuration
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

    attributes = ("file", "line", "field")

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


# ---------------------------------------------------------------------- protocols
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


class StatusError(ProtocolError):
    """The peer answered, with a failure status: DIMSE (``0xA702``) or HL7 (``"AE"``).

    ``status`` is the status as the protocol defines it, an int for DIMSE and the
    ACK code for HL7; ``context["status"]`` holds the display form (``0xA702``) that
    reports and scenario steps show.
    """

    attributes = ("status",)

    def __init__(self, message: str, *, status: int | str, **context: Any) -> None:
        shown = f"0x{status:04X}" if isinstance(status, int) else status
        super().__init__(message, status=shown, **context)
        self.status = status


class AssociationError(ProtocolError):
    """A DICOM association could not be established, or failed while in use."""


class AssociationRejected(AssociationError):
    """The peer answered the A-ASSOCIATE-RQ with an A-ASSOCIATE-RJ (PS3.8 9.3.4).

    ``result`` (1 permanent, 2 transient), ``source`` (1 service user, 2 service
    provider ACSE, 3 service provider presentation) and ``reason`` (e.g. 3 calling
    AE title not recognised, 7 called AE title not recognised) are the PDU's fields,
    so a caller can retry a transient rejection or fix the AE title it names.
    """

    attributes = ("result", "source", "reason")

    def __init__(self, message: str, *, result: int, source: int, reason: int,
                 **context: Any) -> None:
        super().__init__(message, **context)
        self.result, self.source, self.reason = result, source, reason


class AssociationAborted(AssociationError):
    """The association ended without a release: an A-ABORT, or the TCP connection
    dropped, during negotiation or while an operation waited for its answer."""


class AssociationClosed(AssociationError):
    """The association ended (abort, release, dropped socket) while we waited on it."""


class PduTooLarge(AssociationError):
    """The peer claimed a PDU longer than we accept; the caller must A-ABORT."""


class DicomUnreachable(AssociationError, PeerUnreachable):
    """A DICOM peer could not be connected to (see :class:`PeerUnreachable`)."""


class DicomTimeout(AssociationError, Timeout):
    """A DICOM peer did not answer in time. The association is aborted, except after
    a wait the caller chose to bound (an N-EVENT-REPORT that did not come)."""


class TlsError(ProtocolError):
    """The TLS handshake with a peer failed, so nothing of DICOM or HL7 was exchanged.

    ``reason`` is OpenSSL's word for it ("certificate verify failed: certificate has
    expired", "tlsv1 alert unknown ca", "unsupported protocol"...). Not a
    :class:`PeerUnreachable`: the peer answered, and retrying elsewhere with the same
    certificate and CA will fail the same way; fix the certificates or the profile.
    """

    attributes = ("reason",)

    def __init__(self, message: str, *, reason: str = "", **context: Any) -> None:
        super().__init__(message, reason=reason or None, **context)
        self.reason = reason


class DicomTlsError(AssociationError, TlsError):
    """A DICOM peer's TLS handshake failed (see :class:`TlsError`)."""


class MllpError(ProtocolError):
    """An MLLP frame was broken, too large, or the connection failed or timed out."""


class MllpUnreachable(MllpError, PeerUnreachable):
    """An MLLP peer could not be connected to (see :class:`PeerUnreachable`)."""


class MllpTimeout(MllpError, Timeout):
    """An MLLP peer did not accept the connection or send a whole reply in time."""


class MllpTlsError(MllpError, TlsError):
    """An MLLP peer's TLS handshake failed (see :class:`TlsError`)."""


class Hl7Error(ProtocolError):
    """An incoming HL7 message cannot be accepted; carries what the ACK must say.

    ``hl7_code`` is the table 0357 code for ERR-3, ``location`` the ERL
    (``PID^1^3``) for ERR-2, and ``ack_code`` AR for message-level problems, AE for
    content problems. The MLLP server turns this exception into that ACK.
    """

    attributes = ("hl7_code", "location")
    #: Conditions about the message as a whole (not its content) are rejected with AR;
    #: content errors get AE (HL7 v2.5.1 section 2.9.2, original acknowledgment mode).
    REJECT_CODES: ClassVar[frozenset[int]] = frozenset({200, 201, 202, 203})

    def __init__(self, message: str, *, hl7_code: int = 207, location: str = "",
                 **context: object) -> None:
        super().__init__(message, hl7_code=hl7_code, location=location or None, **context)
        self.hl7_code = hl7_code
        self.location = location

    @property
    def ack_code(self) -> str:
        return "AR" if self.hl7_code in self.REJECT_CODES else "AE"


# ---------------------------------------------------------------------- the rest
class StoreError(PacsimError):
    """The durable store could not keep an object (disk, index or conflict)."""


class StepTimeout(PacsimError):
    """A scenario step's executor did not return in time (reported, never raised to
    the caller of the runner)."""


class ProbeTimeout(PacsimError):
    """A probe's deadline passed before the target answered (or the item appeared)."""


class NotMeasured(PacsimError):
    """The probe has no peer to measure against (e.g. no reporting peer configured)."""


class NoWorklistItem(PacsimError):
    """The worklist had nothing for this load modality to perform."""


class PathwayFailed(PacsimError):
    """The simulated hospital answered a sandbox pathway action wrongly."""


class PathwayInterrupted(PacsimError):
    """The sandbox stopped or reset while the pathway was running."""


__all__ = [
    "PacsimError", "ConfigError", "PortInUse", "ScenarioError", "WorldError",
    "ProtocolError", "PeerUnreachable", "Timeout", "StatusError",
    "AssociationError", "AssociationRejected", "AssociationAborted", "AssociationClosed",
    "PduTooLarge", "DicomUnreachable", "DicomTimeout", "DicomTlsError", "TlsError",
    "MllpError", "MllpUnreachable", "MllpTimeout", "MllpTlsError", "Hl7Error",
    "StoreError", "StepTimeout", "ProbeTimeout", "NotMeasured", "NoWorklistItem",
    "PathwayFailed", "PathwayInterrupted",
]
