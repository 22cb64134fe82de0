"""pytest plugin (``pytest11`` entry point ``pacsim``): a hospital environment per session.

Fixtures:

* ``pacsim_environment`` (session): the environment of ``pacsim_scenario`` (a scenario
  file; default: Orthanc target, RIS, EHR, one unattended CT) started in the chosen
  runtime, as a :class:`~simulators.testing.clients.PacsimEnvironment`;
* ``pacsim_world`` (session): the seeded synthetic world, the same patients as the actors';
* ``pacsim_orders`` (per test): an :class:`OrderDesk` placing HL7 orders on the RIS;
* ``pacsim_target`` (per test): a :class:`TargetProbe` querying the target (C-FIND).

Every setting is both an option and an ini key (as pytest-postgresql does):
``--pacsim-runtime``/``pacsim_runtime`` (docker | local), ``--pacsim-images``/
``pacsim_images`` (``pacsim=IMAGE,orthanc=IMAGE``), ``--pacsim-keep-on-failure``/
``pacsim_keep_on_failure`` (leave the containers for ``pacsim logs`` when a test
failed), ``--pacsim-scenario``/``pacsim_scenario``. Marker: ``pacsim`` (the test
uses the environment). Without a Docker engine the docker runtime skips its tests
with the reason, and fails them when ``CI=true``.

Imports of pacsim inside the fixtures are on purpose: pytest loads this plugin in every
session of every project that installs pacsim, whether or not it uses a fixture, so the
plugin itself imports nothing heavy (pydicom, pynetdicom, docker) until a fixture runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

RUNTIMES = ("docker", "local")
DEFAULT_ENVIRONMENT: dict[str, Any] = {
    "seed": 42,
    "actors": {
        "ris": {"kind": "ris", "ae_title": "PACSIM_RIS"},
        "ehr": {"kind": "ehr"},
        "ct1": {"kind": "modality", "ae_title": "CT_ROOM1", "modality": "CT", "station": "CT1",
                "settings": {"auto_interval": 1}},
    },
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pacsim", "pacsim simulated hospital environment")
    settings = (
        ("runtime", "where the actors run: docker (one container each) or local "
                    "(in this process)", "docker"),
        ("images", "images to use: pacsim=IMAGE,orthanc=IMAGE", ""),
        ("scenario", "scenario file whose environment the session starts "
                     "(default: Orthanc target, RIS, EHR, one unattended CT)", ""),
    )
    for name, help_text, default in settings:
        group.addoption(f"--pacsim-{name}", dest=f"pacsim_{name}", default=None, help=help_text)
        parser.addini(f"pacsim_{name}", help_text, default=default)
    group.addoption("--pacsim-keep-on-failure", dest="pacsim_keep_on_failure",
                    action="store_true", default=None,
                    help="keep the containers when a test failed (inspect with pacsim logs)")
    parser.addini("pacsim_keep_on_failure", "keep the containers when a test failed",
                  type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pacsim: the test uses the pacsim environment fixtures")


def setting(config: pytest.Config, name: str) -> Any:
    """The option when given on the command line, else the ini key."""
    value = config.getoption(f"pacsim_{name}")
    return config.getini(f"pacsim_{name}") if value is None else value


def _images(spec: str) -> dict[str, str]:
    images: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.replace("\n", ",").split(","))):
        key, sep, image = part.partition("=")
        if not sep or key not in {"pacsim", "orthanc"} or not image:
            raise pytest.UsageError(f"pacsim_images: expected pacsim=IMAGE or orthanc=IMAGE, "
                                    f"got {part!r}")
        images[key] = image
    return images


def _environment_model(config: pytest.Config, runtime: str) -> Any:
    from simulators.scenario import load_scenario  # lazy: see module docstring
    from simulators.scenario.models import Environment  # lazy: see module docstring

    scenario = setting(config, "scenario")
    if scenario:
        path = Path(scenario)
        if not path.is_absolute():
            path = Path(config.rootpath) / path
        return load_scenario(path).environment
    target = "orthanc" if runtime == "docker" else "builtin"
    return Environment.model_validate({**DEFAULT_ENVIRONMENT, "target": target})


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _docker(environment: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    from simulators.errors import ConfigError  # lazy: see module docstring
    from simulators.runtime.docker import DockerEnvironment  # lazy: see module docstring
    from simulators.runtime.engine import docker_client, new_run_id  # lazy: see module docstring
    from simulators.runtime.topology import DICOM_PORT, HL7_PORT, plan  # lazy: see module docstring
    from simulators.dicom.address import AeAddress  # lazy: see module docstring
    from simulators.testing.clients import PacsimEnvironment  # lazy: see module docstring

    try:
        client = docker_client()
    except ConfigError as exc:
        _unavailable(str(exc))
    topology = plan(environment)
    runtime = DockerEnvironment(topology, run_id=f"pytest-{new_run_id()}", client=client)
    runtime.start()
    try:
        ris = next(s for s in topology.services if s.kind == "ris")
        target = topology.target
        rest = None
        if topology.target_kind != "external":  # the published port on this machine
            published_host, published_port = runtime.address(target.host, target.port)
            if topology.target_kind == "orthanc":
                http = runtime.address(target.host, 8042)
                rest = f"http://{http[0]}:{http[1]}"
            target = AeAddress(ae_title=target.ae_title, host=published_host, port=published_port)
        stations = {s.name: (s.ae_title or "", _station(s), _modality(s))
                    for s in topology.services if s.kind == "modality"}
        ris_host, ris_port = runtime.address(ris.name, DICOM_PORT)
        yield PacsimEnvironment("docker", environment.seed,
                                AeAddress(ae_title=ris.ae_title or "", host=ris_host,
                                          port=ris_port),
                                runtime.address(ris.name, HL7_PORT), target, rest, stations,
                                run_id=runtime.run_id)
    finally:
        keep = setting(request.config, "keep_on_failure")
        if keep and request.session.testsfailed:
            print(f"\npacsim: a test failed; containers of run {runtime.run_id} kept. "
                  f"Inspect: pacsim status --run {runtime.run_id}; pacsim logs ACTOR; "
                  f"remove: pacsim down --run {runtime.run_id}")
        else:
            runtime.stop()
        client.close()


def _settings_of(service: Any) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(next(iter(service.files.values())))


def _station(service: Any) -> str:
    return str(_settings_of(service).get("station_name", service.ae_title))


def _modality(service: Any) -> str:
    return str(_settings_of(service).get("modality", "CT"))


def _local(environment: Any) -> Iterator[Any]:
    from simulators.actors.modality import Modality  # lazy: see module docstring
    from simulators.dicom.address import AeAddress  # lazy: see module docstring
    from simulators.events import EventBus  # lazy: see module docstring
    from simulators.site.site import Site  # lazy: see module docstring
    from simulators.testing.clients import LocalPerformers, PacsimEnvironment  # lazy: see module docstring

    with Site(environment, EventBus()) as site:
        modalities = [a for a in site.actors.values() if isinstance(a, Modality)]
        performers = LocalPerformers(modalities)
        try:
            ris = site.ris
            assert ris is not None and site.target is not None
            stations = {m.name: (m.config.ae_title, m.config.station_name, m.config.modality)
                        for m in modalities}
            rest = site.orthanc.rest_url if site.orthanc is not None else None
            ris_host, ris_port = ris.dicom_address
            yield PacsimEnvironment("local", environment.seed,
                                    AeAddress(ae_title=ris.config.ae_title, host=ris_host,
                                              port=ris_port),
                                    ris.hl7_address, site.target.dicom, rest, stations)
        finally:
            performers.stop()


@pytest.fixture(scope="session")
def pacsim_environment(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The running environment (session scope): addresses of the RIS, target, stations."""
    config = request.config
    runtime = str(setting(config, "runtime") or "docker")
    if runtime not in RUNTIMES:
        raise pytest.UsageError(f"pacsim_runtime must be one of {', '.join(RUNTIMES)}")
    images = _images(str(setting(config, "images") or ""))
    saved = {key: os.environ.get(key) for key in ("PACSIM_IMAGE", "PACSIM_ORTHANC_IMAGE")}
    if "pacsim" in images:
        os.environ["PACSIM_IMAGE"] = images["pacsim"]
    if "orthanc" in images:
        os.environ["PACSIM_ORTHANC_IMAGE"] = images["orthanc"]
    try:
        environment = _environment_model(config, runtime)
        if runtime == "docker":
            yield from _docker(environment, request)
        else:
            yield from _local(environment)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def pacsim_world(pacsim_environment: Any) -> Any:
    """The seeded world the environment's actors share (same patients, same UIDs)."""
    from simulators.world import World  # lazy: see module docstring

    return World(pacsim_environment.seed)


@pytest.fixture
def pacsim_orders(pacsim_environment: Any, pacsim_world: Any) -> Iterator[Any]:
    """Places HL7 orders on the environment's RIS (a fresh MLLP client per test)."""
    from simulators.testing.clients import OrderDesk  # lazy: see module docstring

    desk = OrderDesk(pacsim_environment, pacsim_world)
    try:
        yield desk
    finally:
        desk.close()


@pytest.fixture
def pacsim_target(pacsim_environment: Any) -> Any:
    """Queries the target under test (C-FIND) and waits for studies to arrive."""
    from simulators.testing.clients import TargetProbe  # lazy: see module docstring

    return TargetProbe(pacsim_environment)
