"""``do: load.run`` and the scenario's ``load:`` phase: a load profile against the site.

The runner turns a scenario's ``load:`` section into this step after the other steps
(see :func:`load_phase_step`), so a load scenario runs with ``pacsim run`` like any
other: its thresholds become the step's expectations and a failed threshold exits 1.

Traffic goes where the site's own modalities would send it: worklist and MPPS to the
RIS (MPPS to the target when the target takes it), images to the target, new orders
to the RIS over HL7. The engine runs on a private event bus: thousands of exchanges
feed the load statistics, not the step's event list; the step keeps the summary, and
the generator runs in worker processes (never on the in-process actors' GIL); the
full per-second figures go to ``load.json`` / ``load.html`` in the report
directory (``load.report.dir``, or ``$PACSIM_LOAD_REPORT_DIR``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from simulators.load.run import run_load
from simulators.load.profile import LoadProfile
from simulators.load.report import load_dict, run_directory, write_load_reports
from simulators.dicom.address import AeAddress
from simulators.load.target import LoadTarget
from simulators.scenario.context import StepContext, StepOutcome
from simulators.scenario.environment import site_of
from simulators.site.site import Site
from simulators.scenario.models import StepBase
from simulators.scenario.registry import step
from simulators.scenario.results import ExpectationResult
from simulators.scenario.steps._support import site_header

REPORT_DIR_VARIABLE = "PACSIM_LOAD_REPORT_DIR"
#: Time allowed beyond the stages: preparing orders, draining, writing reports.
SETUP_ALLOWANCE = 120.0


def site_load_target(site: Site) -> LoadTarget:
    """The peers a virtual modality of this site talks to (as the site's modalities do)."""
    target = site.require_target()
    ris = site.ris
    capabilities = site.capabilities
    assert capabilities is not None  # a started site has learned them
    hl7 = None
    ris_peer = None
    if ris is not None:
        host, port = ris.dicom_address
        ris_peer = AeAddress(ae_title=ris.config.ae_title, host=host, port=port)
        if ris.config.hl7:
            hl7 = ris.hl7_address
    where = {"target": target.dicom, "ris": ris_peer, None: None}
    return LoadTarget(worklist=where[capabilities.route("mwl").to],
                      mpps=where[capabilities.route("mpps").to], store=target.dicom, hl7=hl7)


@step("load.run")
class LoadStep(StepBase):
    """Run a load profile against the environment; thresholds decide pass or fail."""

    profile: LoadProfile = Field(description="the load profile (same keys as 'load:')")

    @classmethod
    def for_load_phase(cls, profile: LoadProfile) -> "LoadStep":
        """The step the runner runs for a scenario's ``load:`` section, with a time limit
        that covers the stages, the grace period and preparation."""
        limit = profile.total_duration + profile.grace + SETUP_ALLOWANCE
        return cls(profile=profile, name=f"load: {profile.name or 'load phase'}", timeout=limit)

    def run(self, ctx: StepContext) -> StepOutcome:
        site = site_of(ctx)
        profile = self.profile
        external = site.environment.target_kind == "external"
        live = sys.stderr if profile.report.live else None
        run = run_load(profile, site_load_target(site), world=site.world,
                       allow_external=external, live=live, should_stop=lambda: ctx.cancelled,
                       isolate=True)
        if ctx.interrupted:  # Ctrl-C/SIGTERM, not the step's own time limit
            run.stopped_early = "INTERRUPTED (SIGINT/SIGTERM): partial figures"
        report = load_dict(run, target=site.describe(), header=site_header(site))
        if ctx.interrupted:
            report["passed"] = False  # partial figures sign nothing off
        json_path, html_path = write_load_reports(
            report, run_directory(_base(ctx, profile), profile.name or ctx.scenario.name))
        notes = [f"load report: {json_path} and {html_path}"]
        notes += [_summary_line(name, figures) for name, figures in report["operations"].items()
                  if not name.startswith(("dicom.release",))]
        if run.stopped_early:
            notes.append(f"stopped early: {run.stopped_early}")
        expectations = [ExpectationResult(t["name"], t["expected"], t["seen"], t["passed"],
                                          t["message"]) for t in report["thresholds"]]
        return StepOutcome(observed={"operations": report["operations"],
                                     "stages": report["stages"], "report": str(json_path),
                                     "html": str(html_path)},
                           expectations=expectations, notes=notes,
                           artefacts=[str(html_path), str(json_path)])


def _base(ctx: StepContext, profile: LoadProfile) -> str | Path:
    """Where the load report goes: ``$PACSIM_LOAD_REPORT_DIR`` first, then the run's
    ``--report-dir`` (under ``load/``, so one folder holds every artefact of the run),
    then the profile's ``report.dir``."""
    explicit = os.environ.get(REPORT_DIR_VARIABLE)
    if explicit:
        return explicit
    if ctx.report_dir is not None:
        return ctx.report_dir / "load"
    return profile.report.dir


def _summary_line(name: str, figures: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        value = figures.get(key)
        return "-" if value is None else f"{value:.0f}ms"

    return (f"{name}: {figures['count']} done, {figures['errors']} errors, p50 {ms('p50_ms')}, "
            f"p95 {ms('p95_ms')}, p99 {ms('p99_ms')}, max {ms('max_ms')}")


def load_phase_step(profile: LoadProfile) -> LoadStep:
    """The step the runner runs for a scenario's ``load:`` section, with a time limit
    that covers the stages, the grace period and preparation."""
    return LoadStep.for_load_phase(profile)


__all__ = ["LoadStep", "load_phase_step", "site_load_target", "REPORT_DIR_VARIABLE"]
