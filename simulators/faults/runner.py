"""Run the catalogue (or part of it) against a target and collect the matrix rows.

The runner owns what every probe shares: the target's lifetime (built-in references
or a started Orthanc), one listener modality that receives storage-commitment
reports on a new association, and one :class:`ProbeRun` so probes draw distinct
worklist items. Probes run one after another: the invariants compare the whole
worklist before and after each fault, which only means something when nothing else
is talking to the target at the same time.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from simulators.actors.modality import Modality, ModalityConfig
from simulators.events import EventBus
from simulators.faults import (  # noqa: F401 - importing registers the probes
    probes_assoc, probes_hl7, probes_mpps, probes_store, probes_tls,
)
from simulators.injection.catalogue import select
from simulators.injection.model import ERROR, NON_CONFORMANT, Fault, Outcome
from simulators.faults.probing import ProbeRun, run
from simulators.dicom.address import parse_ae_address
from simulators.faults.target import Target, builtin_target, orthanc_target, pki_settings
from simulators.errors import ConfigError
from simulators.tls import TlsSettings

LISTENER_AE = "PACSIM_FAULTS_SC"


@dataclass(frozen=True)
class TargetTls:
    """How ``faults run`` reaches a TLS target (all None/False: plain TCP).

    ``pki``: a ``pacsim certs`` directory: the built-in target serves mutual TLS with its
    server certificate, an external one is reached with its client certificate and CA,
    and the TLS probes take its expired and unknown-CA certificates. ``client``: explicit
    client settings for an external target (``--tls-cert/--tls-key/--tls-ca``), which
    win over ``pki``'s. ``mutual``: the external target requires client certificates.
    """

    pki: Path | None = None
    client: TlsSettings | None = None
    profile: str | None = None
    mutual: bool = False

    @property
    def enabled(self) -> bool:
        return self.pki is not None or self.client is not None


def run_faults(target: Target, faults: Iterable[Fault]) -> list[Outcome]:
    """Every fault's outcome against ``target``, in catalogue order."""
    session = ProbeRun(target)
    return [run(target, fault, session) for fault in faults]


def failed(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Rows that make ``pacsim faults run`` exit 1."""
    return [o for o in outcomes if o.verdict in (NON_CONFORMANT, ERROR)]


@contextmanager
def _listener(events: EventBus) -> Iterator[Modality]:
    """The modality whose listener takes commitment reports on a new association."""
    with Modality(ModalityConfig(name="fault-commitment", ae_title=LISTENER_AE),
                  events=events) as modality:
        yield modality


def _attach(modality: Modality, target: Target) -> None:
    if target.store is None:
        return
    peer = target.store
    modality.config = dataclasses.replace(modality.config, store=peer, commitment=peer,
                                          commitment_timeout=10.0)
    target.commitment_modality = modality
    target.listener_ae, target.listener_port = LISTENER_AE, modality.port


def _client_tls(tls: TargetTls) -> TlsSettings | None:
    if tls.client is not None:
        return tls.client
    if tls.pki is None:
        return None
    return pki_settings(tls.pki, profile=tls.profile)[1]


@contextmanager
def open_target(spec: str, *, hl7: tuple[str, int] | None = None,
                events: EventBus | None = None, tls: TargetTls | None = None) -> Iterator[Target]:
    """``builtin``, ``orthanc`` or ``AE@HOST:PORT`` as a ready :class:`Target`."""
    bus = events or EventBus()
    tls = tls or TargetTls()
    with ExitStack() as stack:
        modality = stack.enter_context(_listener(bus))
        if spec == "builtin":
            target = stack.enter_context(builtin_target(
                events=bus, listener_port=modality.port, tls_dir=tls.pki,
                tls_profile=tls.profile))
        elif spec == "orthanc":
            if tls.client is not None:
                raise ConfigError("--target orthanc starts its own Orthanc: give --tls-dir, "
                                  "not --tls-cert/--tls-key/--tls-ca", field="target")
            target = stack.enter_context(orthanc_target(
                (LISTENER_AE, modality.port), tls_dir=tls.pki, tls_profile=tls.profile))
        else:
            endpoint = dataclasses.replace(parse_ae_address(spec, "--target"),
                                           tls=_client_tls(tls))
            target = Target(spec, dicom=endpoint, store=endpoint, pki=tls.pki,
                            tls_mutual=tls.mutual)
        if hl7 is not None:
            target.hl7 = hl7
        _attach(modality, target)
        yield target


def run_against(spec: str, pattern: str | None = None, *,
                hl7: tuple[str, int] | None = None,
                tls: TargetTls | None = None) -> list[Outcome]:
    """Select faults by ``pattern``, open the target, run them."""
    faults = select(pattern)
    with open_target(spec, hl7=hl7, tls=tls) as target:
        return run_faults(target, faults)


__all__ = ["TargetTls", "run_faults", "run_against", "open_target", "failed", "LISTENER_AE"]
