"""Steps on the target under test: query it, retrieve from it, seed it with priors.

``target.find`` is a real C-FIND at patient, study, series or image level; it observes
``count``, ``matches`` (friendly keys), ``patient`` (demographics of the first match:
``name``, ``id``, ``birth_date``, ``sex``), ``instances`` and ``series``. With
``within:`` it polls until the target shows what is expected (ingest can lag).
``target.retrieve`` moves studies to a viewer/archive actor (C-MOVE) or fetches them
itself (C-GET) and observes ``received``. ``target.seed_priors`` stores older studies
of a patient in the target beforehand, as a migrated archive would hold them.
``by:`` (optional) names the actor whose AE title calls; default ``PACSIM_QR``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from simulators.actors.archive import Archive
from simulators.errors import ScenarioError
from simulators.scenario.context import StepContext, StepOutcome
from simulators.site.site import QUERY_AE, Site
from simulators.scenario.models import BaseExpect, StepBase
from simulators.scenario.registry import step
from simulators.dicom.qrscu import LEVELS, QrClient
from simulators.scenario.steps._support import (
    Images, describe_dataset, resolve_patient, site, status_word, translate_match,
)
from simulators.scenario.steps.worklist import Count, ListExpect, judge_list
from simulators.world.context import StudyContext
from simulators.world.images import build_study

Level = Literal["patient", "study", "series", "image"]
#: Where a level's instance and series counts come from.
_COUNTS = {"study": ("NumberOfStudyRelatedInstances", "NumberOfStudyRelatedSeries"),
           "series": ("NumberOfSeriesRelatedInstances", None)}


def qr_client(ctx: StepContext, here: Site, by: str | None) -> QrClient:
    """A client calling as the ``by:`` actor's AE title (or the site's query AE)."""
    calling = QUERY_AE
    actor = by
    if by is not None:
        performer = here.actor(by)
        calling = getattr(getattr(performer, "config", None), "ae_title", None) or QUERY_AE
    return QrClient(here.require_target().dicom, calling, ctx.events, actor or "pacsim-qr")


def _int(value: Any) -> int:
    try:
        return int(str(value).strip() or 0)
    except ValueError:
        return 0


def _summary(level: str, matches: list[Any]) -> dict[str, Any]:
    described = [describe_dataset(ds) for ds in matches]
    observed: dict[str, Any] = {"count": len(described), "matches": described}
    if described and "PatientID" in matches[0]:  # patient keys exist at patient/study level
        first = matches[0]
        observed["patient"] = {"name": str(first.get("PatientName", "")),
                               "id": str(first.get("PatientID", "")),
                               "birth_date": str(first.get("PatientBirthDate", "")),
                               "sex": str(first.get("PatientSex", ""))}
    instances_key, series_key = _COUNTS.get(level, (None, None))
    if instances_key:
        observed["instances"] = sum(_int(ds.get(instances_key)) for ds in matches)
    elif level == "image":
        observed["instances"] = len(matches)
    if series_key:
        observed["series"] = sum(_int(ds.get(series_key)) for ds in matches)
    elif level == "series":
        observed["series"] = len(matches)
    observed["study_uids"] = list(dict.fromkeys(str(ds.get("StudyInstanceUID", ""))
                                                for ds in matches if "StudyInstanceUID" in ds))
    return observed


class FindExpect(ListExpect):
    patient: dict[str, Any] | None = Field(
        None, description="demographics of the first match: {name, id, birth_date, sex}")
    instances: Count | None = Field(None, description="images in the matches")
    series: Count | None = Field(None, description="series in the matches")


@step("target.find")
class TargetFindStep(StepBase):
    """C-FIND on the target (RAD-14 style query) at the given level."""

    requires = ("query",)
    level: Level = "study"
    match: dict[str, Any] = Field(default_factory=dict,
                                  description="matching keys: accession, patient_id, study_uid...")
    expect: FindExpect = Field(default_factory=FindExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        here = site(ctx)
        status, matches = qr_client(ctx, here, self.by).find(
            LEVELS[self.level], translate_match(ctx.resolve(self.match)))
        observed = {"status": status_word(status), **_summary(self.level, matches)}
        return StepOutcome(observed=observed,
                           message=f"{observed['count']} {self.level} match(es), "
                                   f"status {observed['status']}",
                           expectations=judge_list(ctx, self.expect, observed,
                                                   observed["matches"]))


class RetrieveExpect(BaseExpect):
    status: str | None = None
    received: Count | None = Field(None, description="instances the receiver got")
    completed: Count | None = None
    failed: Count | None = None
    studies: Count | None = None


@step("target.retrieve")
class TargetRetrieveStep(StepBase):
    """Retrieve the studies that ``match`` selects: C-MOVE to ``to:`` or C-GET."""

    method: Literal["move", "get"] = "move"
    match: dict[str, Any] = Field(min_length=1, description="selects studies: study_uid, "
                                                            "accession, patient_id...")
    to: str | None = Field(None, description="C-MOVE destination: a viewer or archive actor")
    expect: RetrieveExpect = Field(default_factory=RetrieveExpect)

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("query", self.method)  # C-FIND selects the studies, then C-MOVE or C-GET

    def run(self, ctx: StepContext) -> StepOutcome:
        here = site(ctx)
        client = qr_client(ctx, here, self.by)
        status, studies = client.find("STUDY", translate_match(ctx.resolve(self.match)))
        uids = [str(ds.StudyInstanceUID) for ds in studies if "StudyInstanceUID" in ds]
        if status != 0 or not uids:
            return StepOutcome(observed={"studies": 0, "received": 0,
                                         "status": status_word(status)},
                               message=f"no study to retrieve (C-FIND {status_word(status)})")
        if self.method == "move":
            observed = self._move(here, client, uids)
        else:
            images = [ds for uid in uids
                      for ds in client.find("IMAGE", {"StudyInstanceUID": uid})[1]]
            classes = list(dict.fromkeys(str(ds.SOPClassUID) for ds in images
                                         if "SOPClassUID" in ds))
            fetched = client.get_studies(uids, classes)
            observed = {**fetched.summary(), "received": fetched.received}
        observed["studies"] = len(uids)
        return StepOutcome(observed=observed,
                           message=f"{self.method}: {observed['received']} instance(s) received "
                                   f"from {len(uids)} stud(ies), status {observed['status']}")

    def _move(self, here: Site, client: QrClient, uids: list[str]) -> dict[str, Any]:
        if self.to is None:
            raise ScenarioError("a C-MOVE needs 'to:' (the viewer or archive actor that "
                                "receives)", field="to")
        receiver: Archive = here.actor(self.to, Archive)
        observed = client.move_studies(uids, receiver.config.ae_title).summary()
        observed["received"] = sum(_int(found.get("NumberOfStudyRelatedInstances"))
                                   for uid in uids
                                   for found in receiver.find_studies(StudyInstanceUID=uid))
        return observed


class SeedExpect(BaseExpect):
    stored: Count | None = None
    failed: Count | None = None
    studies: Count | None = None


@step("target.seed_priors")
class SeedPriorsStep(StepBase):
    """Store older studies of a patient in the target, one per year back (priors)."""

    patient: str = Field(description="the patient: $patientN or a name")
    modality: str = Field("CT", pattern=r"^[A-Z]{2,4}$")
    procedure: str | None = Field(None, description="catalogue code or description")
    studies: int = Field(1, ge=1, le=20, description="how many priors")
    images: Images = Field(default_factory=Images)
    expect: SeedExpect = Field(default_factory=SeedExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        here = site(ctx)
        view = resolve_patient(ctx, self.patient)
        procedure = None
        if self.procedure:
            procedure = here.world.find_procedure(self.modality, code=self.procedure,
                                                  meaning=self.procedure)
            if procedure is None:
                raise ScenarioError(f"no {self.modality} procedure {self.procedure!r}",
                                    field="procedure")
        now = dt.datetime.now().replace(microsecond=0, second=0)
        datasets, study_uids, accessions = [], [], []
        for years in range(1, self.studies + 1):
            start = now - dt.timedelta(days=365 * years)
            order = here.world.order(view.patient, self.modality, station_ae="PRIOR",
                                     station_name="PRIOR", index=here.next_order_index(),
                                     start=start, procedure=procedure)
            context = StudyContext.from_order(order, here.world, performed_start=start)
            datasets += build_study(context, series=self.images.series,
                                    per_series=self.images.per_series)
            study_uids.append(order.study_uid)
            accessions.append(order.accession)
        statuses = qr_client(ctx, here, self.by).store(datasets)
        failed = sum(1 for status in statuses if status != 0)
        return StepOutcome(observed={"stored": len(statuses) - failed, "failed": failed,
                                     "studies": len(study_uids), "study_uids": study_uids,
                                     "accessions": accessions},
                           message=f"{len(study_uids)} prior stud(ies), "
                                   f"{len(statuses) - failed} image(s) stored")


__all__ = ["TargetFindStep", "TargetRetrieveStep", "SeedPriorsStep"]
