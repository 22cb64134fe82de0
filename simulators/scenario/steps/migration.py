"""``migrate.run`` and ``migrate.validate``: a migration rehearsal inside a scenario.

The legacy PACS is an ``archive`` actor of the scenario (usually seeded by
``legacy.seed``); the target is the scenario's target (built-in, Orthanc or
external). ``migrate.run`` moves and validates exactly as ``pacsim migrate`` does;
``migrate.validate`` only validates the target against the legacy (nothing moves),
e.g. after a migration run by the product under test. Both write
validation.json/.csv/.html into a fresh folder under ``report:`` (default
``reports/migration``, or ``$PACSIM_MIGRATION_REPORT_DIR``) and observe::

    signed_off, stopped, stop_reason, validated, mismatch, failed, pending,
    transfers, quality_findings, counts (per class), all_detected,
    false_mismatches, report, html

so ``expect: {signed_off: true}`` or ``expect: {stopped: sample}`` read naturally.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from simulators.actors.archive import Archive
from simulators.common.fields import Fraction
from simulators.errors import ConfigError, ScenarioError
from simulators.load.report import run_directory
from simulators.dicom.address import AeAddress
from simulators.migration.endpoints import Endpoints
from simulators.migration.runner import MigrationOptions, run_migration
from simulators.scenario.context import StepContext, StepOutcome
from simulators.site.site import QUERY_AE
from simulators.scenario.models import BaseExpect, StepBase
from simulators.scenario.registry import step
from simulators.scenario.steps._support import site
from simulators.scenario.steps.worklist import Count

REPORT_DIR_VARIABLE = "PACSIM_MIGRATION_REPORT_DIR"


class MigrateExpect(BaseExpect):
    signed_off: bool | None = None
    stopped: str | None = Field(None, description="sample or rollback")
    validated: Count | None = None
    mismatch: Count | None = Field(None, description="studies with transfer mismatches")
    failed: Count | None = None
    pending: Count | None = None
    transfers: Count | None = Field(None, description="C-MOVE / C-GET transfers made")
    quality_findings: Count | None = None
    all_detected: bool | None = Field(None, description="every manifest defect found")
    false_mismatches: Count | None = Field(None, description="findings on clean studies")
    counts: dict[str, Count] | None = Field(None, description="findings per class")


class _MigrationStep(StepBase):
    source: str = Field(description="the archive actor that plays the legacy PACS")
    strategy: Literal["full", "staged", "parallel"] = "full"
    since: str | None = Field(None, description="staged/parallel window, e.g. 2y")
    batch: int = Field(20, ge=1, le=10_000)
    workers: int = Field(1, ge=1, le=32)
    sample: int = Field(0, ge=0, le=10_000)
    rollback_threshold: Fraction = Field(0.005, description="e.g. 0.5% or 0.005")
    via: Literal["move", "get"] = "move"
    rules: str | None = Field(None, description="ingestion rules YAML (may carry morph:)")
    seed: int = 0
    report: str | None = Field(None, description="folder for the reports (a fresh sub-folder "
                                                 "per run)")
    expect: MigrateExpect = Field(default_factory=MigrateExpect)

    #: Set by the step type (migrate.validate), not by authors.
    validate_only: ClassVar[bool] = False

    def run(self, ctx: StepContext) -> StepOutcome:
        here = site(ctx)
        legacy: Archive = here.actor(self.source, Archive)
        target = here.require_target()
        target_peer = target.dicom
        # the legacy sends to the target's AE title (C-MOVE): make sure it knows it
        legacy.config.destinations[target_peer.ae_title] = (target_peer.host, target_peer.port)
        endpoints = Endpoints(
            source=AeAddress(ae_title=legacy.config.ae_title, host=legacy.config.host,
                             port=legacy.port),
            target=target_peer, target_kind=target.kind, source_dir=legacy.store.root,
            source_archive=legacy)
        report_dir = run_directory(self._base(ctx), f"{ctx.scenario.name}-{self.do}")
        capabilities = here.capabilities
        try:
            options = MigrationOptions(
                source=str(legacy.store.root), target=str(target_peer), strategy=self.strategy,
                since=self.since, batch=self.batch, workers=self.workers, sample=self.sample,
                rollback_threshold=self.rollback_threshold, report_dir=report_dir, via=self.via,
                rules=_rules_path(ctx, self.rules), seed=self.seed,
                calling_ae=QUERY_AE, validate_only=self.validate_only,
                capabilities=capabilities.as_dict() if capabilities else None)
            result = run_migration(options, endpoints=endpoints, events=ctx.events)
        except ConfigError as exc:
            raise ScenarioError(str(exc), field=str(exc.context.get("field", "source"))) from exc
        return _outcome(result.report, report_dir)

    def _base(self, ctx: StepContext) -> str | Path:
        """``$PACSIM_MIGRATION_REPORT_DIR``, the step's ``report:``, then the run's
        ``--report-dir`` (under ``migration/``: one folder per run holds every artefact),
        then ``reports/migration``."""
        explicit = os.environ.get(REPORT_DIR_VARIABLE) or self.report
        if explicit:
            return explicit
        if ctx.report_dir is not None:
            return ctx.report_dir / "migration"
        return "reports/migration"


def _rules_path(ctx: StepContext, rules: str | None) -> Path | None:
    """A relative rules path is read next to the scenario file that names it."""
    if not rules:
        return None
    path = Path(rules)
    source = ctx.scenario.source_file
    if not path.is_absolute() and source and not path.exists():
        path = Path(source).parent / path
    return path


def _outcome(report: dict[str, Any], report_dir: Path) -> StepOutcome:
    totals = report["totals"]
    manifest = report.get("manifest") or {}
    observed = {
        "signed_off": report["signed_off"], "stopped": report["stopped"],
        "stop_reason": report["stop_reason"],
        **{k: totals[k] for k in ("validated", "mismatch", "failed", "pending",
                                  "quality_findings")},
        "transfers": totals["move_requests"], "counts": report["counts"],
        "all_detected": manifest.get("all_detected"),
        "false_mismatches": manifest.get("false_mismatch_count"),
        "report": str(report_dir / "validation.json"),
        "html": str(report_dir / "validation.html"),
    }
    notes = [f"validation report: {observed['report']} and {observed['html']}"]
    if report["stop_reason"]:
        notes.append(f"stopped: {report['stop_reason']}")
    notes += [f"{cls}: {n}" for cls, n in report["counts"].items()]
    verdict = "signed off" if report["signed_off"] else "NOT signed off"
    return StepOutcome(observed=observed, notes=notes,
                       message=f"{totals['validated']} validated, {totals['mismatch']} with "
                               f"transfer mismatches, {totals['failed']} failed; {verdict}",
                       artefacts=[observed["html"], observed["report"],
                                  str(report_dir / "validation.csv")])


@step("migrate.run")
class MigrateRunStep(_MigrationStep):
    """Migrate the legacy archive actor into the target, validating every study."""


@step("migrate.validate")
class MigrateValidateStep(_MigrationStep):
    """Validate the target against the legacy archive actor; nothing is transferred."""

    validate_only: ClassVar[bool] = True


__all__ = ["MigrateRunStep", "MigrateValidateStep", "REPORT_DIR_VARIABLE"]
