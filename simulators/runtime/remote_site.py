"""A scenario site whose actors run in containers: ``pacsim run --runtime docker``.

Why this is the whole difference between the runtimes: the in-process starter
(:func:`~simulators.site.site.start_locally`) starts actor objects; here the same
environment is planned as container services (:func:`~simulators.runtime.topology.plan`
with the control API on), started on a private network by
:class:`~simulators.runtime.docker.DockerEnvironment`, and each actor is represented
by a proxy (:mod:`simulators.runtime.remote`) with the same operations. The site then
looks exactly as steps expect: ``site.actor("ct1")``, ``site.ris``, ``site.builtin``,
``site.target`` (the target's DICOM port as published on 127.0.0.1).

Addresses: steps and the sandbox on this machine reach every service on the ports
published on 127.0.0.1; a viewer in its container reads from the target by the
network's names (its proxy carries :meth:`Topology.network_sources`). With an
Orthanc target, ``site.orthanc`` is a :class:`PublishedOrthanc`: where its web
interface and DICOMweb answer on this machine (what trainees open).

Capabilities: an external target is probed before the plan is made, so the modality
containers are wired from what it really accepts; a target the run starts itself
(the built-in archive, Orthanc) is planned from
:func:`~simulators.site.capabilities.assumed` and probed as soon as it runs: when
the probe would route MPPS, the worklist, commitment or HL7 differently from the plan,
the start fails with a ConfigError saying which (no step runs on a wrong wiring).

Cleanup: the containers and the network are removed by their run label when the
site stops, when starting fails, and on Ctrl-C (``DockerEnvironment.start`` removes
what it created before re-raising; afterwards the site's ExitStack does).
"""

from __future__ import annotations

import ipaddress
import logging
from contextlib import ExitStack
from dataclasses import dataclass

from simulators.dicom.address import AeAddress
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.runtime.docker import DockerEnvironment
from simulators.runtime.images import ORTHANC_DICOM_PORT, ORTHANC_HTTP_PORT
from simulators.runtime.remote import (
    ControlClient, RemoteActor, RemoteArchive, RemoteEhr, RemoteModality, RemoteRis,
)
from simulators.runtime.remote_viewer import RemoteViewer
from simulators.runtime.topology import (
    BUILTIN_TARGET, CONTROL_PORT, DICOM_PORT, DICOMWEB_PORT, DICOMWEB_ROOT, HL7_PORT,
    ORTHANC_AE, Service, Topology, plan,
)
from simulators.site.capabilities import Capabilities
from simulators.site.models import ArchiveSpec, Environment, RisSpec, ViewerSpec
from simulators.site.site import (
    BUILTIN_TARGET_AE, StartedSite, TargetEndpoint, external_target, refuse_faults,
    target_capabilities,
)
from simulators.world.world import World

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublishedOrthanc:
    """The Orthanc container as this machine reaches it (what an
    :class:`~simulators.peers.orthanc.OrthancProcess` tells a local site)."""

    rest_url: str
    dicom_port: int
    ae_title: str = ORTHANC_AE
    dicomweb_url: str | None = None


def _proxy(service: Service, runtime: DockerEnvironment, world: World, events: EventBus,
           topology: Topology) -> RemoteActor:
    client = ControlClient(*runtime.address(service.name, CONTROL_PORT), name=service.name)
    if service.kind == "viewer":
        return RemoteViewer(service.name, client, events=events,
                            address=runtime.address(service.name, DICOM_PORT),
                            network_sources=topology.network_sources())
    if service.kind == "modality":
        return RemoteModality(service.name, client, world=world, events=events,
                              address=runtime.address(service.name, DICOM_PORT))
    if service.kind == "ris":
        return RemoteRis(service.name, client, events=events,
                         dicom_address=runtime.address(service.name, DICOM_PORT),
                         hl7_address=runtime.address(service.name, HL7_PORT))
    if service.kind == "ehr":
        return RemoteEhr(service.name, client, events=events,
                         address=runtime.address(service.name, HL7_PORT))
    if service.kind == "archive":
        return RemoteArchive(service.name, client, events=events,
                             address=runtime.address(service.name, DICOM_PORT))
    raise ConfigError(f"no proxy for a {service.kind} service", service=service.name)


def _refuse_loopback_target(environment: Environment) -> None:
    """An external target on 127.0.0.1 is this machine to the runner but the container
    itself to the modalities: say so instead of failing on every C-STORE."""
    external = environment.target.external  # type: ignore[union-attr]
    host = external.dicom_address.host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        raise ConfigError("with --runtime docker the containers cannot reach an external "
                          f"target on {host}: give an address the Docker network can "
                          "reach (the host's LAN address, or host.docker.internal)",
                          target=external.dicom)


def _target(environment: Environment, events: EventBus, topology: Topology,
            runtime: DockerEnvironment) -> tuple[TargetEndpoint, PublishedOrthanc | None]:
    kind = topology.target_kind
    if kind == "builtin":
        host, port = runtime.address(BUILTIN_TARGET, DICOM_PORT)
        web = None
        if topology.target_dicomweb:
            web_host, web_port = runtime.address(BUILTIN_TARGET, DICOMWEB_PORT)
            web = f"http://{web_host}:{web_port}{DICOMWEB_ROOT}"
        return TargetEndpoint(kind="builtin", dicom=AeAddress(ae_title=BUILTIN_TARGET_AE,
                                                              host=host, port=port),
                              dicomweb_url=web), None
    if kind == "orthanc":
        service = topology.target.host
        host, port = runtime.address(service, ORTHANC_DICOM_PORT)
        web_host, web_port = runtime.address(service, ORTHANC_HTTP_PORT)
        rest = f"http://{web_host}:{web_port}"
        web = f"{rest}{DICOMWEB_ROOT}" if environment.supported("dicomweb") else None
        return (TargetEndpoint(kind="orthanc",
                               dicom=AeAddress(ae_title=ORTHANC_AE, host=host, port=port),
                               dicomweb_url=web),
                PublishedOrthanc(rest, port, ORTHANC_AE, web))
    return external_target(environment, events), None


#: The routes a container plan fixes in the modalities' settings files.
WIRED_ROUTES = ("mwl", "mpps", "storage_commitment", "hl7")


def check_plan(planned: Capabilities, probed: Capabilities) -> None:
    """ConfigError when the running target's probe routes a wired transaction
    differently from the plan the containers were started with."""
    for service in WIRED_ROUTES:
        wanted, found = planned.route(service), probed.route(service)
        if wanted.to != found.to:
            raise ConfigError(
                f"the containers were wired for {service} -> {wanted.to or 'nobody'} "
                f"({wanted.reason}), but the running target says {found.reason}: declare "
                f"it with supports: {{{service}: ...}}", service=service)


def start_in_containers(environment: Environment, world: World, events: EventBus,
                        stack: ExitStack) -> StartedSite:
    """Start ``environment`` as containers and hand back proxies in the actors' place.

    Everything started is undone by ``stack`` (and by ``DockerEnvironment.start``
    itself when it fails half-way)."""
    refuse_faults(environment, (ViewerSpec, ArchiveSpec, RisSpec))
    probed: Capabilities | None = None
    if environment.target_kind == "external":
        _refuse_loopback_target(environment)
        probed = target_capabilities(environment, external_target(environment, events), events)
    topology = plan(environment, control=True, capabilities=probed)
    runtime = DockerEnvironment(topology, progress=lambda line: log.info("docker: %s", line))
    log.info("starting %d container(s) as run %s", len(topology.services), runtime.run_id)
    runtime.start()
    stack.callback(runtime.stop)
    target, orthanc = _target(environment, events, topology, runtime)
    if probed is None:
        probed = target_capabilities(environment, target, events)
        assert topology.capabilities is not None
        check_plan(topology.capabilities, probed)
    started = StartedSite({}, target, None, orthanc=orthanc, run_id=runtime.run_id,
                          capabilities=probed)
    for service in topology.services:
        if service.kind == "orthanc":
            continue
        proxy = _proxy(service, runtime, world, events, topology).start()
        if service.name == BUILTIN_TARGET and topology.target_kind == "builtin":
            started.builtin = proxy
            continue
        started.actors[service.name] = proxy
        if service.kind == "ris":
            started.ris = proxy
    log.info("run %s: every container healthy in %.1fs", runtime.run_id,
             runtime.started_in or 0.0)
    return started


__all__ = ["start_in_containers", "PublishedOrthanc", "check_plan", "WIRED_ROUTES"]
