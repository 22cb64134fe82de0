"""The Docker runtime: a scenario's environment as containers, on the docker SDK.

``pacsim up`` creates one private network and one container per service of the
:mod:`topology <simulators.runtime.topology>` plan, puts each settings file into its
container before it starts (no bind mounts, so a remote engine works too), and waits
until every container's HEALTHCHECK says healthy. Everything carries
``org.pacsim.run=<id>``; ``down`` removes by that label, and so does a failed or
interrupted ``up`` before it re-raises, so nothing is left behind.

``status``, ``logs`` and ``down`` find the containers by label as well: they work from
another shell or after the process that ran ``up`` has gone.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable

from simulators.errors import ConfigError
from simulators.runtime.engine import (
    ACTOR_LABEL, KIND_LABEL, OWNER_LABEL, RUN_LABEL, docker_client, new_run_id, owner,
    remove_by_label,
)
from simulators.runtime.topology import Service, Topology

#: Long enough for Orthanc and six Python actors to start on a busy 2-core machine.
HEALTHY_TIMEOUT = 120.0
LOCALHOST = "127.0.0.1"
#: Pauses between the extra removal passes after an interrupted start.
SETTLE_DELAYS = (0.5, 1.0, 1.5)

Progress = Callable[[str], None]


def _tar(files: dict[str, str]) -> bytes:
    """A tar archive of ``files`` (absolute paths) rooted at ``/``, readable by anyone."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(str(PurePosixPath(path).relative_to("/")))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One container as ``pacsim status`` shows it."""

    run_id: str
    actor: str
    kind: str
    status: str  # running, exited...
    health: str  # healthy, starting, unhealthy, none
    ports: dict[int, int]  # container port -> host port on 127.0.0.1

    def describe(self) -> str:
        ports = " ".join(f"{LOCALHOST}:{h}->{c}" for c, h in sorted(self.ports.items()))
        return f"{self.run_id}  {self.actor:<14} {self.kind:<9} {self.status:<8} " \
               f"{self.health:<10} {ports}"


def _state(container: Any) -> ContainerState:
    attrs = container.attrs
    labels = attrs["Config"].get("Labels") or {}
    health = (attrs["State"].get("Health") or {}).get("Status", "none")
    ports: dict[int, int] = {}
    for key, bindings in (attrs["NetworkSettings"].get("Ports") or {}).items():
        if bindings:
            ports[int(key.split("/")[0])] = int(bindings[0]["HostPort"])
    return ContainerState(labels.get(RUN_LABEL, "?"), labels.get(ACTOR_LABEL, container.name),
                          labels.get(KIND_LABEL, "?"), attrs["State"]["Status"], health, ports)


class DockerEnvironment:
    """The containers of one run. ``start()`` brings them up healthy; ``stop()`` removes them.

    Also a context manager, so tests and the runner always clean up.
    """

    def __init__(self, topology: Topology, *, run_id: str | None = None,
                 client: Any = None, progress: Progress = lambda _line: None) -> None:
        self.topology = topology
        self.run_id = run_id or new_run_id()
        self._client = client
        self.progress = progress
        self.network_name = f"pacsim-{self.run_id}"
        self.started_in: float | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def labels(self, service: Service | None = None) -> dict[str, str]:
        labels = {RUN_LABEL: self.run_id, OWNER_LABEL: owner()}
        if service is not None:
            labels.update({ACTOR_LABEL: service.name, KIND_LABEL: service.kind, **service.labels})
        return labels

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = HEALTHY_TIMEOUT) -> DockerEnvironment:
        began = time.monotonic()
        try:
            network = self.client.networks.create(self.network_name, driver="bridge",
                                                  labels=self.labels())
            for service in self.topology.services:
                self._create(service, network.name).start()
                self.progress(f"started {service.name} ({service.kind})")
            self.wait_healthy(timeout)
        except BaseException:  # Ctrl-C included: never leave half an environment behind
            try:
                self.stop(settle=True)
            except Exception as exc:  # noqa: BLE001 - the original error is the one to raise
                self.progress(f"cleanup of run {self.run_id} failed ({exc}); "
                              f"`pacsim down` removes what is left")
            raise
        self.started_in = time.monotonic() - began
        return self

    def _create(self, service: Service, network: str) -> Any:
        container = self.client.containers.create(
            service.image, command=service.command, name=f"pacsim-{self.run_id}-{service.name}",
            hostname=service.name, environment=service.environment, labels=self.labels(service),
            ports={f"{port}/tcp": (LOCALHOST, host or None) for port, host in service.ports.items()},
            network=network, detach=True,
            # The service name is its DNS name on the private network, as in compose.
            networking_config={network: self.client.api.create_endpoint_config(
                aliases=[service.name])})
        if service.files:
            container.put_archive("/", _tar(service.files))
        return container

    def containers(self) -> list[Any]:
        return self.client.containers.list(all=True, ignore_removed=True,
                                           filters={"label": f"{RUN_LABEL}={self.run_id}"})

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT) -> None:
        """Block until every container is healthy; ConfigError naming the laggards and
        the end of their logs when one exits, turns unhealthy or the time runs out."""
        deadline = time.monotonic() + timeout
        pending: list[str] = []
        while time.monotonic() < deadline:
            states = [(c, _state(c)) for c in self._reloaded()]
            for container, state in states:
                if state.status in {"exited", "dead"} or state.health == "unhealthy":
                    tail = container.logs(tail=15).decode(errors="replace")
                    raise ConfigError(f"{state.actor} is {state.health if state.status == 'running' else state.status}"
                                      f"; its log ends with:\n{tail}", run=self.run_id)
            pending = [s.actor for _, s in states
                       if s.health not in {"healthy", "none"} or s.status != "running"]
            if not pending:
                return
            time.sleep(0.5)
        raise ConfigError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}", run=self.run_id)

    def _reloaded(self) -> list[Any]:
        found = self.containers()
        for container in found:
            container.reload()
        return found

    def stop(self, *, settle: bool = False) -> None:
        """Remove the run's containers and network. ``settle`` (after an interrupted
        start): a create the Ctrl-C cut short on this side may still complete in the
        engine after the first removal, so look again a few times (about 3 s)."""
        removed, networks = remove_by_label(self.client, self.run_id)
        for delay in (SETTLE_DELAYS if settle else ()):
            time.sleep(delay)
            late, late_networks = remove_by_label(self.client, self.run_id)
            removed, networks = removed + late, networks + late_networks
        self.progress(f"removed {removed} container(s) and {networks} network(s) of run {self.run_id}")

    # ------------------------------------------------------------------ addresses
    def state(self, service: str) -> ContainerState:
        for container in self._reloaded():
            state = _state(container)
            if state.actor == service:
                return state
        raise ConfigError(f"no running service {service!r} in run {self.run_id}")

    def address(self, service: str, container_port: int) -> tuple[str, int]:
        """Where ``service``'s ``container_port`` is published on this machine."""
        ports = self.state(service).ports
        if container_port not in ports:
            raise ConfigError(f"{service} publishes no port {container_port}",
                              published=",".join(map(str, ports)))
        return LOCALHOST, ports[container_port]

    def __enter__(self) -> DockerEnvironment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- by label, any process
def list_states(client: Any, run_id: str | None = None) -> list[ContainerState]:
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    return sorted((_state(c) for c in client.containers.list(all=True, filters={"label": selector})),
                  key=lambda s: (s.run_id, s.actor))


def container_logs(client: Any, actor: str | None = None, *, run_id: str | None = None,
                   tail: int | str = "all") -> list[tuple[str, str]]:
    """(actor, log text) of pacsim's containers, optionally one actor or one run."""
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    found = []
    for container in client.containers.list(all=True, filters={"label": selector}):
        name = (container.labels or {}).get(ACTOR_LABEL, container.name)
        if actor is None or name == actor:
            found.append((name, container.logs(tail=tail).decode(errors="replace")))
    if actor is not None and not found:
        raise ConfigError(f"no pacsim container runs an actor named {actor!r}")
    return sorted(found)


def follow_logs(client: Any, write: Callable[[str, str], None], actor: str | None = None, *,
                run_id: str | None = None, tail: int | str = 10,
                stop: threading.Event | None = None) -> int:
    """Stream the logs of pacsim's containers (one actor, one run, or all) as they are
    written, ``write(actor, line)`` per line, until every stream ends or ``stop`` is
    set; one reader thread per container. Returns how many containers were followed."""
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    chosen = [c for c in client.containers.list(filters={"label": selector})
              if actor is None or (c.labels or {}).get(ACTOR_LABEL, c.name) == actor]
    if not chosen:
        raise ConfigError("no running pacsim container" + (f" runs an actor named {actor!r}"
                                                          if actor else "")
                          + (f" in run {run_id}" if run_id else ""))
    stop = stop or threading.Event()
    lock = threading.Lock()

    def pump(container: Any) -> None:
        name = (container.labels or {}).get(ACTOR_LABEL, container.name)
        pending = b""
        for chunk in container.logs(stream=True, follow=True, tail=tail):
            if stop.is_set():
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            with lock:
                for line in lines:
                    write(name, line.decode(errors="replace"))

    threads = [threading.Thread(target=pump, args=(c,), daemon=True,
                                name=f"pacsim-logs-{c.name}") for c in chosen]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and not stop.wait(0.2):
        pass
    return len(chosen)


__all__ = ["DockerEnvironment", "ContainerState", "list_states", "container_logs", "follow_logs",
           "HEALTHY_TIMEOUT"]
