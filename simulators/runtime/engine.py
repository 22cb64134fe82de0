"""The Docker engine connection, image names and labels shared by every runtime piece.

Why labels: nothing can pull testcontainers' Ryuk reaper here (and some sites forbid
it), so pacsim cleans up after itself. Every container and network pacsim creates
carries ``org.pacsim.run=<id>``; removing "everything with this label" is then exact,
works after a crash or Ctrl-C from another process, and never touches anyone else's
containers.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

from simulators.errors import ConfigError

#: Label on everything pacsim creates; its value is the run id.
RUN_LABEL = "org.pacsim.run"
#: Which actor (service name) a container runs; ``status``/``logs`` look it up.
ACTOR_LABEL = "org.pacsim.actor"
#: The actor kind (ris, ehr, modality, archive, orthanc).
KIND_LABEL = "org.pacsim.kind"
#: Who started the run (user@host): `pacsim down` alone removes only your last run.
OWNER_LABEL = "org.pacsim.owner"
#: Set by docker compose on what it creates; `pacsim down` leaves those to compose.
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"

DEFAULT_PACSIM_IMAGE = "pacsim/pacsim:latest"
DEFAULT_ORTHANC_IMAGE = "pacsim/orthanc:latest"


def pacsim_image() -> str:
    """The actor image; ``PACSIM_IMAGE`` overrides (a registry copy, a pinned tag)."""
    return os.environ.get("PACSIM_IMAGE") or DEFAULT_PACSIM_IMAGE


def orthanc_image() -> str:
    """The Orthanc target image; ``PACSIM_ORTHANC_IMAGE`` overrides, e.g. with the
    public ``orthancteam/orthanc`` (it reads the same ``/etc/orthanc/*.json``)."""
    return os.environ.get("PACSIM_ORTHANC_IMAGE") or DEFAULT_ORTHANC_IMAGE


def new_run_id() -> str:
    """A short id that names one environment's containers and network."""
    return secrets.token_hex(4)


def docker_client() -> Any:
    """A docker SDK client for the local engine; ConfigError (exit 2) saying why not."""
    try:
        import docker  # the optional [docker] extra: only `pacsim up/images/...` need it
    except ImportError as exc:
        raise ConfigError("the docker SDK is not installed (pip install 'pacsim[docker]')") from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
        raise ConfigError(f"no Docker engine is reachable: {exc}",
                          docker_host=os.environ.get("DOCKER_HOST")) from None
    return client


def engine_available() -> bool:
    """True when a Docker engine answers (tests use this to skip or fail loudly)."""
    try:
        docker_client().close()
    except ConfigError:
        return False
    return True


def owner() -> str:
    """``user@host`` of this process: the value of :data:`OWNER_LABEL` on its runs."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's uid): still a value
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass
class DownPlan:
    """What ``pacsim down`` will remove, and what it leaves alone and why."""

    runs: list[str] = field(default_factory=list)
    #: compose project name -> number of its containers (never removed: compose owns them)
    compose: dict[str, int] = field(default_factory=dict)
    #: every run on the engine (newest first), to name them when nothing was chosen
    others: list[str] = field(default_factory=list)


def plan_down(client: Any, *, run_id: str | None = None, every: bool = False,
              me: str | None = None) -> DownPlan:
    """Choose the runs ``pacsim down`` removes: ``run_id``; or ``every`` run; or the
    last run this user (``me``, default :func:`owner`) started. Containers a docker
    compose project made are never chosen: ``docker compose down`` is their owner."""
    me = me or owner()
    plan = DownPlan()
    newest: dict[str, float] = {}
    mine: set[str] = set()
    for container in client.containers.list(all=True, filters={"label": RUN_LABEL},
                                            ignore_removed=True):
        labels = container.labels or {}
        project = labels.get(COMPOSE_PROJECT_LABEL)
        if project is not None:
            plan.compose[project] = plan.compose.get(project, 0) + 1
            continue
        run = labels.get(RUN_LABEL, "")
        created = str(container.attrs.get("Created", ""))
        newest[run] = max(newest.get(run, 0.0), _timestamp(created))
        if labels.get(OWNER_LABEL) == me:
            mine.add(run)
    ordered = sorted(newest, key=lambda r: newest[r], reverse=True)
    plan.others = ordered
    if run_id is not None:
        plan.runs = [run_id] if run_id in newest else []
    elif every:
        plan.runs = ordered
    else:
        plan.runs = [r for r in ordered if r in mine][:1]
    return plan


def _timestamp(created: str) -> float:
    """Docker's ``Created`` (RFC 3339 with nanoseconds) as seconds; 0 if unreadable."""
    try:
        return dt.datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0


def remove_by_label(client: Any, run_id: str | None = None) -> tuple[int, int]:
    """Remove pacsim's containers and networks (of one run, or of every run).

    Returns (containers, networks) removed. Safe to call twice and after a crash.
    """
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    # ignore_removed: a container being removed (by an earlier pass, or a Ctrl-C'd
    # create) is still listed for a moment, and its details are already 404.
    containers = client.containers.list(all=True, filters={"label": selector},
                                        ignore_removed=True)
    for container in containers:
        try:
            container.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
    networks = client.networks.list(filters={"label": selector})
    for network in networks:
        try:
            network.remove()
        except Exception:  # noqa: BLE001
            pass
    return len(containers), len(networks)


__all__ = ["RUN_LABEL", "ACTOR_LABEL", "KIND_LABEL", "DEFAULT_PACSIM_IMAGE",
           "DEFAULT_ORTHANC_IMAGE", "pacsim_image", "orthanc_image", "new_run_id",
           "docker_client", "engine_available", "remove_by_label", "OWNER_LABEL",
           "COMPOSE_PROJECT_LABEL", "owner", "DownPlan", "plan_down"]
