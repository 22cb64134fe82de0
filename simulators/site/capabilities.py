"""What the target under test takes, learned at start, and who serves each transaction.

Why learned and not assumed: a step reported N/A ("not supported by target") is a
verdict about the target, so it must rest on what the target itself answered. At
site start one association proposes every service SOP class pacsim may use
(:data:`DICOM_SERVICES`) and records which presentation contexts the target accepts;
DICOMweb is asked with one QIDO-RS request, HL7 by connecting to the MLLP listener.
A scenario, site file or ``pacsim run --supports`` may *declare* a service instead
(``environment.supports``); a declaration wins over the probe and says so.

Why the routing is here too (:meth:`Capabilities.route`): whether MPPS goes to the
target or to the RIS, and whether a step is N/A, are the same decision. The local
starter, the container plan (``pacsim up``, ``pacsim run --runtime docker``) and the
scenario runner all ask :meth:`Capabilities.route`, so they cannot disagree:

* MPPS goes to the target when it accepts MPPS, else to the RIS (the order filler
  is the Performed Procedure Step Manager in IHE SWF) when the RIS takes MPPS;
* the worklist is the RIS's; the target's when the RIS has none and the target takes MWL;
* everything else (storage commitment, Q/R, DICOMweb, HL7) only the target can serve.

A transaction with nobody to serve it is N/A, and :meth:`Route.reason` says which
service the target lacks and how that was learned.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

from simulators.dicom.address import AeAddress
from simulators.dicom.negotiation_probe import VERIFICATION, negotiate
from simulators.errors import ConfigError, PacsimError
from simulators.events import EventBus
from simulators.http.client import JsonClient

#: Service -> (SOP class UID, its name), proposed together in one association.
DICOM_SERVICES: dict[str, tuple[str, str]] = {
    "mwl": ("1.2.840.10008.5.1.4.31", "Modality Worklist Information Model - FIND"),
    "mpps": ("1.2.840.10008.3.1.2.3.3", "Modality Performed Procedure Step"),
    "storage_commitment": ("1.2.840.10008.1.20.1", "Storage Commitment Push Model"),
    "query": ("1.2.840.10008.5.1.4.1.2.2.1", "Study Root Query/Retrieve - FIND"),
    "move": ("1.2.840.10008.5.1.4.1.2.2.2", "Study Root Query/Retrieve - MOVE"),
    "get": ("1.2.840.10008.5.1.4.1.2.2.3", "Study Root Query/Retrieve - GET"),
}
#: Every service a step may need (``needs:`` / ``requires``), in report order.
SERVICES = (*DICOM_SERVICES, "dicomweb", "hl7")
_TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]

Source = Literal["negotiated", "declared", "http", "hl7", "assumed", "no-address"]
Provider = Literal["target", "ris"]


@dataclass(frozen=True, slots=True)
class Capability:
    """Whether the target takes one service, and how that was learned (``source``):
    ``negotiated`` (association), ``http`` (a DICOMweb request), ``hl7`` (the MLLP
    listener), ``declared`` (environment.supports / --supports), ``no-address`` (no
    DICOMweb URL or HL7 address was given, so there is nothing to ask) or ``assumed``
    (a plan made before a container target exists; checked by a probe once it runs)."""

    service: str
    supported: bool
    source: Source
    detail: str

    def describe(self) -> str:
        """``MPPS: rejected by ORTHANC@... in association negotiation (...)``."""
        return f"{self.service}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Route:
    """Who serves ``service`` in this site: the target, the RIS, or nobody (N/A)."""

    service: str
    to: Provider | None
    reason: str


@dataclass(frozen=True)
class Capabilities:
    """The target's services plus what the simulated RIS takes, and the routes between.

    ``ris_mpps``/``ris_mwl``: whether the site's RIS serves MPPS and the worklist
    (``RisSpec.mpps``/``.mwl``); they matter only for :meth:`route`."""

    target: str
    services: Mapping[str, Capability]
    ris_mpps: bool = True
    ris_mwl: bool = True
    _routes: dict[str, Route] = field(default_factory=dict, init=False, repr=False,
                                      compare=False)

    def supports(self, service: str) -> bool:
        """Whether the *target* takes ``service`` (ConfigError for an unknown name)."""
        return self.capability(service).supported

    def capability(self, service: str) -> Capability:
        try:
            return self.services[service]
        except KeyError:
            raise ConfigError(f"unknown service {service!r}",
                              services=",".join(SERVICES)) from None

    def route(self, service: str) -> Route:
        """Who serves ``service`` here (see the module docstring); ``to`` None is N/A."""
        cached = self._routes.get(service)
        if cached is not None:
            return cached
        found = self.capability(service)
        if service == "mpps":
            route = self._mpps(found)
        elif service == "mwl":
            route = self._mwl(found)
        elif found.supported:
            route = Route(service, "target", found.describe())
        else:
            route = Route(service, None, f"target {self.target} lacks {found.describe()}")
        self._routes[service] = route
        return route

    def _mpps(self, found: Capability) -> Route:
        if found.supported:
            return Route("mpps", "target", found.describe())
        if self.ris_mpps:
            return Route("mpps", "ris", f"target {self.target} lacks {found.describe()}; "
                                        "MPPS goes to the RIS (the PPS manager)")
        return Route("mpps", None, f"target {self.target} lacks {found.describe()}, and "
                                   "the RIS takes no MPPS (ris: {mpps: false})")

    def _mwl(self, found: Capability) -> Route:
        if self.ris_mwl:
            return Route("mwl", "ris", "the RIS serves the worklist")
        if found.supported:
            return Route("mwl", "target", found.describe())
        return Route("mwl", None, f"target {self.target} lacks {found.describe()}, and the "
                                  "RIS serves no worklist (ris: {mwl: false})")

    def unsupported(self, services: tuple[str, ...] | list[str]) -> list[Route]:
        """The routes of ``services`` that nobody serves (what makes a step N/A)."""
        return [route for route in map(self.route, services) if route.to is None]

    def as_dict(self) -> dict[str, dict[str, object]]:
        """For reports and ``pacsim sandbox status``: each service, its route and why."""
        return {name: {"supported": c.supported, "source": c.source, "detail": c.detail,
                       "served_by": self.route(name).to}
                for name, c in self.services.items()}


def not_applicable(routes: list[Route]) -> str:
    """The N/A message of a step: the services and why (names them, says how learned)."""
    return "not supported by target: " + "; ".join(r.reason for r in routes)


# ---------------------------------------------------------------------- probing
def probe_dicom(peer: AeAddress, *, calling_ae: str, events: EventBus | None = None,
                timeout: float = 5.0) -> dict[str, Capability]:
    """One association proposing Verification and every service of
    :data:`DICOM_SERVICES`; C-ECHO on it. ConfigError when the target is unreachable,
    rejects the association or does not answer C-ECHO with success (a target that
    cannot even do that is an environment error, not N/A)."""
    try:
        answer = negotiate(peer, calling_ae, [uid for uid, _ in DICOM_SERVICES.values()],
                           echo=True, events=events or EventBus(),
                           transfer_syntaxes=_TRANSFER_SYNTAXES, timeout=timeout)
    except (PacsimError, OSError) as exc:
        raise ConfigError(f"target {peer} is unreachable: {exc}") from None
    if not answer.accepted(VERIFICATION):
        raise ConfigError(f"target {peer} does not accept Verification (C-ECHO)")
    status = answer.echo
    if status != 0:
        raise ConfigError(f"target {peer} answered C-ECHO with status 0x{status:04X}")
    found = {}
    for service, (uid, name) in DICOM_SERVICES.items():
        accepted = answer.accepted(uid)
        if accepted:
            detail = f"{peer} accepted {name} ({uid}) in association negotiation"
        else:
            detail = (f"{peer} rejected {name} ({uid}) in association negotiation "
                      f"({answer.results.get(uid, 'no answer')})")
        found[service] = Capability(service, accepted, "negotiated", detail)
    return found


def probe_dicomweb(url: str | None, *, timeout: float = 5.0) -> Capability:
    """QIDO-RS ``GET {url}/studies?limit=1``: 200 or 204 means DICOMweb answers."""
    if not url:
        return Capability("dicomweb", False, "no-address",
                          "no DICOMweb URL (give one: --dicomweb URL or target.external.dicomweb)")
    request = "/studies?limit=1"
    try:
        answer = JsonClient(url, timeout=timeout, name="the target's DICOMweb").exchange(
            "GET", request, headers={"Accept": "application/dicom+json"})
    except PacsimError as exc:
        return Capability("dicomweb", False, "http", f"GET {url}{request} failed: {exc}")
    if answer.status in (200, 204):
        return Capability("dicomweb", True, "http",
                          f"GET {url}{request} answered HTTP {answer.status}")
    return Capability("dicomweb", False, "http",
                      f"GET {url}{request} answered HTTP {answer.status}")


def probe_hl7(address: tuple[str, int] | None, *, timeout: float = 5.0) -> Capability:
    """Whether the target's MLLP listener accepts a connection (no message is sent:
    a real interface engine would file it)."""
    if address is None:
        return Capability("hl7", False, "no-address",
                          "no HL7 address (give one: --hl7 HOST:PORT or target.external.hl7)")
    host, port = address
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return Capability("hl7", False, "hl7", f"the MLLP listener {host}:{port} refused: {exc}")
    return Capability("hl7", True, "hl7", f"the MLLP listener {host}:{port} accepted a connection")


def declared(service: str, value: bool) -> Capability:
    """A service the site file, scenario or command line declares."""
    word = "supported" if value else "not supported"
    return Capability(service, value, "declared", f"declared {word} (supports: {service})")


def learn(target: str, probed: Mapping[str, Capability], declarations: Mapping[str, bool],
          *, ris_mpps: bool = True, ris_mwl: bool = True) -> Capabilities:
    """Declarations over probe results, one entry per service of :data:`SERVICES`."""
    services = {}
    for service in SERVICES:
        if service in declarations:
            services[service] = declared(service, declarations[service])
        elif service in probed:
            services[service] = probed[service]
        else:
            raise ConfigError(f"nothing learned about {service} of target {target}")
    return Capabilities(target, MappingProxyType(services), ris_mpps=ris_mpps, ris_mwl=ris_mwl)


#: What a plan made before the target runs (a compose file, ``pacsim up``, the
#: container plan of ``pacsim run --runtime docker``) assumes of the targets pacsim
#: starts itself: its archive runs without MPPS or MWL, and so does an Orthanc
#: without the worklist plugin. ``pacsim run --runtime docker`` probes the running
#: target and refuses to go on when the probe routes differently.
STARTED_TARGETS: dict[str, dict[str, bool]] = {
    "builtin": {"mwl": False, "mpps": False},
    "orthanc": {"mwl": False, "mpps": False},
}


def assumed(target: str, kind: str, declarations: Mapping[str, bool], *,
            dicomweb: str | None, hl7: tuple[str, int] | None, ris_mpps: bool = True,
            ris_mwl: bool = True) -> Capabilities:
    """Capabilities for a plan made before the target runs (see :data:`STARTED_TARGETS`;
    an external target is assumed to take every DICOM service it is not declared
    without, as a compose file cannot probe it)."""
    known = STARTED_TARGETS.get(kind, {})
    why = (f"assumed of the {kind} target pacsim starts" if kind in STARTED_TARGETS
           else "assumed: not probed (a plan is written before anything runs; declare "
                "supports: to change it)")
    probed = {service: Capability(service, known.get(service, True), "assumed", why)
              for service in DICOM_SERVICES}
    probed["dicomweb"] = Capability("dicomweb", bool(dicomweb), "assumed",
                                    why if dicomweb else "no DICOMweb URL")
    probed["hl7"] = Capability("hl7", hl7 is not None, "assumed",
                               why if hl7 else "no HL7 address")
    return learn(target, probed, declarations, ris_mpps=ris_mpps, ris_mwl=ris_mwl)


def probe(peer: AeAddress, *, dicomweb: str | None, hl7: tuple[str, int] | None,
          declarations: Mapping[str, bool], calling_ae: str, events: EventBus | None = None,
          ris_mpps: bool = True, ris_mwl: bool = True, timeout: float = 5.0) -> Capabilities:
    """Probe a running target (skipping the DICOMweb and HL7 checks a declaration
    settles) and combine with the declarations."""
    probed = probe_dicom(peer, calling_ae=calling_ae, events=events, timeout=timeout)
    if "dicomweb" not in declarations:
        probed["dicomweb"] = probe_dicomweb(dicomweb, timeout=timeout)
    if "hl7" not in declarations:
        probed["hl7"] = probe_hl7(hl7, timeout=timeout)
    return learn(str(peer), probed, declarations, ris_mpps=ris_mpps, ris_mwl=ris_mwl)


__all__ = ["Capability", "Capabilities", "Route", "DICOM_SERVICES", "SERVICES",
           "not_applicable", "probe_dicom", "probe_dicomweb", "probe_hl7", "declared",
           "learn", "probe", "assumed", "STARTED_TARGETS"]
