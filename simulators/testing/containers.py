"""testcontainers classes for pacsim's actors and the Orthanc target.

Written the way testcontainers-python writes its modules (``RedisContainer``): a
default image, ``with_*`` methods that configure before ``start()``, a wait strategy
that asks the protocol (C-ECHO, an MLLP round trip, HTTP) rather than a log line, and
accessors for the addresses a test connects to::

    with Network() as net, \\
         RisContainer().with_network(net).with_network_aliases("ris") as ris, \\
         ModalityContainer().with_worklist("PACSIM_RIS@ris:11112") \\
             .with_network(net) as ct:
        peer = ris.get_dicom_address()  # an AeAddress: peer.host, peer.port, peer.ae_title

Ports are published on 127.0.0.1 only. Every container carries ``org.pacsim.run``
(:data:`~simulators.runtime.engine.RUN_LABEL`), so the pytest plugin can remove
leftovers by that label at the end of a session. Whether testcontainers' own reaper
(Ryuk) runs is the user's choice, as with any testcontainers module: set
``TESTCONTAINERS_RYUK_DISABLED=true`` where its image cannot be pulled (pacsim's CI
does); these classes never change that process-wide setting themselves.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import yaml
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from simulators.dicom.address import AeAddress, parse_ae_address
from simulators.http.client import JsonClient
from simulators.runtime.engine import ACTOR_LABEL, KIND_LABEL, RUN_LABEL, orthanc_image, pacsim_image
from simulators.runtime.images import ORTHANC_DICOM_PORT, ORTHANC_HTTP_PORT, orthanc_modalities_config
from simulators.runtime.probes import dicom_alive, http_ok, mllp_alive
from simulators.runtime.topology import CONFIG_DIR, DICOM_PORT, HL7_PORT, ORTHANC_EXTRA_CONFIG

LOOPBACK = "127.0.0.1"
#: The run label value of containers made by these classes outside the pytest plugin.
DEFAULT_RUN = os.environ.get("PACSIM_RUN_ID", "testcontainers")


class DicomEchoWaitStrategy(WaitStrategy):
    """Ready when the container's DICOM port answers C-ECHO with success."""

    def __init__(self, port: int, ae_title: str) -> None:
        super().__init__()
        self.port, self.ae_title = port, ae_title
        self.with_startup_timeout(60).with_poll_interval(0.3)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        if not self._poll(lambda: dicom_alive(LOOPBACK, container.get_exposed_port(self.port),
                                              self.ae_title, timeout=3.0)):
            raise TimeoutError(f"{self.ae_title} did not answer C-ECHO on port {self.port} "
                               f"within {self._startup_timeout:.0f}s")


class MllpWaitStrategy(WaitStrategy):
    """Ready when the container's HL7 port answers an MLLP probe with any ACK."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.with_startup_timeout(60).with_poll_interval(0.3)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        if not self._poll(lambda: mllp_alive(LOOPBACK, container.get_exposed_port(self.port),
                                             timeout=3.0)):
            raise TimeoutError(f"no MLLP answer on port {self.port} within "
                               f"{self._startup_timeout:.0f}s")


class HttpOkWaitStrategy(WaitStrategy):
    """Ready when GET ``path`` on the published ``port`` answers 2xx. testcontainers'
    HttpWaitStrategy asks the host IP it guesses (a bridge gateway on some machines),
    where a port published on 127.0.0.1 only is not reachable."""

    def __init__(self, port: int, path: str = "/") -> None:
        super().__init__()
        self.port, self.path = port, path
        self.with_startup_timeout(60).with_poll_interval(0.3)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        if not self._poll(lambda: http_ok(f"http://{LOOPBACK}:{container.get_exposed_port(self.port)}"
                                          f"{self.path}", timeout=3.0)):
            raise TimeoutError(f"GET {self.path} on port {self.port} not 2xx within "
                               f"{self._startup_timeout:.0f}s")


class _AllOf(WaitStrategy):
    """Every strategy in turn (testcontainers' CompositeWaitStrategy, kept small)."""

    def __init__(self, *strategies: WaitStrategy) -> None:
        super().__init__()
        self.strategies = strategies

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        for strategy in self.strategies:
            strategy.wait_until_ready(container)


class PacsimContainer(DockerContainer):
    """One pacsim actor (``pacsim serve KIND``) with its settings file put in place."""

    kind: ClassVar[str] = ""
    ports_inside: ClassVar[tuple[int, ...]] = (DICOM_PORT,)

    def __init__(self, image: str | None = None, *, name: str | None = None,
                 run_id: str = DEFAULT_RUN, **kwargs: Any) -> None:
        super().__init__(image or pacsim_image(), **kwargs)
        self.actor_name = name or self.kind
        self.settings: dict[str, Any] = {"name": self.actor_name}
        self.run_id = run_id
        for port in self.ports_inside:
            self.ports[str(port)] = (LOOPBACK,)  # type: ignore[assignment] - docker SDK form
        self._kwargs.setdefault("labels", {}).update(
            {RUN_LABEL: run_id, ACTOR_LABEL: self.actor_name, KIND_LABEL: self.kind})

    def with_setting(self, key: str, value: Any) -> PacsimContainer:
        """Any field of the actor's config class (see ``pacsim serve KIND --config``)."""
        self.settings[key] = list(value) if isinstance(value, tuple) else value
        return self

    def with_ae_title(self, ae_title: str) -> PacsimContainer:
        return self.with_setting("ae_title", ae_title)

    @property
    def config_path(self) -> str:
        return f"{CONFIG_DIR}/{self.actor_name}.yaml"

    def _configure(self) -> None:
        text = yaml.safe_dump(self.settings, sort_keys=True)
        self.with_copy_into_container(text.encode("utf-8"), self.config_path)
        self.with_command(["serve", self.kind, "--config", self.config_path])

    def host_port(self, port: int) -> tuple[str, int]:
        return LOOPBACK, int(self.get_exposed_port(port))

    def get_dicom_address(self) -> AeAddress:
        """The peer to reach this actor's DICOM listener at from the test."""
        host, port = self.host_port(DICOM_PORT)
        return AeAddress(ae_title=str(self.settings["ae_title"]), host=host, port=port)


class LegacyPacsContainer(PacsimContainer):
    """The legacy PACS (pacsim's archive): store, query, move, get, commitment."""

    kind = "archive"

    def __init__(self, image: str | None = None, *, ae_title: str = "LEGACY_PACS",
                 **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self.with_ae_title(ae_title)
        self.waiting_for(DicomEchoWaitStrategy(DICOM_PORT, ae_title))

    def with_ae_title(self, ae_title: str) -> LegacyPacsContainer:
        super().with_ae_title(ae_title)
        self._wait_strategy = DicomEchoWaitStrategy(DICOM_PORT, ae_title)
        return self

    def with_destination(self, ae_title: str, host: str, port: int) -> LegacyPacsContainer:
        """A C-MOVE destination (on the containers' network, by name)."""
        self.settings.setdefault("destinations", {})[ae_title] = [host, port]
        return self


class RisContainer(PacsimContainer):
    """The RIS: HL7 orders in (MLLP), Modality Worklist and MPPS out."""

    kind = "ris"
    ports_inside = (DICOM_PORT, HL7_PORT)

    def __init__(self, image: str | None = None, *, ae_title: str = "PACSIM_RIS",
                 **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self.with_ae_title(ae_title)

    def with_ae_title(self, ae_title: str) -> RisContainer:
        super().with_ae_title(ae_title)
        self._wait_strategy = _AllOf(DicomEchoWaitStrategy(DICOM_PORT, ae_title),
                                     MllpWaitStrategy(HL7_PORT))
        return self

    def with_station(self, modality: str, station_ae: str, station_name: str) -> RisContainer:
        """Where orders for ``modality`` that name no station are scheduled."""
        self.settings.setdefault("stations", {})[modality] = [station_ae, station_name]
        return self

    def get_mllp_address(self) -> tuple[str, int]:
        return self.host_port(HL7_PORT)


class EhrContainer(PacsimContainer):
    """The EHR: sends ADT and orders to the RIS, listens for ORU results (MLLP)."""

    kind = "ehr"
    ports_inside = (HL7_PORT,)

    def __init__(self, image: str | None = None, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self.with_env("PACSIM_PORT", str(HL7_PORT))
        self.waiting_for(MllpWaitStrategy(HL7_PORT))

    def with_ris(self, host: str, port: int = HL7_PORT,
                 application: str = "PACSIM_RIS") -> EhrContainer:
        self.with_setting("ris_host", host).with_setting("ris_port", port)
        return self.with_setting("receiving_application", application)  # type: ignore[return-value]

    def get_mllp_address(self) -> tuple[str, int]:
        return self.host_port(HL7_PORT)


class ModalityContainer(PacsimContainer):
    """A scanner: worklist, MPPS, C-STORE, commitment; unattended with ``with_auto_interval``."""

    kind = "modality"

    def __init__(self, image: str | None = None, *, ae_title: str = "CT_ROOM1",
                 modality: str = "CT", station: str = "CT1", **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self.with_ae_title(ae_title)
        self.with_setting("modality", modality).with_setting("station_name", station)

    def with_ae_title(self, ae_title: str) -> ModalityContainer:
        super().with_ae_title(ae_title)
        self._wait_strategy = DicomEchoWaitStrategy(DICOM_PORT, ae_title)
        return self

    def _peer(self, role: str, peer: AeAddress | str) -> ModalityContainer:
        """``peer`` as the settings file spells it: ``AE@HOST:PORT`` (host on the
        containers' network, by name)."""
        address = parse_ae_address(peer, f"--{role}") if isinstance(peer, str) else peer
        return self.with_setting(role, str(address))  # type: ignore[return-value]

    def with_worklist(self, peer: AeAddress | str) -> ModalityContainer:
        return self._peer("worklist", peer)

    def with_mpps(self, peer: AeAddress | str) -> ModalityContainer:
        return self._peer("mpps", peer)

    def with_store(self, peer: AeAddress | str) -> ModalityContainer:
        return self._peer("store", peer)

    def with_commitment(self, peer: AeAddress | str) -> ModalityContainer:
        return self._peer("commitment", peer)

    def with_auto_interval(self, seconds: float) -> ModalityContainer:
        """Poll the worklist every ``seconds`` and perform each new item (a busy room)."""
        return self.with_setting("auto_interval", seconds)  # type: ignore[return-value]


class OrthancContainer(DockerContainer):
    """Orthanc as the target PACS (image from ``PACSIM_ORTHANC_IMAGE`` or pacsim's)."""

    def __init__(self, image: str | None = None, *, run_id: str = DEFAULT_RUN,
                 name: str = "orthanc", **kwargs: Any) -> None:
        super().__init__(image or orthanc_image(), **kwargs)
        self.ae_title = "ORTHANC"
        self.modalities: dict[str, tuple[str, int]] = {}
        for port in (ORTHANC_DICOM_PORT, ORTHANC_HTTP_PORT):
            self.ports[str(port)] = (LOOPBACK,)  # type: ignore[assignment]
        self._kwargs.setdefault("labels", {}).update(
            {RUN_LABEL: run_id, ACTOR_LABEL: name, KIND_LABEL: "orthanc"})
        self.waiting_for(HttpOkWaitStrategy(ORTHANC_HTTP_PORT, "/system"))

    def with_modality(self, ae_title: str, host: str, port: int) -> OrthancContainer:
        """A peer Orthanc may send to (C-MOVE destination), by name on the network."""
        self.modalities[ae_title] = (host, port)
        return self

    def _configure(self) -> None:
        if self.modalities:
            text = json.dumps(orthanc_modalities_config(self.modalities), indent=2)
            self.with_copy_into_container(text.encode("utf-8"),
                                          ORTHANC_EXTRA_CONFIG)

    def get_dicom_address(self) -> AeAddress:
        return AeAddress(ae_title=self.ae_title, host=LOOPBACK,
                         port=int(self.get_exposed_port(ORTHANC_DICOM_PORT)))

    def get_rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.get_exposed_port(ORTHANC_HTTP_PORT)}"

    def rest(self, path: str) -> Any:
        """GET a JSON resource of Orthanc's REST API (``/studies?expand``...)."""
        return JsonClient(self.get_rest_url(), timeout=10, name="Orthanc").get(path)


__all__ = ["PacsimContainer", "LegacyPacsContainer", "RisContainer", "EhrContainer",
           "ModalityContainer", "OrthancContainer", "DicomEchoWaitStrategy", "MllpWaitStrategy", "HttpOkWaitStrategy"]
