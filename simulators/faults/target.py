"""What ``pacsim faults run`` sends faults at: the built-in references, Orthanc, or an AE.

A :class:`Target` is only addresses (DICOM for MWL/MPPS/associations, DICOM for
storage/commitment, MLLP for HL7) plus, for the built-in one, the RIS object so the
invariants can read its order book as well as its worklist. ``builtin_target`` starts
a strict RIS and archive on loopback with tight timeouts (so the idle and stall
faults are judged in seconds) and a small scheduled worklist for the invariants.
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.dicom.address import AeAddress
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.tls import TlsSettings
from simulators.world.world import World

CALLING_AE = "PACSIM_FAULTS"
SECOND_CALLING_AE = "PACSIM_FAULTS2"
STATION_AE, STATION_NAME = "CT01", "CT01_ROOM"
#: Built-in RIS limits, chosen so that the limit faults are judged quickly.
BUILTIN_MAX_ASSOCIATIONS = 4
BUILTIN_IDLE_TIMEOUT = 2.0
BUILTIN_ORDERS = 30


@dataclass
class Target:
    """Where the faults go. ``None`` for a service means the target does not offer it."""

    name: str
    dicom: AeAddress | None = None
    store: AeAddress | None = None
    hl7: tuple[str, int] | None = None
    calling_ae: str = CALLING_AE
    second_calling_ae: str = SECOND_CALLING_AE
    ris: Ris | None = None
    #: How long to wait for a peer to drop an idle association / a stalled frame.
    idle_wait: float = 8.0
    stall_wait: float = 8.0
    #: AE title + listener the commitment probe receives reports on (new association).
    listener_ae: str = "PACSIM_FAULTS_SC"
    listener_port: int = 0
    #: A started Modality whose listener receives commitment reports (runner sets it).
    commitment_modality: Any = None
    notes: list[str] = field(default_factory=list)
    #: A ``pacsim certs`` directory: the TLS probes take expired/unknown certificates here.
    pki: Path | None = None
    #: The target requires client certificates (the client-certificate TLS probes apply).
    tls_mutual: bool = False

    def endpoint(self, service: str) -> AeAddress | None:
        return self.store if service in ("store", "commitment") else self.dicom


def builtin_orders(world: World, count: int = BUILTIN_ORDERS) -> list:  # type: ignore[type-arg]
    """Today's CT orders for the built-in RIS: the items the invariants watch."""
    start = dt.datetime.combine(dt.date.today(), dt.time(8, 0))
    return [world.order(world.patient(index), "CT", station_ae=STATION_AE,
                        station_name=STATION_NAME, index=index,
                        start=start + dt.timedelta(minutes=10 * index))
            for index in range(count)]


def pki_settings(pki: Path, *, profile: str | None = None) -> tuple[TlsSettings, TlsSettings]:
    """(server, client) settings from a ``pacsim certs`` directory: mutual TLS."""
    missing = [name for name in ("ca.pem", "server.pem", "server.key", "client.pem",
                                 "client.key") if not (pki / name).is_file()]
    if missing:
        raise ConfigError(f"--tls-dir {pki}: missing {', '.join(missing)} (make them with "
                          "`pacsim certs --out DIR`)", field="tls-dir")
    extra = {"profile": profile} if profile else {}
    server = TlsSettings(cert=str(pki / "server.pem"), key=str(pki / "server.key"),
                         ca=str(pki / "ca.pem"), require_client_cert=True, **extra)
    client = TlsSettings(cert=str(pki / "client.pem"), key=str(pki / "client.key"),
                         ca=str(pki / "ca.pem"), **extra)
    return server, client


@contextmanager
def builtin_target(*, events: EventBus | None = None, seed: int = 5,
                   orders: int = BUILTIN_ORDERS, listener_port: int = 0,
                   tls_dir: Path | None = None, tls_profile: str | None = None
                   ) -> Iterator[Target]:
    """Start the strict built-in RIS and archive on loopback; stop them afterwards.

    With ``tls_dir`` (a ``pacsim certs`` directory) their DICOM ports take mutual TLS
    only (server.pem, clients signed by ca.pem); the HL7 port stays plain.
    """
    bus = events or EventBus()
    server_tls, client_tls = (pki_settings(tls_dir, profile=tls_profile) if tls_dir
                              else (None, None))
    listener_ae = "PACSIM_FAULTS_SC"
    with ExitStack() as stack:
        ris = stack.enter_context(Ris(RisConfig(
            name="fault-ris", ae_title="PACSIM_RIS", max_associations=BUILTIN_MAX_ASSOCIATIONS,
            allowed_calling=frozenset({CALLING_AE, SECOND_CALLING_AE, "MODALITY"}),
            network_timeout=BUILTIN_IDLE_TIMEOUT, hl7_read_timeout=BUILTIN_IDLE_TIMEOUT,
            hl7_max_frame=1_048_576, tls=server_tls), events=bus))
        destinations = {listener_ae: ("127.0.0.1", listener_port)} if listener_port else {}
        archive = stack.enter_context(Archive(ArchiveConfig(
            name="fault-archive", ae_title="PACSIM_ARC", destinations=destinations,
            tls=server_tls), events=bus))
        world = World(seed)
        for order in builtin_orders(world, orders):
            ris.schedule(order)
        host, port = ris.dicom_address
        yield Target("builtin", dicom=AeAddress(ae_title="PACSIM_RIS", host=host, port=port,
                                                tls=client_tls),
                     store=AeAddress(ae_title="PACSIM_ARC", host="127.0.0.1", port=archive.port,
                                     tls=client_tls),
                     hl7=ris.hl7_address, ris=ris, idle_wait=BUILTIN_IDLE_TIMEOUT + 4,
                     stall_wait=BUILTIN_IDLE_TIMEOUT + 4, listener_ae=listener_ae,
                     listener_port=listener_port, pki=tls_dir, tls_mutual=tls_dir is not None)


def parse_hl7_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--hl7 must be HOST:PORT", hl7=text)
    return host, int(port)


@contextmanager
def orthanc_target(listener: tuple[str, int] | None = None, *, tls_dir: Path | None = None,
                   tls_profile: str | None = None) -> Iterator[Target]:
    """A fresh Orthanc (its DICOM port serves association, store and MWL faults).

    ``listener`` (AE title, port) is registered as a modality so Orthanc accepts our
    storage-commitment requests and can send the report on a new association. With
    ``tls_dir`` (a ``pacsim certs`` directory) Orthanc's DICOM port takes mutual TLS
    only (DicomTlsEnabled, DicomTlsRemoteCertificateRequired)."""

    modalities = {listener[0]: ("127.0.0.1", listener[1])} if listener else {}
    server_tls, client_tls = (pki_settings(tls_dir, profile=tls_profile) if tls_dir
                              else (None, None))
    with OrthancProcess(OrthancSettings(ae_title="ORTHANC", modalities=modalities,
                                        tls=server_tls)) as orthanc:
        endpoint = AeAddress(ae_title=orthanc.ae_title, host="127.0.0.1", port=orthanc.dicom_port,
                             tls=client_tls)
        yield Target("orthanc", dicom=endpoint, store=endpoint, idle_wait=4.0, stall_wait=4.0,
                     pki=tls_dir, tls_mutual=tls_dir is not None)


__all__ = ["Target", "builtin_target", "pki_settings", "orthanc_target", "parse_hl7_address", "builtin_orders",
           "CALLING_AE", "SECOND_CALLING_AE",
           "STATION_AE", "STATION_NAME", "BUILTIN_MAX_ASSOCIATIONS"]
