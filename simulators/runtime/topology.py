"""A scenario's ``environment`` as container services: one plan for compose and Docker.

Why a plan of plain data: the compose renderer and the docker SDK runtime must wire
actors identically (who sends worklist queries, MPPS and images where), and the
in-process :class:`~simulators.scenario.environment.Site` already decided what that
wiring means. Here the same decisions are made with container names instead of
ports found at run time: every service listens on the image's fixed ports
(:data:`DICOM_PORT`, :data:`HL7_PORT`) and is reached by its name on the private
network, so the plan is complete before anything starts.

Each pacsim service gets one YAML settings file (``pacsim serve KIND --config``),
because some settings (RIS stations, archive destinations) are mappings that
``PACSIM_*`` variables cannot hold. Listen address and ports come from the image.

Wiring, as in the in-process site:

* target ``builtin`` -> an ``archive`` service named ``target`` (AE ``PACSIM_ARC``),
  serving DICOMweb on :data:`DICOMWEB_PORT` when the environment supports it;
  ``orthanc`` -> an ``orthanc`` service; ``external`` -> no service, its address as given;
* legacy archives run ``serve archive``, viewers ``serve viewer``; a viewer reads
  from the target by its in-network address (:meth:`Topology.network_sources`), never
  the ports published on 127.0.0.1 (those are this machine's, not the container's);
* modalities query the RIS worklist, store to the target, and send MPPS and storage
  commitment where :meth:`Capabilities.route` says, exactly as the in-process site
  (:func:`simulators.site.site.modality_peers`): MPPS to the target when it takes
  MPPS, else to the RIS (the order filler is the PPS manager in IHE SWF). The
  capabilities are the caller's (probed) or, for a plan made before the target runs,
  :func:`simulators.site.capabilities.assumed`;
* the target (archive or Orthanc) knows every modality and legacy archive as a
  C-MOVE destination; the EHR sends HL7 to the RIS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from simulators.actors.viewer import ViewerSource
from simulators.dicom.address import AeAddress
from simulators.errors import ConfigError
from simulators.injection.profile import scenario_faults
from simulators.runtime.engine import orthanc_image, pacsim_image
from simulators.runtime.images import (
    ORTHANC_DICOM_PORT, ORTHANC_HTTP_PORT, orthanc_modalities_config,
)
from simulators.site.capabilities import Capabilities, assumed
from simulators.site.models import (
    ArchiveSpec, EhrSpec, Environment, ModalitySpec, ViewerSpec,
)
from simulators.site.site import (
    BUILTIN_TARGET_AE, DEFAULT_EHR, ORTHANC_AE, modality_peers, ris_spec,
)

DICOM_PORT = 11112
HL7_PORT = 2575
#: DICOMweb (QIDO/WADO/STOW-RS) of the built-in target inside its container.
DICOMWEB_PORT = 8080
#: Where the DICOMweb root is on the built-in archive and on Orthanc's plugin.
DICOMWEB_ROOT = "/dicom-web"
#: The control API (``pacsim serve --control-port``) of each pacsim actor when the plan
#: is made for ``pacsim run --runtime docker``; published on 127.0.0.1 only.
CONTROL_PORT = 7070
CONFIG_DIR = "/etc/pacsim"
ORTHANC_EXTRA_CONFIG = "/etc/orthanc/pacsim-modalities.json"
BUILTIN_TARGET = "target"
ORTHANC_SERVICE = "orthanc"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class Service:
    """One container: what runs, its settings file, published ports, dependencies."""

    name: str
    kind: str  # ehr, ris, modality, archive, viewer, orthanc
    image: str
    command: list[str]
    #: (path inside the container, text) files put in place before the container starts.
    files: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    #: container port -> host port on 127.0.0.1 (0: any free port).
    ports: dict[int, int] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    ae_title: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def healthcheck(self) -> list[str]:
        """The image's HEALTHCHECK, spelled out for compose files."""
        if self.kind == "orthanc":
            return ["CMD", "curl", "-fsS", "-o", "/dev/null",
                    f"http://127.0.0.1:{ORTHANC_HTTP_PORT}/system"]
        return ["CMD", "python3", "-m", "simulators.runtime.health"]


@dataclass
class Topology:
    """Every service of an environment, in start order, plus where the target answers."""

    services: list[Service]
    target_kind: str
    #: The target's DICOM endpoint: a service name and container port, or the
    #: external target's own address.
    target: AeAddress

    #: The target's DICOMweb root inside the network (``http://target:8080/dicom-web``),
    #: when it serves DICOMweb.
    target_dicomweb: str | None = None
    #: What the plan's wiring rests on (probed, declared or assumed).
    capabilities: Capabilities | None = None

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise ConfigError(f"no service named {name!r}",
                          services=",".join(s.name for s in self.services))

    def network_sources(self) -> dict[str, ViewerSource]:
        """What a viewer container reads from, by the names steps use: ``target`` and
        every archive or viewer service, each at its in-network name and ports."""
        sources = {"target": ViewerSource(name="target", dicom=self.target,
                                          dicomweb_url=self.target_dicomweb)}
        for service in self.services:
            if service.kind in ("archive", "viewer") and service.name != BUILTIN_TARGET:
                dicom = AeAddress(ae_title=service.ae_title, host=service.name, port=DICOM_PORT) \
                    if service.ae_title else None
                sources[service.name] = ViewerSource(name=service.name, dicom=dicom)
        return sources


class _PlainDumper(yaml.SafeDumper):
    """No ``&id001`` anchors: a settings file a person reads shows every value in place."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_PlainDumper, sort_keys=True, default_flow_style=None)


def _pacsim(name: str, kind: str, settings: dict[str, Any], *, ae_title: str | None,
            ports: dict[int, int], depends_on: list[str] | None = None,
            environment: dict[str, str] | None = None) -> Service:
    if not _NAME.match(name):
        raise ConfigError("container actors need lower-case names (letters, digits, - and _)",
                          actor=name)
    path = f"{CONFIG_DIR}/{name}.yaml"
    return Service(name=name, kind=kind, image=pacsim_image(),
                   command=["serve", kind, "--config", path],
                   files={path: _dump_yaml({"name": name, **settings})},
                   environment=dict(environment or {}), ports=ports,
                   depends_on=list(depends_on or []), ae_title=ae_title)


def _peer_setting(peer: AeAddress) -> dict[str, Any]:
    """A peer as a settings file writes it: every field named, so no reader has to know
    an order (:meth:`AeAddress.from_config` reads it back)."""
    return {"ae_title": peer.ae_title, "host": peer.host, "port": peer.port}


def _specs(environment: Environment, kind: type) -> list[tuple[str, Any]]:
    return [(n, s) for n, s in environment.actors.items() if isinstance(s, kind)]


def plan(environment: Environment, *, control: bool = False,
         capabilities: Capabilities | None = None) -> Topology:
    """The services of ``environment`` in start order (see the module docstring).

    ``capabilities``: what the target takes, when the caller probed it (an external
    target); otherwise :func:`~simulators.site.capabilities.assumed`.

    Modality and EHR fault profiles always go into their settings, as the in-process
    site gives them, so a compose file's bad scanner really misbehaves. ``control``:
    every pacsim actor also serves its operations on :data:`CONTROL_PORT` (``pacsim run
    --runtime docker`` drives scenario steps through it); off for ``pacsim up`` and
    compose files, which need no remote control.
    """
    topology = _plan(environment, with_faults=True, capabilities=capabilities)
    if control:
        for service in topology.services:
            if service.kind != "orthanc":
                service.command = [*service.command, "--control-port", str(CONTROL_PORT)]
                service.ports[CONTROL_PORT] = 0
    return topology


def _plan(environment: Environment, *, with_faults: bool,
          capabilities: Capabilities | None = None) -> Topology:
    services: list[Service] = []
    modalities = _specs(environment, ModalitySpec)
    archives = [*_specs(environment, ArchiveSpec), *_specs(environment, ViewerSpec)]
    destinations = {spec.ae_title: (name, DICOM_PORT) for name, spec in [*modalities, *archives]}

    for name, spec in archives:  # legacy PACS and viewers: storage SCPs of their own
        actor_kind = "viewer" if isinstance(spec, ViewerSpec) else "archive"
        services.append(_pacsim(name, actor_kind, {"ae_title": spec.ae_title, **spec.settings},
                                ae_title=spec.ae_title, ports={DICOM_PORT: spec.port}))

    kind = environment.target_kind
    dicomweb: str | None = None
    if kind == "builtin":
        settings: dict[str, Any] = {"ae_title": BUILTIN_TARGET_AE, "destinations": destinations}
        ports = {DICOM_PORT: 0}
        if environment.supported("dicomweb"):
            settings["dicomweb_port"] = DICOMWEB_PORT
            ports[DICOMWEB_PORT] = 0
            dicomweb = f"http://{BUILTIN_TARGET}:{DICOMWEB_PORT}{DICOMWEB_ROOT}"
        services.append(_pacsim(BUILTIN_TARGET, "archive", settings,
                                ae_title=BUILTIN_TARGET_AE, ports=ports))
        target = AeAddress(ae_title=BUILTIN_TARGET_AE, host=BUILTIN_TARGET, port=DICOM_PORT)
    elif kind == "orthanc":

        services.append(Service(
            name=ORTHANC_SERVICE, kind="orthanc", image=orthanc_image(),
            command=["Orthanc", "/etc/orthanc/"], ae_title=ORTHANC_AE,
            files={ORTHANC_EXTRA_CONFIG: json.dumps(orthanc_modalities_config(destinations),
                                                    indent=2) + "\n"},
            ports={ORTHANC_DICOM_PORT: 0, ORTHANC_HTTP_PORT: 0}))
        target = AeAddress(ae_title=ORTHANC_AE, host=ORTHANC_SERVICE, port=ORTHANC_DICOM_PORT)
        if environment.supported("dicomweb"):
            dicomweb = f"http://{ORTHANC_SERVICE}:{ORTHANC_HTTP_PORT}{DICOMWEB_ROOT}"
    else:
        external = environment.target.external  # type: ignore[union-attr]
        target = external.dicom_address
        dicomweb = external.dicomweb if environment.supported("dicomweb") else None
    target_services = [target.host] if kind != "external" else []

    ris_name, ris = ris_spec(environment)
    hl7_address = None
    if kind == "external" and environment.target.external.hl7:  # type: ignore[union-attr]
        host, _, port = environment.target.external.hl7.rpartition(":")  # type: ignore[union-attr]
        hl7_address = (host, int(port))
    if capabilities is None:
        capabilities = assumed(str(target), kind, environment.declarations(),
                               dicomweb=dicomweb, hl7=hl7_address, ris_mpps=ris.mpps,
                               ris_mwl=ris.mwl)
    stations: dict[str, list[str]] = {}
    for name, spec in modalities:
        stations.setdefault(spec.modality, [spec.ae_title, spec.station or spec.ae_title])
    ris_settings: dict[str, Any] = {"ae_title": ris.ae_title, "mwl": ris.mwl, "mpps": ris.mpps,
                                    "stations": stations}
    if hl7_address is not None and capabilities.route("hl7").to == "target":
        ris_settings["forward_hl7"] = list(hl7_address)
    services.append(_pacsim(ris_name, "ris", {**ris_settings, **ris.settings},
                            ae_title=ris.ae_title,
                            ports={DICOM_PORT: ris.port, HL7_PORT: ris.hl7_port}))

    for name, spec in _specs(environment, EhrSpec) or [(DEFAULT_EHR, EhrSpec(kind="ehr"))]:
        settings = {"ris_host": ris_name, "ris_port": HL7_PORT,
                    "receiving_application": ris.ae_title, **spec.settings}
        if spec.faults and with_faults:
            settings["faults"] = list(scenario_faults(spec.faults, actor=name))
        services.append(_pacsim(name, "ehr", settings, ae_title=None,
                                ports={HL7_PORT: spec.port}, depends_on=[ris_name],
                                environment={"PACSIM_PORT": str(HL7_PORT)}))

    ris_address = AeAddress(ae_title=ris.ae_title, host=ris_name, port=DICOM_PORT)
    peers = {role: None if peer is None else _peer_setting(peer)
             for role, peer in modality_peers(capabilities, target=target,
                                              ris=ris_address).items()}
    for name, spec in modalities:
        settings = {"ae_title": spec.ae_title, "modality": spec.modality,
                    "station_name": spec.station or spec.ae_title, "seed": environment.seed,
                    **{role: peer for role, peer in peers.items() if peer is not None},
                    **spec.settings}
        if spec.faults and with_faults:  # the parser entries the in-process site gives
            settings["faults"] = list(scenario_faults(spec.faults, actor=name))
        service = _pacsim(name, "modality", settings, ae_title=spec.ae_title,
                          ports={DICOM_PORT: spec.port}, depends_on=[ris_name, *target_services])
        if spec.faults:  # `pacsim status` and `docker ps` show which rooms misbehave
            service.labels["org.pacsim.faults"] = ",".join(f.id for f in spec.faults)
        services.append(service)
    return Topology(services, kind, target, dicomweb, capabilities)


__all__ = ["Service", "Topology", "plan", "DICOM_PORT", "HL7_PORT", "CONTROL_PORT", "CONFIG_DIR",
           "DICOMWEB_PORT", "DICOMWEB_ROOT",
           "ORTHANC_EXTRA_CONFIG",
           "BUILTIN_TARGET", "ORTHANC_SERVICE", "ORTHANC_AE", "BUILTIN_TARGET_AE"]
