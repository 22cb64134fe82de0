"""A scenario's environment as the runner sees it: one site under :data:`SITE_KEY`.

The site itself (actors, target, starters) is :mod:`simulators.site`; this module
only hands it to the runner and gives steps the way back to it (:func:`site_of`).
Runtimes: ``local`` (default) starts the actors in this process; ``docker`` starts
each actor in its own container (:func:`simulators.runtime.sites.open_site`), so
steps run unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulators.errors import ScenarioError
from simulators.events import EventBus
from simulators.runtime.sites import RUNTIMES, open_site, starter_for
from simulators.scenario.context import StepContext
from simulators.scenario.models import Environment, Scenario
from simulators.scenario.results import RunResult
from simulators.scenario.runner import DEFAULT_STEP_TIMEOUT, run_scenario
from simulators.site.site import Site, patient_resolver

#: The key of the site in the runner's actor mapping (not a valid actor name on purpose).
SITE_KEY = "@site"


def build_site(environment: Environment, events: EventBus,
               runtime: str = "local") -> dict[str, Any]:
    """The runner's ``actors_factory``: one :class:`Site` under :data:`SITE_KEY`."""
    return {SITE_KEY: open_site(environment, events, runtime)}


def site_of(ctx: StepContext) -> Site:
    """The running site of a step; ScenarioError when the run was started without one."""
    site = ctx.actors.get(SITE_KEY)
    if not isinstance(site, Site):
        raise ScenarioError("this step needs an environment: run the scenario with "
                            "simulators.scenario.environment.run_in_environment")
    return site


def run_in_environment(scenario: Scenario, *, events: EventBus | None = None,
                       step_timeout: float = DEFAULT_STEP_TIMEOUT,
                       keep_going: bool = False, runtime: str = "local",
                       report_dir: Path | None = None) -> RunResult:
    """Run ``scenario`` against its environment (what ``pacsim run`` does); ``runtime``
    is ``local`` (actors in this process) or ``docker`` (one container each).
    ``report_dir`` is the run's output folder (steps' artefacts go under it).

    The result records the target's address and capabilities for the report header
    (a run against Orthanc must not read like one against the built-in archive)."""
    starter_for(runtime)  # an unknown runtime is refused before anything starts
    opened: list[Site] = []

    def factory(environment: Environment, bus: EventBus) -> dict[str, Any]:
        actors = build_site(environment, bus, runtime=runtime)
        opened.append(actors[SITE_KEY])
        return actors

    result = run_scenario(scenario, actors_factory=factory, events=events,
                          resolver=patient_resolver(scenario.environment),
                          step_timeout=step_timeout, keep_going=keep_going,
                          report_dir=report_dir)
    if opened:
        _record_target(result, opened[0])
    return result


def _record_target(result: RunResult, site: Site) -> None:
    """Copy what the site learned of its target into the result (header fields)."""
    target = site.target
    if target is not None:
        result.target_address = str(target.dicom)
        result.target_kind = target.kind
    capabilities = site.capabilities
    if capabilities is not None:
        result.capabilities = capabilities.as_dict()


__all__ = ["SITE_KEY", "RUNTIMES", "build_site", "site_of", "run_in_environment"]
