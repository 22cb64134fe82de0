"""Application Entity factory on pynetdicom, with the settings a real site needs.

pynetdicom leaves Nagle's algorithm on; with the peer's delayed ACKs that makes a
C-STORE stream up to 45x slower (see BASELINES.md), so every socket an AE made here
opens - as requestor or acceptor - gets TCP_NODELAY. The factory also fixes the
maximum PDU size, the timeouts and optional AE-title allowlists in one place so no
actor forgets one of them.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Iterable

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ

from simulators.tls import TlsSettings
from simulators.errors import (
    AssociationAborted, AssociationError, AssociationRejected, ConfigError, DicomTimeout,
    DicomUnreachable,
)

#: 128 KiB: big enough that a 512x512x16-bit slice needs 4 P-DATA PDUs, small enough
#: to keep per-association memory bounded.
DEFAULT_MAX_PDU = 131_072

#: ARTIM (PS3.8 9.1.5), seconds: how long an acceptor waits for a new connection's
#: A-ASSOCIATE-RQ (and for the peer to close after an RJ) before closing it.
DEFAULT_ARTIM_TIMEOUT = 10.0

#: Accepted TCP connections without an association that an acceptor holds at once;
#: separate from (and far above) the association limit so idle sockets cannot use it up.
DEFAULT_MAX_UNASSOCIATED = 512

#: Pending TCP connections the kernel queues for an acceptor (capped by net.core.somaxconn).
LISTEN_BACKLOG = 512


@dataclass(frozen=True, slots=True)
class AeSettings:
    """How one simulated system's DICOM Application Entity behaves on the wire."""

    ae_title: str
    max_pdu: int = DEFAULT_MAX_PDU
    acse_timeout: float = 30.0
    dimse_timeout: float = 30.0
    network_timeout: float = 60.0
    connection_timeout: float = 10.0
    #: Established associations at once as acceptor (idle, unassociated sockets do not count).
    maximum_associations: int = 50
    #: As acceptor: seconds a new connection has to send its A-ASSOCIATE-RQ (ARTIM).
    artim_timeout: float = DEFAULT_ARTIM_TIMEOUT
    #: As acceptor: connections accepted but not yet associated; more are closed at once.
    max_unassociated: int = DEFAULT_MAX_UNASSOCIATED
    #: Calling AE titles accepted as acceptor; empty means any.
    allowed_calling: frozenset[str] = field(default_factory=frozenset)
    #: Reject associations whose called AE title is not ours.
    require_called: bool = True

    def __post_init__(self) -> None:
        if not 0 < len(self.ae_title.strip()) <= 16:
            raise ConfigError("AE title must be 1 to 16 characters", ae_title=self.ae_title)
        if self.max_pdu and self.max_pdu < 4096:
            raise ConfigError("max_pdu must be 0 (unlimited) or at least 4096", max_pdu=self.max_pdu)
        if self.maximum_associations < 1:
            raise ConfigError("maximum_associations must be at least 1",
                              maximum_associations=self.maximum_associations)
        if self.max_unassociated < 1:
            raise ConfigError("max_unassociated must be at least 1",
                              max_unassociated=self.max_unassociated)
        if self.artim_timeout <= 0:
            raise ConfigError("artim_timeout must be positive", artim_timeout=self.artim_timeout)


def _set_nodelay(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: switch Nagle off on the association's socket."""
    transport = event.assoc.dul.socket
    sock = getattr(transport, "socket", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


#: Handlers every association made through this module binds.
NODELAY_HANDLERS: list[tuple[Any, Any]] = [(evt.EVT_CONN_OPEN, _set_nodelay)]


def make_ae(settings: AeSettings) -> AE:
    """Build a pynetdicom AE configured from ``settings`` (contexts are added by callers)."""
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = settings.max_pdu
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    ae.connection_timeout = settings.connection_timeout
    ae.maximum_associations = settings.maximum_associations
    ae.require_called_aet = settings.require_called
    ae.require_calling_aet = sorted(settings.allowed_calling)
    return ae


def associate(ae: AE, host: str, port: int, called_ae: str,
              handlers: Iterable[tuple[Any, ...]] = (), *, tls: TlsSettings | None = None,
              **kwargs: Any) -> Association:
    """Open an association with TCP_NODELAY, or raise the :class:`AssociationError`
    subclass that says why: :class:`DicomUnreachable`, :class:`AssociationRejected`
    (with the RJ's result, source and reason), :class:`DicomTimeout` (no answer within
    the ACSE timeout) or :class:`AssociationAborted`.

    ``tls``: over TLS (pynetdicom's ``tls_args``), with the same profile contexts as the
    fast client. pynetdicom reports a failed handshake like a failed connect, so it
    surfaces as :class:`DicomUnreachable` here (the fast client says
    :class:`~simulators.errors.DicomTlsError`).

    pynetdicom reports all of these as "not established", mostly as an abort, so the
    PDUs that crossed the wire decide which one happened.
    """
    opened: list[bool] = []  # pynetdicom reports a refused connection as an abort
    on_open = (evt.EVT_CONN_OPEN, lambda _event: opened.append(True))
    # pynetdicom races a fast A-ASSOCIATE-RJ: when the peer's RJ arrives and the
    # transport closes before its requestor thread checks the connection, it reports
    # an abort (~4% of rejections on loopback). The RJ PDU itself was received, so
    # keep it and report the rejection the peer actually sent.
    received: list[object] = []
    on_pdu = (evt.EVT_PDU_RECV, lambda event: received.append(event.pdu))
    # On an ACSE timeout pynetdicom aborts the association itself: an A-ABORT we
    # sent with nothing received is the only trace that the peer stayed silent.
    sent_abort: list[bool] = []
    on_sent = (evt.EVT_PDU_SENT,
               lambda event: sent_abort.append(True) if isinstance(event.pdu, A_ABORT_RQ) else None)
    if tls is not None:
        kwargs["tls_args"] = (tls.client_context(), host if tls.check_hostname else None)
    assoc = ae.associate(host, port, ae_title=called_ae,
                         evt_handlers=[*NODELAY_HANDLERS, on_open, on_pdu, on_sent, *handlers],
                         **kwargs)
    if assoc.is_established:
        return assoc
    peer = f"{host}:{port}"
    context = {"peer": peer, "calling_ae": ae.ae_title, "called_ae": called_ae}
    if not opened:
        raise DicomUnreachable("peer unreachable: TCP connection failed", **context)
    rejection = _rejection_fields(assoc, received)
    if rejection is not None:
        result, source, reason = rejection
        raise AssociationRejected(f"association rejected: {describe_rejection(*rejection)}",
                                  result=result, source=source, reason=reason, **context)
    if assoc.is_aborted and sent_abort and not received:
        raise DicomTimeout("peer did not answer the association request in time",
                           timeout=ae.acse_timeout, **context)
    if assoc.is_aborted:
        raise AssociationAborted("association aborted by peer during negotiation", **context)
    raise AssociationError("peer unreachable or did not answer the association request", **context)


def _rejection_fields(assoc: Association, received: list[object]
                      ) -> tuple[int, int, int] | None:
    """(result, source, reason) of the A-ASSOCIATE-RJ the peer sent, if it sent one:
    from the PDU itself, which also covers the rejection pynetdicom calls an abort."""
    for pdu in received:
        if isinstance(pdu, A_ASSOCIATE_RJ):
            return int(pdu.result), int(pdu.source), int(pdu.reason_diagnostic)
    primitive = assoc.acceptor.primitive if assoc.is_rejected else None
    if primitive is not None:
        return int(primitive.result), int(primitive.result_source), int(primitive.diagnostic)
    return None


_REJECT_REASONS = {
    (1, 1): "no reason given", (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised", (1, 7): "called AE title not recognised",
    (2, 1): "no reason given", (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion", (3, 2): "local limit exceeded",
}


def describe_rejection(result: int | None, source: int | None, diagnostic: int | None) -> str:
    """Words for an A-ASSOCIATE-RJ (PS3.8 9.3.4): result, source and reason."""
    kind = {1: "permanent", 2: "transient"}.get(result or 0, f"result {result}")
    why = _REJECT_REASONS.get((source or 0, diagnostic or 0), f"source {source} reason {diagnostic}")
    return f"{kind}, {why}"


__all__ = ["AeSettings", "make_ae", "associate", "describe_rejection",
           "NODELAY_HANDLERS", "DEFAULT_MAX_PDU"]
