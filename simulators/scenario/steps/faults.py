"""Fault steps: verdicts against the catalogue, catalogue probes, and worklist invariants.

Why these live together: they answer the playbook's one question about a bad sender,
"did the target answer as the standard requires, and was anything *else* damaged?".

* ``expect: {mpps: conformant}`` on ``modality.perform`` (``expect: {status:
  conformant}`` on ``mpps.*``, or just ``expect: conformant``): every fault the
  modality's profile fired during the step is judged against the catalogue's expected
  answer by :mod:`simulators.faults.verdicts` (the same judge as ``pacsim faults run``).
  Non-conformant fails the step with expected-vs-answered; implementation-defined and
  not-exercised pass with a note; a target without MPPS gets "not supported by target".
* ``faults.probe``: catalogue entries (ids or globs) run by the ``pacsim faults run``
  runner against the scenario's kind of target; ``expect: conformant``.
* ``faults.verdict``: every fault an EHR injected so far, judged on the ACKs it got.
* ``worklist.snapshot`` / ``worklist.unchanged``: every worklist item (MWL C-FIND) and
  every RIS order before and after, naming each item that changed and how.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field, model_validator

from simulators.actors.ehr import Ehr
from simulators.dicom.address import AeAddress
from simulators.errors import ScenarioError
from simulators.faults import invariants
from simulators.faults.runner import open_target, run_faults
from simulators.faults.target import Target
from simulators.faults.verdicts import (
    MppsAnswers, StepVerdict, judge_hl7, judge_mpps, judged_all_unsupported, probe_verdict,
)
from simulators.injection.catalogue import select
from simulators.injection.model import CONFORMANT
from simulators.scenario.context import StepContext, StepOutcome
from simulators.scenario.expectations import check_all
from simulators.scenario.models import BaseExpect, StepBase, StepDefaults
from simulators.scenario.registry import step
from simulators.scenario.results import ExpectationResult
from simulators.scenario.steps._support import site
from simulators.site.site import QUERY_AE, Site


# --------------------------------------------------------------- verdicts on exam steps
class FaultWatch:
    """Where an actor's fault log stood when a step began: the faults fired since then
    are the ones the step's verdict judges (each actor has its own log, so parallel
    modalities never see each other's faults)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        injector = getattr(actor, "faults", None)
        self._fired = injector.fired if injector is not None else []
        self.mark = len(self._fired)

    def fired(self) -> list[tuple[str, str, int]]:
        return list(self._fired[self.mark:])


def status_from_word(word: Any) -> int | None:
    """``success`` -> 0, ``0x0106`` -> 0x0106; ``unsupported``/``none``/missing -> None."""
    if word is None:
        return None
    if isinstance(word, int):
        return word
    text = str(word).strip().lower()
    if text == "success":
        return 0
    if text.startswith("0x"):
        try:
            return int(text[2:], 16)
        except ValueError:
            return None
    return None


def verdict_expectation(name: str, verdict: StepVerdict) -> ExpectationResult:
    """The verdict as one expectation: expected ``conformant``, seen the summary."""
    problems = verdict.problems()
    return ExpectationResult(name=name, expected=CONFORMANT, seen=verdict.summary(),
                             passed=verdict.passed,
                             message="; ".join(problems) if problems else "as expected")


def mpps_verdict(watch: FaultWatch, *, create: Any = None, final: Any = None,
                 exam: Any = None, name: str = "mpps") -> tuple[ExpectationResult, list[str]]:
    """Judge the faults fired since ``watch`` on this step's N-CREATE/N-SET answers."""
    extra = dict(getattr(exam, "fault_statuses", None) or [])
    answers = MppsAnswers(status_from_word(create), status_from_word(final), extra)
    verdict = judge_mpps(watch.fired(), answers)
    return verdict_expectation(name, verdict), verdict.notes()


def exam_expectations(written: dict[str, Any], observed: dict[str, Any],
                      watch: FaultWatch | None) -> tuple[list[ExpectationResult], list[str]]:
    """``modality.perform``'s checks: ``mpps: conformant`` judged by the catalogue, the
    other written keys by the generic rules."""
    if written.get("mpps") != CONFORMANT or watch is None:
        return check_all(written, observed), []
    rest = {key: value for key, value in written.items() if key != "mpps"}
    statuses = list(observed.get("mpps") or [])
    result, notes = mpps_verdict(watch, create=statuses[0] if statuses else None,
                                 final=statuses[1] if len(statuses) > 1 else None,
                                 exam=observed.get("exam"))
    return [result, *check_all(rest, observed)], notes


def with_status_verdict(ctx: StepContext, step_: StepBase, watch: FaultWatch,
                        outcome: StepOutcome, *, create: Any = None, final: Any = None,
                        exam: Any = None) -> StepOutcome:
    """For ``mpps.start/complete/discontinue``: ``status: conformant`` becomes the verdict."""
    written = ctx.resolve(step_.expected())
    if written.get("status") != CONFORMANT:
        return outcome
    written.pop("status")
    result, notes = mpps_verdict(watch, create=create, final=final, exam=exam, name="status")
    outcome.expectations = [result, *check_all(written, outcome.observed)]
    outcome.notes.extend(notes)
    return outcome


def bare_conformant(key: str, value: Any) -> Any:
    """``expect: conformant`` is shorthand for ``expect: {key: conformant}``."""
    return {key: CONFORMANT} if value == CONFORMANT else value


# ------------------------------------------------------------------------ faults.probe
class ProbeExpect(BaseExpect):
    verdict: Literal["conformant"] | None = Field(
        None, description="conformant: no probed fault may be answered non-conformantly")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return bare_conformant("verdict", value)


def target_spec(ctx: StepContext) -> tuple[str, tuple[str, int] | None]:
    """The scenario's target as ``pacsim faults run --target`` takes it (and its HL7)."""
    environment = ctx.environment
    kind = environment.target_kind
    if kind != "external":
        return kind, None
    endpoints = environment.target.external  # type: ignore[union-attr]
    hl7 = None
    if endpoints.hl7:
        host, _, port = endpoints.hl7.rpartition(":")
        hl7 = (host, int(port))
    return endpoints.dicom, hl7


@step("faults.probe")
class FaultProbeStep(StepBase):
    """Send catalogue faults at the target, exactly as ``pacsim faults run`` does.

    ``builtin`` and ``orthanc`` get a fresh instance of their own for the probes (so
    probes never consume the scenario's orders); an external target is probed where it
    is. Rows the target does not support are "not supported by target", never failures.
    """

    faults: Union[str, list[str]] = Field(
        description="fault ids or globs, e.g. mpps.* or [assoc.unknown-calling-ae, store.*]")
    expect: ProbeExpect = Field(default_factory=ProbeExpect)

    def run(self, ctx: StepContext) -> StepOutcome:

        wanted = self.faults if isinstance(self.faults, list) else [self.faults]
        chosen = select(",".join(str(ctx.resolve(w)) for w in wanted))
        spec, hl7 = target_spec(ctx)
        with open_target(spec, hl7=hl7, events=ctx.events) as target:
            outcomes = run_faults(target, chosen)
        verdict = probe_verdict(outcomes)
        rows = [outcome.as_dict() for outcome in outcomes]
        observed = {"verdict": verdict.verdict, "rows": rows, "summary": verdict.summary()}
        written = ctx.resolve(self.expected())
        expectations = check_all({k: v for k, v in written.items() if k != "verdict"}, observed)
        if written.get("verdict") == CONFORMANT:
            expectations.insert(0, verdict_expectation("verdict", verdict))
        status = "unsupported" if judged_all_unsupported(outcomes) else None
        return StepOutcome(observed=observed, expectations=expectations, notes=verdict.notes(),
                           status=status, message=f"{len(rows)} fault(s) against {spec}: "
                                                  f"{verdict.summary()}")


@step("faults.verdict")
class FaultVerdictStep(StepBase):
    """Judge every fault the EHR in ``by:`` injected so far against the catalogue, on the
    ACKs it got back (``expect: conformant``). Modalities are judged on their exam steps
    (``expect: {mpps: conformant}``), where the answers are known."""

    expect: ProbeExpect = Field(default_factory=ProbeExpect)

    def run(self, ctx: StepContext) -> StepOutcome:

        ehr = site(ctx).only(Ehr, self.by)
        verdict = judge_hl7(list(ehr.faults.fired), list(ehr.acks))
        observed = {"verdict": verdict.verdict, "summary": verdict.summary(),
                    "judged": len(verdict.outcomes)}
        written = ctx.resolve(self.expected())
        expectations = check_all({k: v for k, v in written.items() if k != "verdict"}, observed)
        if written.get("verdict") == CONFORMANT:
            expectations.insert(0, verdict_expectation("verdict", verdict))
        return StepOutcome(observed=observed, expectations=expectations, notes=verdict.notes(),
                           message=f"{ehr.name}: {verdict.summary()}")


# --------------------------------------------------------------------- invariants
def worklist_target(here: Site) -> Target:
    """The scenario's worklist (the RIS) as the invariants read it: MWL over the wire
    plus the RIS's order book."""
    ris = here.ris
    if ris is None or not ris.config.mwl:
        raise ScenarioError("worklist invariants need the scenario's RIS with its worklist on")
    host, port = ris.dicom_address
    return Target("scenario-ris", dicom=AeAddress(ae_title=ris.config.ae_title, host=host,
                                                  port=port),
                  calling_ae=QUERY_AE, ris=ris)


def take_snapshot(here: Site) -> invariants.Snapshot:
    snapshot = invariants.take(worklist_target(here))
    if not snapshot.complete:
        raise ScenarioError("the worklist query did not complete; no snapshot taken")
    return snapshot


@step("worklist.snapshot")
class WorklistSnapshotStep(StepBase):
    """Remember every worklist item and order now: ``save: {snapshot: $before}``."""

    def run(self, ctx: StepContext) -> StepOutcome:
        snapshot = take_snapshot(site(ctx))
        return StepOutcome(observed={"snapshot": snapshot, "items": len(snapshot.items),
                                     "orders": len(snapshot.orders)},
                           message=f"snapshot of {snapshot}")


ExceptEntry = Union[str, dict[str, Any]]


def allowed_keys(value: Any) -> set[str]:
    """``except:`` as item keys: ``$acc``, ``{accession: $acc}``, or a list of them."""
    items = value if isinstance(value, list) else [value]
    keys: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            # The loader copies ``defaults.step`` keys into every list of mappings inside
            # a step (it cannot tell them from nested steps): those are not ours to judge.
            item = {k: v for k, v in item.items() if k not in StepDefaults.model_fields}
            unknown = set(item) - {"accession", "key"}
            if unknown or not item:
                raise ScenarioError("except: entries are {accession: ...} (or a bare "
                                    "accession)", field="except")
            keys.update(str(v) for v in item.values())
        elif item is not None and str(item):
            keys.add(str(item))
    return keys


@step("worklist.unchanged")
class WorklistUnchangedStep(StepBase):
    """No worklist item or order changed since the snapshot, except the ones named."""

    since: str = Field(description="the snapshot saved by worklist.snapshot, e.g. $before")
    except_: Union[ExceptEntry, list[ExceptEntry]] = Field(
        default_factory=list, alias="except",
        description="items allowed to change: {accession: $acc} or a list of them")

    def run(self, ctx: StepContext) -> StepOutcome:
        before = ctx.resolve(self.since)
        if not isinstance(before, invariants.Snapshot):
            raise ScenarioError(f"{self.since} is not a snapshot (save one with "
                                "worklist.snapshot)", field="since")
        allowed = allowed_keys(ctx.resolve(self.except_))
        after = take_snapshot(site(ctx))
        changed = invariants.changes(before, after, allowed)
        unchanged = ExpectationResult(
            name="unchanged", expected="no other worklist item or order changed",
            seen=f"{len(changed)} changed" if changed else "none changed",
            passed=not changed, message="; ".join(changed) if changed else "as expected")
        compared = (set(before.items) | set(after.items) | set(before.orders)
                    | set(after.orders)) - allowed
        return StepOutcome(observed={"changed": changed, "count": len(changed)},
                           expectations=[unchanged],
                           message=f"{len(compared)} item(s) and order(s) compared, "
                                   f"{len(changed)} changed")


__all__ = ["FaultWatch", "mpps_verdict", "exam_expectations", "with_status_verdict",
           "bare_conformant", "status_from_word", "verdict_expectation", "FaultProbeStep",
           "FaultVerdictStep",
           "WorklistSnapshotStep", "WorklistUnchangedStep", "worklist_target", "take_snapshot",
           "allowed_keys", "target_spec"]
