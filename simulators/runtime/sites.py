"""Where a site's actors run: pick the starter for a runtime name.

Why here and not in :mod:`simulators.site`: the site layer knows how to start actors
in this process; starting them in containers needs Docker, which lives in this
(engine) layer. Callers above (scenarios, the sandbox, the pytest plugin) name the
runtime; this module hands the site the matching starter.
"""

from __future__ import annotations

from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.runtime.remote_site import start_in_containers
from simulators.site.models import Environment
from simulators.site.site import Site, SiteStarter, start_locally

#: Where a site's actors run: in this process, or one container each.
RUNTIMES = ("local", "docker")
_STARTERS: dict[str, SiteStarter] = {"local": start_locally, "docker": start_in_containers}


def starter_for(runtime: str) -> SiteStarter:
    """The starter of ``runtime``; ConfigError naming the runtimes otherwise."""
    try:
        return _STARTERS[runtime]
    except KeyError:
        raise ConfigError(f"unknown runtime {runtime!r}", runtimes=",".join(RUNTIMES)) from None


def open_site(environment: Environment, events: EventBus, runtime: str = "local") -> Site:
    """A (not yet started) site whose actors will run in ``runtime``."""
    return Site(environment, events, starter_for(runtime), runtime=runtime)


__all__ = ["RUNTIMES", "starter_for", "open_site"]
