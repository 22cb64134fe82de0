"""Scenarios: YAML files that declare an environment and the steps of a test.

Load with :func:`load_scenario` (errors read ``file:line: field: message``), run with
:func:`run_scenario`, export the format with :func:`json_schema`. Step types register
themselves with :func:`step` (see :mod:`simulators.scenario.registry`).
"""

from simulators.scenario.context import StepContext, StepOutcome
from simulators.scenario.library import ScenarioSummary, list_scenarios
from simulators.scenario.models import BaseExpect, Environment, Scenario, StepBase
from simulators.scenario.registry import StepRegistry, default_registry, json_schema, step
from simulators.scenario.results import ExpectationResult, RunResult, StepResult
from simulators.scenario.runner import run_scenario
from simulators.scenario.validate import check_scenario, load_scenario

__all__ = [
    "load_scenario", "check_scenario", "run_scenario", "json_schema", "list_scenarios",
    "ScenarioSummary", "Scenario", "Environment", "StepBase", "BaseExpect", "StepContext",
    "StepOutcome", "StepRegistry", "default_registry", "step", "RunResult", "StepResult",
    "ExpectationResult",
]
