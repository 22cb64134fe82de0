"""Shared test helpers: free ports and external tools that must exist in CI.

A test that needs DCMTK, dicom3tools or Orthanc skips with a clear reason on a
developer machine without them, but *fails* when ``CI=true``: CI installs them, so a
skip there would hide a broken install step.
"""

from __future__ import annotations

from typing import Any, Sequence

import os
import shutil
import socket

import pytest
from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer

from simulators.dicom.ae import LISTEN_BACKLOG, NODELAY_HANDLERS
from simulators.errors import ConfigError


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(*names: str) -> dict[str, str]:
    """Return the paths of command-line tools, skipping (or failing in CI) if absent."""
    found: dict[str, str] = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            message = f"{name} is not installed (apt-get install dcmtk dicom3tools orthanc)"
            if in_ci():
                pytest.fail(f"CI=true but {message}")
            pytest.skip(message)
        found[name] = path
    return found


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
