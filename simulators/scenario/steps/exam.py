"""Exam steps: a modality performs a scheduled procedure, whole or part by part.

``modality.perform`` runs IHE SWF end to end for one worklist entry: MPPS IN PROGRESS
(RAD-6), C-STORE (RAD-8), storage commitment (RAD-10), MPPS COMPLETED or
DISCONTINUED (RAD-7). MPPS goes where the site routed it (the target when it takes
MPPS, else the RIS), so it is sent and checked with Orthanc too. A part nobody in
the site serves (commitment on a target without it) is not sent, and its
expectations are reported "not supported by target", naming the service the target
lacks and how that was learned, instead of failing. The one-part steps
(``mpps.start``, ``store.study``, ``commitment.request``,
``mpps.complete``, ``mpps.discontinue``) share the exam through ``exam: $acc`` (the
accession) or ``exam: $exam`` (saved from ``mpps.start``). ``modality.unscheduled``
is an emergency exam without an order.

Observations: ``mpps`` (list of status words: ``success`` or ``0xC310``), ``store``
(``stored``, ``failed``), ``commitment`` (``committed``, ``failed``, ``reported``),
``instances``, ``study_uid``, ``accession``, ``mpps_uid``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from simulators.actors.modality import DISCONTINUED_REASONS, Modality
from simulators.errors import ProtocolError, ScenarioError
from simulators.scenario.context import StepContext, StepOutcome
from simulators.scenario.models import BaseExpect, StepBase
from simulators.scenario.registry import step
from simulators.scenario.steps import _exams as wf
from simulators.scenario.steps import faults as verdicts
from simulators.scenario.steps._support import Images, resolve_patient, site
from simulators.site.site import PatientView
from simulators.world.context import StudyContext

Outcome = Literal["completed", "discontinued"]
Reason = Literal[tuple(DISCONTINUED_REASONS)]  # type: ignore[valid-type]


class ExamExpect(BaseExpect):
    mpps: list[str] | Literal["conformant"] | None = Field(
        None, description="N-CREATE and N-SET statuses, e.g. [success, success]; or "
                          "conformant: the fault catalogue judges the modality's faults")
    store: dict[str, Any] | None = Field(None, description="{stored: N, failed: 0}")
    commitment: dict[str, Any] | None = Field(None, description="{committed: N, failed: 0}")
    instances: int | None = Field(None, description="images sent")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:  # ``expect: conformant``
        return verdicts.bare_conformant("mpps", value)


class _ModalityStep(StepBase):
    def scanner(self, ctx: StepContext) -> Modality:
        return site(ctx).actor(self.by, Modality)


def _judge_exam(ctx: StepContext, step: StepBase, observed: dict[str, Any],
                skipped: dict[str, str], watch: verdicts.FaultWatch | None = None
                ) -> tuple[list[Any], list[str]]:
    """Check the written expectations, leaving out parts the target does not take."""
    written = ctx.resolve(step.expected())
    notes = []
    for key, reason in skipped.items():
        if key in written:
            written.pop(key)
            notes.append(f"{key}: not supported by target ({reason}), not checked")
    results, verdict_notes = verdicts.exam_expectations(written, observed, watch)
    return results, notes + verdict_notes


def _perform(ctx: StepContext, step: StepBase, scanner: Modality, begin: Any,
             images: Images, outcome: str, reason: str) -> StepOutcome:
    """The whole exam after ``begin(send_mpps)`` started it; shared by scheduled and
    unscheduled exams."""
    send_mpps = wf.mpps_possible(ctx, scanner)
    skipped = {} if send_mpps else {"mpps": wf.why_not(ctx, "mpps")}
    watch = verdicts.FaultWatch(scanner)
    observed: dict[str, Any] = {}
    try:
        exam, created = begin(send_mpps)
    except ProtocolError as exc:
        observed["mpps"] = [wf.refused_status(exc)]
        results, notes = _judge_exam(ctx, step, observed, skipped, watch)
        return StepOutcome(observed=observed, message=f"exam not started: {exc}",
                           expectations=results, notes=notes)
    mpps = [created]
    observed.update(study_uid=exam.context.study_uid, accession=exam.context.accession,
                    mpps_uid=exam.mpps_uid, patient_id=exam.context.patient_id, exam=exam)
    if outcome == "completed":
        observed["store"] = wf.store(scanner, exam, images.series, images.per_series)
        observed["instances"] = len(exam.images)
        if wf.commitment_possible(ctx, scanner):
            observed["commitment"] = wf.commit(scanner, exam)
        else:
            skipped["commitment"] = wf.why_not(ctx, "storage_commitment")
    if send_mpps:
        mpps.append(wf.finish(scanner, exam, outcome, reason))
    observed["mpps"] = mpps
    results, notes = _judge_exam(ctx, step, observed, skipped, watch)
    stored = observed.get("store", {}).get("stored", 0)
    message = f"{outcome}: {stored} image(s) stored, MPPS {' -> '.join(mpps)}"
    return StepOutcome(observed=observed, message=message, expectations=results, notes=notes)


@step("modality.perform")
class PerformStep(_ModalityStep):
    """The modality in ``by:`` performs the worklist entry of ``accession`` end to end."""

    accession: str = Field(description="the order's accession, e.g. $acc")
    images: Images = Field(default_factory=Images)
    outcome: Outcome = "completed"
    reason: Reason = Field("110514", description="discontinuation reason (DCM CID 9300)")
    expect: ExamExpect = Field(default_factory=ExamExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        here, scanner = site(ctx), self.scanner(ctx)
        accession = str(ctx.resolve(self.accession))
        return _perform(ctx, self, scanner,
                        lambda send: wf.begin_exam(here, scanner, accession, send_mpps=send),
                        self.images, self.outcome, self.reason)


@step("modality.unscheduled")
class UnscheduledStep(_ModalityStep):
    """An emergency exam without an order: no accession, a new study, MPPS and store."""

    patient: str | None = Field(None, description="a world patient; none = a new patient")
    procedure: str | None = Field(None, description="catalogue code or description")
    images: Images = Field(default_factory=Images)
    expect: ExamExpect = Field(default_factory=ExamExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        here, scanner = site(ctx), self.scanner(ctx)
        index = here.next_order_index()
        view = (resolve_patient(ctx, self.patient) if self.patient
                else PatientView(900_000 + index, here.world.patient(900_000 + index)))
        procedure = None
        if self.procedure:
            procedure = here.world.find_procedure(scanner.config.modality, code=self.procedure,
                                                  meaning=self.procedure)
            if procedure is None:
                raise ScenarioError(f"no {scanner.config.modality} procedure "
                                    f"{self.procedure!r}", field="procedure")
        context = StudyContext.unscheduled(view.patient, here.world, scanner.config.modality,
                                           station_name=scanner.config.station_name,
                                           index=index, procedure=procedure)
        outcome = _perform(ctx, self, scanner,
                           lambda send: wf.begin_unscheduled(here, scanner, context,
                                                             send_mpps=send),
                           self.images, "completed", "110514")
        outcome.observed["patient"] = view
        return outcome


class StatusExpect(BaseExpect):
    status: str | None = Field(None, description="DIMSE status: success or 0x....; or "
                                                 "conformant (judged by the fault catalogue)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:  # ``expect: conformant``
        return verdicts.bare_conformant("status", value)


@step("mpps.start")
class MppsStartStep(_ModalityStep):
    """MPPS N-CREATE IN PROGRESS for the worklist entry of ``accession`` (RAD-6)."""

    requires = ("mpps",)
    accession: str = Field(description="the order's accession, e.g. $acc")
    expect: StatusExpect = Field(default_factory=StatusExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        scanner = self.scanner(ctx)
        accession = str(ctx.resolve(self.accession))
        watch = verdicts.FaultWatch(scanner)
        try:
            exam, word = wf.begin_exam(site(ctx), scanner, accession, send_mpps=True)
        except ProtocolError as exc:
            refused = wf.refused_status(exc)
            return verdicts.with_status_verdict(
                ctx, self, watch, StepOutcome(observed={"status": refused}, message=str(exc)),
                create=refused)
        return verdicts.with_status_verdict(
            ctx, self, watch, StepOutcome(observed={"status": word, "exam": exam,
                                                    "mpps_uid": exam.mpps_uid,
                                                    "study_uid": exam.context.study_uid},
                                          message=f"MPPS {exam.mpps_uid} IN PROGRESS: {word}"),
            create=word, exam=exam)


class _ExamPartStep(_ModalityStep):
    exam: str = Field(description="$acc (the accession) or $exam saved from mpps.start")

    def the_exam(self, ctx: StepContext, *, create: bool = False) -> Any:
        here, scanner = site(ctx), self.scanner(ctx)
        exam = wf.find_exam(ctx, here, scanner, self.exam)
        if exam is None and create:
            accession = str(ctx.resolve(self.exam))
            exam, _ = wf.begin_exam(here, scanner, accession, send_mpps=False)
            ctx.note(f"no MPPS was started for {accession}: exam taken from the worklist")
        if exam is None:
            raise ScenarioError(f"{scanner.name} has not started an exam for "
                                f"{ctx.resolve(self.exam)} (run mpps.start first)", field="exam")
        return exam


class StoreExpect(BaseExpect):
    stored: int | None = None
    failed: int | None = None
    instances: int | None = None


@step("store.study")
class StoreStudyStep(_ExamPartStep):
    """C-STORE the exam's images to the target (RAD-8)."""

    images: Images = Field(default_factory=Images)
    expect: StoreExpect = Field(default_factory=StoreExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        exam = self.the_exam(ctx, create=True)
        result = wf.store(self.scanner(ctx), exam, self.images.series, self.images.per_series)
        return StepOutcome(observed={**result, "instances": len(exam.images),
                                     "study_uid": exam.context.study_uid},
                           message=f"{result['stored']} stored, {result['failed']} failed")


class CommitmentExpect(BaseExpect):
    committed: int | None = None
    failed: int | None = None
    reported: bool | None = None
    action: str | None = None


@step("commitment.request")
class CommitmentStep(_ExamPartStep):
    """Storage commitment for the exam's images; waits for the report (RAD-10)."""

    requires = ("storage_commitment",)
    expect: CommitmentExpect = Field(default_factory=CommitmentExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        scanner = self.scanner(ctx)
        if scanner.config.commitment is None:
            raise ScenarioError(f"{scanner.name} has no storage commitment peer")
        result = wf.commit(scanner, self.the_exam(ctx))
        return StepOutcome(observed=result, message=f"{result['committed']} committed, "
                                                    f"{result['failed']} not committed")


@step("mpps.complete")
class MppsCompleteStep(_ExamPartStep):
    """MPPS N-SET COMPLETED with the performed series (RAD-7)."""

    requires = ("mpps",)
    expect: StatusExpect = Field(default_factory=StatusExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        scanner, exam = self.scanner(ctx), self.the_exam(ctx)
        watch = verdicts.FaultWatch(scanner)
        word = wf.finish(scanner, exam, "completed", "")
        return verdicts.with_status_verdict(
            ctx, self, watch, StepOutcome(observed={"status": word},
                                          message=f"MPPS COMPLETED: {word}"),
            final=word, exam=exam)


@step("mpps.discontinue")
class MppsDiscontinueStep(_ExamPartStep):
    """MPPS N-SET DISCONTINUED with a reason code (RAD-7)."""

    requires = ("mpps",)
    reason: Reason = Field("110514", description="discontinuation reason (DCM CID 9300)")
    expect: StatusExpect = Field(default_factory=StatusExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        scanner, exam = self.scanner(ctx), self.the_exam(ctx)
        watch = verdicts.FaultWatch(scanner)
        word = wf.finish(scanner, exam, "discontinued", self.reason)
        return verdicts.with_status_verdict(
            ctx, self, watch, StepOutcome(observed={"status": word},
                                          message=f"MPPS DISCONTINUED: {word}"),
            final=word, exam=exam)


__all__ = ["PerformStep", "UnscheduledStep", "MppsStartStep", "StoreStudyStep",
           "CommitmentStep", "MppsCompleteStep", "MppsDiscontinueStep", "ExamExpect"]
