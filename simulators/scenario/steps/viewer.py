"""Viewer steps: a physician opens a study, a radiologist looks for priors.

``viewer.open_study`` is the playbook's tablet case: the viewer in ``by:`` searches
the target (QIDO-RS for ``via: wado``, C-FIND otherwise) with ``match`` (friendly
keys, as in ``target.find``), opens the most recent matching study and loads every
image (WADO-RS, C-MOVE to itself, or C-GET). It observes ``instances``, ``bytes``,
``first_image_s``, ``total_s``, ``mb_per_s``, ``status``, ``study_uid``,
``accession`` and ``studies`` (how many matched); ``expect: {first_image_within: 2s,
within: 10s}`` bounds the two waits the physician feels.

``viewer.priors`` (parallel archive during a migration): the viewer C-FINDs a
patient's studies in every system of ``sources`` (``target`` or an archive actor,
the legacy PACS) and reports, per prior, which systems hold it: ``found_in``
(studies per source), ``only_in`` (held by that source alone), ``both`` (held by
all), ``count`` and ``priors`` (one row per study with ``found_in: [names]``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from simulators.actors.viewer import Viewer, ViewerSource
from simulators.dicom.address import AeAddress
from simulators.errors import PacsimError, ScenarioError
from simulators.scenario.context import StepContext, StepOutcome
from simulators.site.site import Site
from simulators.scenario.expectations import check, check_all
from simulators.common.fields import Duration
from simulators.scenario.models import BaseExpect, StepBase
from simulators.scenario.registry import step
from simulators.scenario.results import ExpectationResult
from simulators.scenario.steps._support import resolve_patient, site, translate_match
from simulators.scenario.steps.worklist import Count

#: The target transaction each load method needs (checked against ``supports``).
_NEEDS = {"wado": "dicomweb", "move": "move", "get": "get"}


def source_named(here: Site, name: str) -> ViewerSource:
    """``target`` -> the target under test; any other name -> that archive actor."""
    if name == "target":
        target = here.require_target()
        return ViewerSource(name="target", dicom=target.dicom, dicomweb_url=target.dicomweb_url)
    actor = here.actor(name)
    config = getattr(actor, "config", None)
    if config is None or not getattr(config, "ae_title", None):
        raise ScenarioError(f"source {name!r} is not a DICOM archive actor", field="sources")
    return ViewerSource(name=name, dicom=AeAddress(ae_title=config.ae_title, host=config.host,
                                                   port=int(actor.port)),
                        dicomweb_url=getattr(actor, "dicomweb_url", None))


def _newest(studies: list[dict[str, Any]]) -> dict[str, Any]:
    return max(studies, key=lambda s: (str(s.get("StudyDate", "")), str(s.get("StudyTime", ""))))


class OpenStudyExpect(BaseExpect):
    status: str | None = Field(None, description="success, or how the load failed")
    instances: Count | None = Field(None, description="images loaded")
    studies: Count | None = Field(None, description="studies the search matched")
    accession: str | None = Field(None, description="accession number of the opened study")
    study_uid: str | None = Field(None, description="Study Instance UID of the opened study")
    first_image_within: Duration | None = Field(
        None, description="the first image is on screen within this time")
    within: Duration | None = Field(None, description="the whole study is loaded within this")


@step("viewer.open_study")
class OpenStudyStep(StepBase):
    """The viewer in ``by:`` finds a study on the target and loads all of it."""

    via: Literal["wado", "move", "get"] = "wado"
    match: dict[str, Any] = Field(min_length=1, description="selects the study: patient_id, "
                                                            "accession, study_uid, study_date...")
    expect: OpenStudyExpect = Field(default_factory=OpenStudyExpect)

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return (_NEEDS[self.via],) if self.via == "wado" else ("query", _NEEDS[self.via])

    def run(self, ctx: StepContext) -> StepOutcome:
        here = site(ctx)
        viewer: Viewer = here.actor(self.by, Viewer)
        source = source_named(here, "target")
        if self.via == "wado" and not source.dicomweb_url:
            return StepOutcome(status="unsupported",
                               message="not supported by target: dicomweb (no DICOMweb URL)")
        match = translate_match(ctx.resolve(self.match))
        studies = viewer.search_studies(source, via="qido" if self.via == "wado" else "find",
                                        **match)
        if not studies:
            observed = {"studies": 0, "instances": 0, "status": "no study matched"}
            return StepOutcome(observed=observed, message="no study matched the search",
                               expectations=self._judge(ctx, observed))
        chosen = _newest(studies)
        timing = viewer.load_study(str(chosen["StudyInstanceUID"]), self.via, source)
        observed = {**timing.as_dict(), "studies": len(studies),
                    "accession": chosen.get("AccessionNumber", "")}
        first = "-" if timing.first_image_s is None else f"{timing.first_image_s * 1000:.0f} ms"
        return StepOutcome(observed=observed, expectations=self._judge(ctx, observed),
                           message=f"{self.via}: {timing.instances} image(s), first {first}, "
                                   f"all {timing.total_s * 1000:.0f} ms, "
                                   f"{timing.mb_per_s:.1f} MB/s ({timing.status})")

    def _judge(self, ctx: StepContext, observed: dict[str, Any]) -> list[ExpectationResult]:
        written = ctx.resolve(self.expected())
        results = []
        for key, seen_key in (("first_image_within", "first_image_s"),
                              ("within", "total_s")):
            if key in written:
                limit, seen = float(written.pop(key)), observed.get(seen_key)
                passed = seen is not None and seen <= limit
                results.append(ExpectationResult(
                    name=key, expected=f"<= {limit:g}s", seen=seen, passed=passed,
                    message="as expected" if passed else
                    f"{key}: expected at most {limit:g}s, saw "
                    f"{'nothing' if seen is None else f'{seen:.3f}s'}"))
        return check_all(written, observed) + results


class PriorsExpect(BaseExpect):
    count: Count | None = Field(None, description="distinct studies of the patient found")
    found_in: dict[str, Count] | None = Field(
        None, description="studies held by each source, e.g. {target: 1, legacy: 2}")
    only_in: dict[str, Count] | None = Field(None, description="studies held by that source "
                                                              "alone")
    both: Count | None = Field(None, description="studies every source holds")


@step("viewer.priors")
class PriorsStep(StepBase):
    """Find a patient's studies in the target and in other archives; say who holds each."""

    requires = ("query",)
    patient: str = Field(description="the patient: $patientN or a name")
    sources: list[str] = Field(default_factory=lambda: ["target"], min_length=1,
                               description="target and/or archive actor names (legacy PACS)")
    exclude: list[str] = Field(default_factory=list,
                               description="study UIDs or accessions that are not priors "
                                           "(the current study)")
    expect: PriorsExpect = Field(default_factory=PriorsExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        here = site(ctx)
        viewer: Viewer = here.actor(self.by, Viewer)
        patient = resolve_patient(ctx, self.patient)
        excluded = {str(v) for v in ctx.resolve(self.exclude)}
        rows: dict[str, dict[str, Any]] = {}
        errors: list[str] = []
        for name in dict.fromkeys(self.sources):
            try:
                found = viewer.search_studies(source_named(here, name), via="find",
                                              PatientID=patient.id)
            except PacsimError as exc:
                errors.append(f"{name}: {exc}")
                continue
            for study in found:
                uid = str(study.get("StudyInstanceUID", ""))
                if not uid or uid in excluded or study.get("AccessionNumber") in excluded:
                    continue
                row = rows.setdefault(uid, {"study_uid": uid,
                                            "accession": study.get("AccessionNumber", ""),
                                            "study_date": study.get("StudyDate", ""),
                                            "found_in": []})
                row["found_in"].append(name)
        names = list(dict.fromkeys(self.sources))
        priors = sorted(rows.values(), key=lambda r: r["study_date"], reverse=True)
        observed = {
            "count": len(priors), "priors": priors,
            "found_in": {n: sum(n in r["found_in"] for r in priors) for n in names},
            "only_in": {n: sum(r["found_in"] == [n] for r in priors) for n in names},
            "both": sum(len(r["found_in"]) == len(names) for r in priors),
        }
        notes = [f"{r['study_date']} {r['accession']}: {', '.join(r['found_in'])}"
                 for r in priors]
        expectations = check_all(ctx.resolve(self.expected()), observed)
        if errors:
            expectations.append(check("sources answered", [], errors))
        held = ", ".join(f"{n}: {c}" for n, c in observed["found_in"].items())
        return StepOutcome(observed=observed, notes=notes, expectations=expectations,
                           message=f"{len(priors)} prior(s) of {patient.id} ({held})")


__all__ = ["OpenStudyStep", "PriorsStep", "source_named"]
