"""``legacy.seed``: fill an archive actor with years of dirty history before a migration.

Why a step and not a fixture: a migration rehearsal starts from a legacy PACS whose
problems are known exactly, and the scenario should say how big and how dirty in
its own YAML (``studies: 500, years: 5, dirt: typical``). The step seeds the named
``archive`` actor's own store (it must be empty), writes ``manifest.json`` next to
its index, and observes the counts so later steps (``migrate.validate``) can compare::

    - do: legacy.seed
      actor: legacy
      studies: 200
      years: 5
      dirt: typical
      seed: 7
      expect: {studies: 200}
"""

from __future__ import annotations

from pydantic import Field

from simulators.actors.archive import Archive
from simulators.errors import ConfigError, ScenarioError
from simulators.legacy.dirt import PROFILES
from simulators.legacy.seed import seed_archive
from simulators.scenario.context import StepContext, StepOutcome
from simulators.scenario.models import BaseExpect, StepBase
from simulators.scenario.registry import step
from simulators.scenario.steps._support import site
from simulators.scenario.steps.worklist import Count

#: A scenario seeds in-process, next to running actors: keep it to test sizes.
MAX_SCENARIO_STUDIES = 20_000


class LegacySeedExpect(BaseExpect):
    studies: Count | None = None
    instances: Count | None = None
    defects: Count | None = None


@step("legacy.seed")
class LegacySeedStep(StepBase):
    """Seed the archive actor ``actor`` with a legacy history and its ground truth."""

    actor: str = Field(description="name of an archive actor of this environment")
    studies: int = Field(100, ge=1, le=MAX_SCENARIO_STUDIES)
    years: int = Field(5, ge=1, le=50)
    dirt: str = Field("typical", description=f"dirt profile: {', '.join(PROFILES)}")
    seed: int = Field(1, ge=0)
    expect: LegacySeedExpect = Field(default_factory=LegacySeedExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        if self.dirt not in PROFILES:
            raise ScenarioError(f"unknown dirt profile {self.dirt!r}; known: "
                                f"{', '.join(PROFILES)}", field="dirt")
        archive = site(ctx).actor(self.actor, Archive)
        store = archive.store
        try:
            summary = seed_archive(store.root, studies=self.studies, years=self.years,
                                   dirt=self.dirt, seed=self.seed, workers=1, store=store)
        except ConfigError as exc:
            raise ScenarioError(exc.message, field="actor", **exc.context) from exc
        defects = sum(summary.defects.values())
        return StepOutcome(
            observed={"studies": summary.studies, "series": summary.series,
                      "instances": summary.instances, "patients": summary.patients,
                      "defects": defects, "defect_counts": summary.defects,
                      "manifest": str(summary.path / "manifest.json")},
            message=f"{summary.studies} studies, {summary.instances} instances, {defects} "
                    f"defects seeded into {self.actor} in {summary.seconds:.1f}s")


__all__ = ["LegacySeedStep"]
