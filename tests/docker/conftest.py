"""Docker tests: a real engine, the real images, containers on networks the tests create.

Every container and network a test creates is labelled with ``org.pacsim.run``; the
session removes whatever a crashed test left with the ``dockertest-`` run ids.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from simulators.runtime.engine import DEFAULT_ORTHANC_IMAGE, DEFAULT_PACSIM_IMAGE
from tests.helpers import needs, require_docker

IMAGES = (DEFAULT_PACSIM_IMAGE, DEFAULT_ORTHANC_IMAGE)


@pytest.fixture(scope="session")
@needs("docker")
def docker() -> Iterator[object]:
    """A docker SDK client; the test skips (fails in CI) without engine or images."""
    require_docker(*IMAGES)
    from simulators.runtime.engine import RUN_LABEL, docker_client, remove_by_label

    client = docker_client()
    yield client
    for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        run = container.labels.get(RUN_LABEL, "")
        if run.startswith("dockertest-"):
            remove_by_label(client, run)
    client.close()
