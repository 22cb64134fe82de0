"""Is an actor up? Asked the way its protocol asks: C-ECHO, an MLLP round trip, HTTP.

One set of probes serves the image's HEALTHCHECK (:mod:`.health`), the Docker
runtime's wait for "all healthy", and the testcontainers wait strategies, so
"healthy" means the same thing everywhere. A bare TCP connect is not enough: a
listener can accept and still be unable to answer (a stuck association thread).
"""

from __future__ import annotations

import datetime as dt
import secrets

from pynetdicom import AE

from simulators.dicom.ae import associate
from simulators.errors import PacsimError, ProtocolError
from simulators.events import EventBus
from simulators.hl7.er7 import HEALTH_CHECK_SENDER
from simulators.hl7.mllp_client import MllpClient
from simulators.http.client import answers
from simulators.tls import TlsSettings

VERIFICATION = "1.2.840.10008.1.1"
PROBE_AE = "PACSIM_PROBE"


def dicom_echo(host: str, port: int, called_ae: str, *, calling_ae: str = PROBE_AE,
               timeout: float = 5.0, tls: TlsSettings | None = None) -> int:
    """C-ECHO ``called_ae@host:port`` (over TLS with ``tls``); returns the status (0 =
    alive) or raises :class:`ProtocolError`/:class:`AssociationError` saying why not."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    assoc = associate(ae, host, port, called_ae, tls=tls)
    try:
        status = assoc.send_c_echo()
        if not status or "Status" not in status:
            raise ProtocolError("no C-ECHO response", peer=f"{host}:{port}", called_ae=called_ae)
        return int(status.Status)
    finally:
        assoc.release()
        ae.shutdown()


def probe_message(receiving_application: str = "PACSIM") -> str:
    """An HL7 query no actor acts on: any ACK (AR included) proves the listener answers."""
    stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    control = f"PROBE{secrets.token_hex(4).upper()}"
    return (f"MSH|^~\\&|{HEALTH_CHECK_SENDER}|PACSIM|{receiving_application}|PACSIM|{stamp}||QRY^Q01|"
            f"{control}|P|2.5.1\rQRD|{stamp}|R|I|{control}|||1^RD|PROBE|DEM\r")


def mllp_ping(host: str, port: int, *, timeout: float = 5.0,
              tls: TlsSettings | None = None) -> str:
    """Send :func:`probe_message` over MLLP (over TLS with ``tls``); returns MSA-1."""
    # A private bus: probes are not part of any run's event stream.
    with MllpClient(host, port, timeout=timeout, events=EventBus(), name="probe",
                    tls=tls) as client:
        reply = client.send(probe_message())
    for segment in reply.replace("\n", "\r").split("\r"):
        if segment.startswith("MSA|"):
            return segment.split("|")[1]
    raise ProtocolError("MLLP reply without an MSA segment", peer=f"{host}:{port}")


def http_ok(url: str, *, timeout: float = 5.0) -> bool:
    """GET ``url``; True on a 2xx answer (pacsim's one HTTP client underneath)."""
    return answers(url, timeout=timeout)


def dicom_alive(host: str, port: int, called_ae: str, timeout: float = 5.0) -> bool:
    try:
        return dicom_echo(host, port, called_ae, timeout=timeout) == 0x0000
    except (PacsimError, OSError):
        return False


def mllp_alive(host: str, port: int, timeout: float = 5.0) -> bool:
    try:
        return bool(mllp_ping(host, port, timeout=timeout))
    except (PacsimError, OSError):
        return False


__all__ = ["dicom_echo", "mllp_ping", "http_ok", "dicom_alive", "mllp_alive", "probe_message",
           "PROBE_AE"]
