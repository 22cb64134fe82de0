"""A running site: the seeded world, the actors, and the target under test.

Why one ``Site`` object instead of one entry per actor: the actors are wired to each
other by address (EHR -> RIS HL7 port, modality -> RIS and target, target -> C-MOVE
destinations), and with ports 0 those addresses exist only once the listener is
bound. A *starter* starts them in dependency order (receivers, target, RIS, EHR,
modalities), so every config is complete when built and nothing is guessed, and hands
back a :class:`StartedSite`; the site adopts it. Nobody outside writes a site's fields:
steps record the orders and exams they create through :meth:`Site.record_order` and
:meth:`Site.record_exam`.

Starters: :func:`start_locally` (this module) starts actor objects in this process;
:func:`simulators.runtime.remote_site.start_in_containers` starts one container per
actor and hands back proxies with the same operations. :func:`simulators.runtime.sites.open_site`
picks one by runtime name.

Targets:

* ``builtin`` (default): a built-in :class:`Archive` (store, Q/R, commitment, and
  DICOMweb on a free port unless ``supports: {dicomweb: false}``) plus the
  simulated RIS, which takes HL7, MWL and MPPS;
* ``orthanc``: a real Orthanc process, every AE of the environment registered in it
  (C-FIND is allowed and C-MOVE finds its destinations), DICOMweb on when installed;
* ``external``: a real system at ``AE@HOST:PORT``; the RIS forwards orders over HL7
  when it has an ``hl7`` endpoint that accepts connections.

Whatever the kind, the target must answer C-ECHO at start or the run ends with an
environment error (exit 2), and what it takes (MPPS, MWL, commitment, Q/R, DICOMweb,
HL7) is probed then (:mod:`simulators.site.capabilities`) unless ``supports:``
declares it: :attr:`Site.capabilities`. The modalities are wired from those routes:
MPPS to the target when it accepts MPPS, else to the RIS; commitment to the target
when it accepts it, else not sent.

Patients: ``$patientN`` is patient N of the seeded world; ``environment.patients``
names them (``{jane: 0}`` makes ``$jane`` patient 0). A reference resolves to a
:class:`PatientView` (``$jane.id``, ``.name`` as DICOM PN, ``.birth_date`` YYYYMMDD,
``.sex``, ``.family_name``, ``.given_name``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Protocol

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ehr import Ehr, EhrConfig
from simulators.actors.modality import Exam, Modality, ModalityConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.actors.viewer import Viewer, ViewerConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.fast import FastClient
from simulators.errors import ConfigError, PacsimError, ScenarioError
from simulators.events import EventBus
from simulators.injection.profile import scenario_faults
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.peers.process import free_port
from simulators.site.capabilities import Capabilities, probe as probe_capabilities
from simulators.site.models import (
    TARGET_DEFAULT_SUPPORT, ArchiveSpec, EhrSpec, Environment, ModalitySpec, RisSpec, ViewerSpec,
)
from simulators.world.models import Order, Patient
from simulators.world.world import World

log = logging.getLogger(__name__)

#: The AE title steps use to query or retrieve when no ``by:`` actor is given.
QUERY_AE = "PACSIM_QR"
BUILTIN_TARGET_AE = "PACSIM_ARC"
ORTHANC_AE = "ORTHANC"
DEFAULT_RIS = "ris"
DEFAULT_EHR = "ehr"
_PATIENT_NAME = re.compile(r"^patient(\d{1,6})$")


@dataclass(frozen=True, slots=True)
class PatientView:
    """A world patient as scenarios read it: ``$jane.id``, ``$jane.name``..."""

    index: int
    patient: Patient

    @property
    def id(self) -> str:
        return self.patient.patient_id

    @property
    def name(self) -> str:
        return self.patient.dicom_name

    @property
    def family_name(self) -> str:
        return self.patient.family_name

    @property
    def given_name(self) -> str:
        return self.patient.given_name

    @property
    def birth_date(self) -> str:
        return self.patient.dicom_birth_date

    @property
    def sex(self) -> str:
        return self.patient.sex

    @property
    def issuer(self) -> str:
        return self.patient.issuer

    def __str__(self) -> str:  # what a note shows for "$jane"
        return f"{self.name} ({self.id})"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetEndpoint:
    """Where the target under test answers, whatever kind it is: its DICOM peer, and
    its HL7 (host, port) and DICOMweb root when it has them."""

    kind: str
    dicom: AeAddress
    hl7: tuple[str, int] | None = None
    dicomweb_url: str | None = None


def patient_resolver(environment: Environment) -> Callable[[str], PatientView]:
    """Resolve ``$patientN`` and the names in ``environment.patients`` to world patients;
    an unknown name raises KeyError (the runner's resolver contract)."""
    world = World(environment.seed)
    names = dict(environment.patients)

    def resolve(name: str) -> PatientView:
        match = _PATIENT_NAME.match(name)
        index = int(match.group(1)) if match else names.get(name)
        if index is None:
            raise KeyError(name)
        return PatientView(index, world.patient(index))

    return resolve


@dataclass
class StartedSite:
    """What a starter hands back: the running actors and where the target answers.

    ``builtin`` is the built-in archive when it is the target, ``orthanc`` what this
    machine knows of an Orthanc target (a process or a published container), ``run_id``
    the Docker run label of a container site."""

    actors: dict[str, Any]
    target: TargetEndpoint
    ris: Any
    builtin: Any = None
    orthanc: Any = None
    run_id: str | None = None
    #: What the target takes and who serves each transaction (probed at start).
    capabilities: Capabilities | None = None


class SiteStarter(Protocol):
    """Starts a site's environment; everything it starts is undone by ``stack``."""

    def __call__(self, environment: Environment, world: World, events: EventBus,
                 stack: ExitStack) -> StartedSite: ...


class Site:
    """Every actor and the target of one run; ``start()`` has a starter wire them in order."""

    kind = "site"

    def __init__(self, environment: Environment, events: EventBus,
                 starter: SiteStarter | None = None, *, runtime: str = "local") -> None:
        if starter is None and runtime != "local":
            raise ConfigError(f"a {runtime} site needs its starter: open it with "
                              "simulators.runtime.sites.open_site")
        #: Which runtime starts the actors (``local`` or ``docker``), for messages.
        self.runtime = runtime
        self.environment = environment
        self.events = events
        self.world = World(environment.seed)
        self._starter: SiteStarter = starter or start_locally
        self._started: StartedSite | None = None
        self._orders: dict[str, Order] = {}
        self._exams: dict[tuple[str, str], Exam] = {}
        self._lock = threading.Lock()
        # External targets keep what earlier runs stored: start numbering at a
        # time-derived index so accessions and study UIDs do not collide with them.
        base = 0 if environment.target_kind != "external" else int(time.time()) % 10**6 * 1000
        self._order_numbers: Iterator[int] = itertools.count(base)
        self._stack: ExitStack | None = None

    # ------------------------------------------------------------------ what is running
    @property
    def actors(self) -> Mapping[str, Any]:
        """The running actors by name (read-only)."""
        return MappingProxyType(self._started.actors if self._started else {})

    @property
    def target(self) -> TargetEndpoint | None:
        return self._started.target if self._started else None

    @property
    def ris(self) -> Any:
        return self._started.ris if self._started else None

    @property
    def builtin(self) -> Any:
        """The built-in archive (or its proxy) when it is the target, else None."""
        return self._started.builtin if self._started else None

    @property
    def orthanc(self) -> Any:
        return self._started.orthanc if self._started else None

    @property
    def capabilities(self) -> Capabilities | None:
        """What the target takes (probed or declared) and who serves each transaction;
        None before start."""
        return self._started.capabilities if self._started else None

    @property
    def run_id(self) -> str | None:
        """The Docker run id (label ``org.pacsim.run``) of a container site once started."""
        return self._started.run_id if self._started else None

    @property
    def orders(self) -> Mapping[str, Order]:
        """Orders the run placed, by accession (read-only; see :meth:`record_order`)."""
        return MappingProxyType(self._orders)

    def record_order(self, order: Order) -> None:
        """Remember an order a step placed, so later steps find it by accession."""
        with self._lock:
            self._orders[order.accession] = order

    def record_exam(self, scanner: str, key: str, exam: Exam) -> None:
        """Remember an exam a step started, under its accession or study UID."""
        with self._lock:
            self._exams[(scanner, key)] = exam

    def exam(self, scanner: str, key: str) -> Exam | None:
        """The exam ``scanner`` started under ``key`` (accession or study UID), if any."""
        return self._exams.get((scanner, key))

    # ------------------------------------------------------------------ lookups for steps
    def actor(self, name: str | None, kind: type | None = None) -> Any:
        """The running actor ``name`` (of ``kind`` when given); ScenarioError otherwise."""
        if name is None:
            raise ScenarioError("this step needs 'by:' (which actor performs it)", field="by")
        found = self.actors.get(name)
        if found is None:
            known = ", ".join(sorted(self.actors)) or "none"
            raise ScenarioError(f"no actor named {name!r} (actors: {known})", field="by")
        if kind is not None and not is_a(found, kind):
            raise ScenarioError(f"actor {name!r} is a {getattr(found, 'kind', '?')}, "
                                f"not a {getattr(kind, 'kind', kind.__name__)}", field="by")
        return found

    def only(self, kind: type, name: str | None) -> Any:
        """``name`` if given, else the one actor of ``kind`` (the implicit EHR, say)."""
        if name is not None:
            return self.actor(name, kind)
        matching = [a for a in self.actors.values() if is_a(a, kind)]
        if len(matching) != 1:
            raise ScenarioError(f"say which {kind.kind} performs this step with 'by:' "
                                f"({len(matching)} are declared)", field="by")
        return matching[0]

    def modality_for(self, modality: str) -> Modality | None:
        return next((a for a in self.actors.values()
                     if is_a(a, Modality) and a.config.modality == modality), None)

    def next_order_index(self) -> int:
        with self._lock:
            return next(self._order_numbers)

    def require_target(self) -> TargetEndpoint:
        if self.target is None:
            raise ConfigError("the environment is not started")
        return self.target

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Site:
        if self._stack is not None:
            return self
        stack = ExitStack()
        try:
            self._started = self._starter(self.environment, self.world, self.events, stack)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def describe(self) -> str:
        target = self.target
        where = str(target.dicom) if target else "not started"
        run = f" (docker run {self.run_id})" if self.run_id else ""
        return (f"{self.environment.target_kind} target {where}; actors "
                f"{', '.join(self.actors)}{run}")

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- the local starter
def start_locally(environment: Environment, world: World, events: EventBus,
                  stack: ExitStack) -> StartedSite:
    """Start every actor of ``environment`` in this process, in dependency order."""
    return _LocalStart(environment, world, events, stack).run()


def refuse_faults(environment: Environment, kinds: tuple[type, ...]) -> None:
    """Faults on an actor that cannot inject them are an error, never silently dropped."""
    for name, spec in environment.actors.items():
        if isinstance(spec, kinds) and spec.faults:
            raise ConfigError(f"actor {name} ({spec.kind}) cannot carry faults; a modality "
                              "or an ehr can (probe the others with `do: faults.probe`)")


def _config(cls: type, settings: dict[str, Any], **values: Any) -> Any:
    """``cls(**values)`` with the spec's ``settings`` on top; unknown keys are a ConfigError."""
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}",
                          allowed=",".join(sorted(allowed)))
    try:
        return cls(**{**values, **settings})
    except TypeError as exc:
        raise ConfigError(f"invalid settings for {cls.__name__}: {exc}") from None


@dataclass
class _LocalStart:
    """The state of one local start: what is running so far, in start order."""

    environment: Environment
    world: World
    events: EventBus
    stack: ExitStack
    actors: dict[str, Any] = field(default_factory=dict)
    target: TargetEndpoint | None = None
    builtin: Archive | None = None
    orthanc: OrthancProcess | None = None
    ris: Ris | None = None
    capabilities: Capabilities | None = None

    def run(self) -> StartedSite:
        self._start_receivers()
        listener_ports = {name: spec.port or free_port(spec.host)
                          for name, spec in self._specs(ModalitySpec)}
        self._start_target(listener_ports)
        assert self.target is not None
        self.capabilities = target_capabilities(self.environment, self.target, self.events)
        self._start_ris()
        self._start_ehrs()
        self._start_modalities(listener_ports)
        return StartedSite(self.actors, self.target, self.ris, self.builtin, self.orthanc,
                           capabilities=self.capabilities)

    def _specs(self, kind: type) -> list[tuple[str, Any]]:
        return [(name, spec) for name, spec in self.environment.actors.items()
                if isinstance(spec, kind)]

    def _enter(self, name: str, actor: Any) -> Any:
        self.stack.enter_context(actor)
        self.actors[name] = actor
        return actor

    def _start_receivers(self) -> None:
        """Viewers (C-MOVE destinations) and legacy archives: storage SCPs of their own.

        A :class:`Viewer` is an archive plus its client side, so it is a C-MOVE
        destination like any archive; it learns where to read at step time."""
        refuse_faults(self.environment, (ViewerSpec, ArchiveSpec, RisSpec))
        for name, spec in self._specs(ViewerSpec):
            config = _config(ViewerConfig, spec.settings, name=name, host=spec.host,
                             port=spec.port, ae_title=spec.ae_title)
            self._enter(name, Viewer(config, events=self.events))
        for name, spec in self._specs(ArchiveSpec):
            config = _config(ArchiveConfig, spec.settings, name=name, host=spec.host,
                             port=spec.port, ae_title=spec.ae_title)
            self._enter(name, Archive(config, events=self.events))

    def _destinations(self, listener_ports: dict[str, int]) -> dict[str, tuple[str, int]]:
        """AE title -> address of every DICOM listener the target may send to."""
        found: dict[str, tuple[str, int]] = {}
        for name, spec in self._specs(ModalitySpec):
            found[spec.ae_title] = (spec.host, listener_ports[name])
        for actor in self.actors.values():
            if isinstance(actor, Archive):
                found[actor.config.ae_title] = (actor.config.host, actor.port)
        return found

    def _start_target(self, listener_ports: dict[str, int]) -> None:
        kind = self.environment.target_kind
        destinations = self._destinations(listener_ports)
        if kind == "builtin":
            dicomweb = self.environment.supported("dicomweb")
            archive = Archive(ArchiveConfig(name="target", ae_title=BUILTIN_TARGET_AE,
                                            destinations=destinations,
                                            dicomweb_port=0 if dicomweb else None),
                              events=self.events)
            self.stack.enter_context(archive)
            self.builtin = archive
            self.target = TargetEndpoint(
                kind="builtin", dicom=AeAddress(ae_title=BUILTIN_TARGET_AE,
                                                host=archive.config.host, port=archive.port),
                dicomweb_url=archive.dicomweb_url)
        elif kind == "orthanc":
            # Orthanc answers C-FIND/C-GET only from registered AEs; the query AE is never
            # a C-MOVE destination, so its port is only a placeholder.
            known = {QUERY_AE: ("127.0.0.1", free_port()), **destinations}
            dicomweb = self.environment.supported("dicomweb")
            orthanc = OrthancProcess(OrthancSettings(ae_title=ORTHANC_AE, modalities=known,
                                                     dicomweb=dicomweb))
            self.stack.enter_context(orthanc)
            self.orthanc = orthanc
            self.target = TargetEndpoint(
                kind="orthanc", dicom=AeAddress(ae_title=ORTHANC_AE, host="127.0.0.1",
                                                port=orthanc.dicom_port),
                dicomweb_url=orthanc.dicomweb_url if dicomweb else None)
        else:
            self.target = external_target(self.environment, self.events)

    def _start_ris(self) -> None:
        name, spec = ris_spec(self.environment)
        assert self.target is not None and self.capabilities is not None
        forward = self.target.hl7 if self.capabilities.route("hl7").to == "target" else None
        config = _config(RisConfig, spec.settings, name=name, host=spec.host,
                         dicom_port=spec.port, hl7_port=spec.hl7_port, ae_title=spec.ae_title,
                         mwl=spec.mwl, mpps=spec.mpps, forward_hl7=forward)
        self.ris = self._enter(name, Ris(config, events=self.events))

    def _start_ehrs(self) -> None:
        assert self.ris is not None
        ris_host, ris_port = self.ris.hl7_address
        for name, spec in self._specs(EhrSpec) or [(DEFAULT_EHR, EhrSpec(kind="ehr"))]:
            config = _config(EhrConfig, spec.settings, name=name, host=spec.host, port=spec.port,
                             ris_host=ris_host, ris_port=ris_port,
                             receiving_application=self.ris.config.ae_title,
                             faults=scenario_faults(spec.faults, actor=name))
            self._enter(name, Ehr(config, events=self.events))

    def _peers(self) -> dict[str, AeAddress | None]:
        """Where every modality sends worklist, MPPS, images and commitment requests:
        the capability routes (:meth:`Capabilities.route`) decide, as for containers."""
        assert self.ris is not None and self.target is not None
        assert self.capabilities is not None
        ris_host, ris_port = self.ris.dicom_address
        ris = AeAddress(ae_title=self.ris.config.ae_title, host=ris_host, port=ris_port)
        return modality_peers(self.capabilities, target=self.target.dicom, ris=ris)

    def _start_modalities(self, listener_ports: dict[str, int]) -> None:
        peers = self._peers()
        started: list[Modality] = []
        # Stopped together: each listener's shutdown waits up to its poll interval
        # (0.5 s), which a site with six rooms would otherwise pay six times.
        self.stack.callback(_stop_together, started)
        for name, spec in self._specs(ModalitySpec):
            config = _config(ModalityConfig, spec.settings, name=name, ae_title=spec.ae_title,
                             modality=spec.modality, station_name=spec.station or spec.ae_title,
                             host=spec.host, port=listener_ports[name],
                             seed=self.environment.seed,
                             faults=scenario_faults(spec.faults, actor=name), **peers)
            scanner = Modality(config, world=self.world, events=self.events)
            scanner.start()
            started.append(scanner)
            self.actors[name] = scanner


def external_target(environment: Environment, events: EventBus) -> TargetEndpoint:
    """The external target of ``environment`` (:func:`target_capabilities` checks that
    it answers C-ECHO when it probes it)."""
    endpoints = environment.target.external  # type: ignore[union-attr]
    hl7 = None
    if endpoints.hl7:
        hl7_host, _, hl7_port = endpoints.hl7.rpartition(":")
        hl7 = (hl7_host, int(hl7_port))
    return TargetEndpoint(kind="external", dicom=endpoints.dicom_address, hl7=hl7,
                          dicomweb_url=endpoints.dicomweb)


def ris_spec(environment: Environment) -> tuple[str, RisSpec]:
    """The site's RIS (name and spec), the default one when none is declared."""
    specs = [(name, spec) for name, spec in environment.actors.items()
             if isinstance(spec, RisSpec)]
    if len(specs) > 1:
        raise ConfigError("a scenario has one RIS (the order filler)",
                          declared=",".join(n for n, _ in specs))
    return specs[0] if specs else (DEFAULT_RIS, RisSpec(kind="ris"))


def target_capabilities(environment: Environment, target: TargetEndpoint,
                        events: EventBus) -> Capabilities:
    """Probe the running ``target`` (one association, a QIDO-RS request, an MLLP
    connect) and apply ``supports:`` declarations; ConfigError when it does not answer
    C-ECHO (an environment error, exit 2)."""
    _, ris = ris_spec(environment)
    return probe_capabilities(target.dicom, dicomweb=target.dicomweb_url, hl7=target.hl7,
                              declarations=environment.declarations(), calling_ae=QUERY_AE,
                              events=events, ris_mpps=ris.mpps, ris_mwl=ris.mwl)


def modality_peers(capabilities: Capabilities, *, target: AeAddress,
                   ris: AeAddress) -> dict[str, AeAddress | None]:
    """A modality's worklist, MPPS, store and commitment peers from the routes: the
    one wiring of every runtime (in-process here, containers in
    :func:`simulators.runtime.topology.plan`)."""
    where = {"target": target, "ris": ris, None: None}
    return {"worklist": where[capabilities.route("mwl").to],
            "mpps": where[capabilities.route("mpps").to],
            "store": target,
            "commitment": where[capabilities.route("storage_commitment").to]}


def is_a(actor: Any, kind: type) -> bool:
    """``actor`` is a ``kind`` here or a proxy for one in a container (same operations)."""
    if isinstance(actor, kind):
        return True
    if not getattr(actor, "remote", False):
        return False
    remote_kind, wanted = getattr(actor, "kind", None), getattr(kind, "kind", None)
    # A viewer is an archive too (its storage SCP takes C-MOVEs), as Viewer(Archive) is here.
    return remote_kind == wanted or (wanted == "archive" and remote_kind == "viewer")


def _stop_together(actors: list[Any]) -> None:
    """Stop actors in parallel threads; one failing to stop does not keep the others up."""
    def stop(actor: Any) -> None:
        try:
            actor.stop()
        except Exception as exc:  # noqa: BLE001 - the others must still stop
            log.warning("%s did not stop cleanly: %s", getattr(actor, "name", actor), exc)

    threads = [threading.Thread(target=stop, args=(a,), daemon=True) for a in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def check_reachable(target: TargetEndpoint, events: EventBus, timeout: float = 5.0) -> None:
    """C-ECHO the target; ConfigError saying which and why when it does not answer."""
    client = FastClient(actor="pacsim", events=events, dimse_timeout=timeout)
    peer = target.dicom
    try:
        client.connect(peer.host, peer.port, QUERY_AE, peer.ae_title,
                       [("1.2.840.10008.1.1", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])],
                       timeout=timeout, tls=peer.tls)
        status = client.echo()
    except (PacsimError, OSError) as exc:
        raise ConfigError(f"{target.kind} target {peer} is unreachable: {exc}") from None
    finally:
        client.close()
    if status != 0:
        raise ConfigError(f"{target.kind} target {peer} answered C-ECHO with status "
                          f"0x{status:04X}")


__all__ = ["Site", "SiteStarter", "StartedSite", "start_locally", "refuse_faults",
           "QUERY_AE", "BUILTIN_TARGET_AE", "ORTHANC_AE", "PatientView", "TargetEndpoint",
           "TARGET_DEFAULT_SUPPORT", "patient_resolver", "check_reachable", "external_target",
           "is_a", "ris_spec", "target_capabilities", "modality_peers"]
