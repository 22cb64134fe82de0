"""Shared test helpers: free ports and external tools that must exist in CI.

A test that needs DCMTK, dicom3tools, Orthanc, Prometheus or Docker skips with a clear
reason on a developer machine without them, but *fails* when ``CI=true``: CI installs
them, so a skip there would hide a broken install step.

Each tool belongs to a lane, a pytest marker of the same name (``TOOL_LANES``), so
``pytest -m "not (dcmtk or orthanc or dciodvfy or prometheus or docker or chromium)"`` runs exactly
the tests that need none of them. A test that calls :func:`require_tool` carries the
marker itself (``@pytest.mark.dcmtk``); a fixture that calls it is declared with
:func:`needs`, and tests/conftest.py marks every test using that fixture.
tests/unit/test_lanes.py fails when either is forgotten.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import pytest
from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer

from simulators.dicom.ae import LISTEN_BACKLOG, NODELAY_HANDLERS
from simulators.errors import ConfigError
from simulators.peers.dcmtk import find_dcmtk_tool

from simulators.events import EventBus, Exchange

#: The lanes (pytest markers) of tests that need an external tool, see pyproject.toml.
LANES = ("dcmtk", "dciodvfy", "orthanc", "prometheus", "docker", "chromium")

#: Every command-line tool a test may require, and its lane.
TOOL_LANES = {
    **dict.fromkeys(("echoscu", "storescu", "storescp", "findscu", "movescu", "getscu", "dcmqrscp",
                     "wlmscpfs", "dump2dcm", "dcmdump", "dcmconv"), "dcmtk"),
    "dciodvfy": "dciodvfy",
    "Orthanc": "orthanc",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "docker-compose": "docker",
    "chromium": "chromium",
}

#: What to install for each lane (the skip reason names it).
_INSTALL = {
    "dcmtk": "apt-get install dcmtk",
    "dciodvfy": "apt-get install dicom3tools",
    "orthanc": "apt-get install orthanc orthanc-dicomweb",
    "prometheus": "apt-get install prometheus",
    "docker": "apt-get install docker.io docker-compose",
    "chromium": "apt-get install chromium",
}

#: Attribute :func:`needs` sets on a fixture function; tests/conftest.py reads it.
LANES_ATTRIBUTE = "pacsim_lanes"

F = TypeVar("F", bound=Callable[..., object])


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def lane_of(tool: str) -> str:
    """The lane (marker) of a tool; a tool without one is a mistake in the test suite."""
    try:
        return TOOL_LANES[tool]
    except KeyError:
        raise ValueError(f"{tool!r} has no lane: add it to TOOL_LANES in tests/helpers.py "
                         f"so the tests that need it can be deselected") from None


def require_tool(*names: str) -> dict[str, str]:
    """Return the paths of command-line tools, skipping (or failing in CI) if absent.

    DCMTK tools are resolved by absolute path and checked by ``--version``
    (:func:`~simulators.peers.dcmtk.find_dcmtk_tool`): in the venv pynetdicom's
    ``storescu``/``findscu``/... shadow DCMTK's, and a test of "DCMTK as the peer"
    must not quietly run pynetdicom's app.
    """
    found: dict[str, str] = {}
    for name in names:
        lane = lane_of(name)
        path = find_dcmtk_tool(name) if lane == "dcmtk" else shutil.which(name)
        if path is None:
            message = f"{name} is not installed ({_INSTALL[lane]})"
            if in_ci():
                pytest.fail(f"CI=true but {message}")
            pytest.skip(message)
        found[name] = path
    return found


def needs(*tools: str) -> Callable[[F], F]:
    """Declare the tools a fixture runs (``"docker"`` for a Docker engine).

    Put it under ``@pytest.fixture``: tests/conftest.py then marks every test that uses
    the fixture, directly or through another fixture, with the tools' lanes. The
    fixture still calls :func:`require_tool` (or :func:`require_docker`) for the skip.
    """
    lanes = frozenset("docker" if tool == "docker" else lane_of(tool) for tool in tools)

    def declare(function: F) -> F:
        setattr(function, LANES_ATTRIBUTE, lanes | getattr(function, LANES_ATTRIBUTE, frozenset()))
        return function

    return declare


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (never hard-code ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



def require_docker(*images: str) -> None:
    """Skip (fail when ``CI=true``) unless a Docker engine answers and ``images`` exist.

    CI installs docker.io, starts dockerd and builds the images first (.ci/run), so a
    skip there would hide a broken step; locally the reason says what to run.
    """
    from simulators.errors import ConfigError
    from simulators.runtime.engine import docker_client

    def unavailable(message: str) -> None:
        if in_ci():
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)

    try:
        client = docker_client()
    except ConfigError as exc:
        unavailable(f"{exc} (apt-get install docker.io; dockerd &)")
        return
    try:
        missing = [image for image in images if not client.images.list(name=image)]
    finally:
        client.close()
    if missing:
        unavailable(f"image(s) {', '.join(missing)} not built (pacsim images build --local-base)")


def start_server(ae: AE, host: str, port: int,
                 handlers: Sequence[tuple[Any, ...]] = ()) -> ThreadedAssociationServer:
    """Start pynetdicom as an independent reference peer, with TCP_NODELAY; ``port`` 0
    picks a free port. The bound port is ``server.server_address[1]``.

    It lives with the tests: pacsim's own listeners all run on
    ``simulators.dicom.fast.FastServer`` (one acceptor stack to harden and give TLS),
    and ``tests/unit/test_one_acceptor.py`` fails if ``simulators/`` starts another.
    """
    try:
        server = ae.start_server((host, port), block=False,
                                 evt_handlers=[*NODELAY_HANDLERS, *handlers])
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                          ae_title=ae.ae_title) from exc
    # socketserver listens with a backlog of 5: 200 modalities connecting at once then
    # wait for SYN retransmits (seconds) before the AE even sees them. Linux lets a
    # listening socket raise its backlog by calling listen() again.
    server.socket.listen(LISTEN_BACKLOG)
    return server


@dataclass
class RecordedEvents:
    """A test's own event bus and every event emitted on it, in emission order.

    Why a bus per test: the process-wide ``simulators.events.bus`` also carries the
    events of servers other tests left running or still answering, so a test reading
    it would have to guess which are its own (by wall-clock time, which a busy
    machine defeats). Pass ``bus`` to every actor and server the test starts.
    """

    bus: EventBus = field(default_factory=EventBus)
    events: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bus.subscribe(self.events.append)

    def kinds(self) -> list[str]:
        return [event.kind for event in list(self.events)]

    def wait_for(self, condition: Callable[[list[Exchange]], bool],
                 timeout: float = 10.0) -> list[Exchange]:
        """The events once ``condition(events)`` holds; servers emit an exchange after
        answering, so the caller may see the answer before the event. ``timeout`` only
        bounds a hang: the test fails then, naming what it saw."""
        deadline = time.monotonic() + timeout
        while True:
            seen = list(self.events)
            if condition(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"events never met the condition; got "
                                     f"{[(e.kind, e.status) for e in seen]}")
            time.sleep(0.01)


def eventually(check: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy (returned); AssertionError
    naming ``what`` after ``timeout`` seconds. A lower bound on waiting, never a window."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll ``condition`` until true or ``timeout``; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()
