"""Load testing at realistic peak: hundreds of virtual modalities on one event loop.

``LoadProfile`` is the ``load:`` section of a scenario; ``run_load`` (or
``LoadEngine``) runs it against a ``LoadTarget``; ``LoadStatistics`` computes
percentiles, errors and concurrency from the events alone; ``load_dict`` and
``write_load_reports`` give the JSON and HTML reports; ``check_thresholds`` the
verdicts. See ``simulators.scenario.steps.load`` for the scenario side.
"""

from simulators.load.engine import LoadEngine, LoadRun
from simulators.load.run import run_load
from simulators.load.profile import LoadProfile, Operation, Stage, Threshold
from simulators.load.report import load_dict, render_html, run_directory, write_load_reports
from simulators.load.shape import Member, Shape, fleet_members
from simulators.load.stats import LoadStatistics, percentile
from simulators.load.target import LoadTarget, check_target, is_loopback
from simulators.load.thresholds import ThresholdResult, check_thresholds

__all__ = [
    "LoadProfile", "Operation", "Stage", "Threshold", "LoadEngine", "LoadRun", "run_load",
    "LoadStatistics", "percentile", "Shape", "Member", "fleet_members",
    "LoadTarget", "check_target", "is_loopback", "load_dict", "write_load_reports",
    "render_html", "run_directory", "ThresholdResult", "check_thresholds",
]
