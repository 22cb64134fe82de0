"""Verdicts for the faults an actor injected in the middle of a scenario step.

A modality with a fault profile sends malformed MPPS inside an otherwise normal exam.
The step knows what the target answered to each exchange (N-CREATE, N-SET, and the
extra exchange a *sequence* fault adds); the actor's :class:`FaultInjector` knows
which faults fired on which exchange. This module pairs the two into
:class:`Observation` records and lets :func:`probing.judge` decide, so a scenario
verdict and the ``pacsim faults run`` matrix can never disagree about what a
conformant answer is: both read the expected answer from the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from simulators.injection import mutations
from simulators.injection.catalogue import BY_ID
from simulators.injection.model import (
    CONFORMANT, ERROR, NON_CONFORMANT, NOT_SUPPORTED, Observation, Outcome,
)
from simulators.faults.probing import answered_text, is_failure, judge

#: (hook, fault id, opportunity number at that hook), as ``FaultInjector.fired`` logs it.
FiredFault = tuple[str, str, int]

#: A fault that fired but whose exchange never happened (an earlier part was refused).
NOT_EXERCISED = "not exercised"
#: Status the modality reports when an ``mpps.orphan`` fault kept the N-SET unsent.
UNSENT = -1

CREATE_HOOK, SET_HOOK = "modality.mpps.n-create", "modality.mpps.n-set"
#: Faults that add a second exchange after a successful first one; judged on that one.
SEQUENCE_FAULTS = frozenset({"mpps.create-duplicate", "mpps.set-after-final"})
#: N-SET faults that change (or redirect) the N-SET itself.
_SET_CHANGING = frozenset(mutations.MPPS_SET) | {"mpps.set-unknown", "mpps.discontinued"}
#: Verdicts that fail an ``expect: conformant``.
FAILING = frozenset({NON_CONFORMANT, ERROR})


@dataclass(frozen=True, slots=True)
class MppsAnswers:
    """What the target answered in one step: ``None`` = that request was not sent."""

    create: int | None = None
    final: int | None = None
    #: Status of the extra exchange a sequence fault made, by fault id.
    extra: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """Every fault judged in one step, plus well-formed requests the target refused."""

    outcomes: tuple[Outcome, ...] = ()
    refused_clean: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.refused_clean and not any(o.verdict in FAILING for o in self.outcomes)

    @property
    def verdict(self) -> str:
        return CONFORMANT if self.passed else NON_CONFORMANT

    def summary(self) -> str:
        """``2 conformant, 1 implementation-defined`` (or why a clean exchange failed)."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.verdict] = counts.get(outcome.verdict, 0) + 1
        parts = [f"{n} {verdict}" for verdict, n in counts.items()]
        if self.refused_clean:
            parts.append(f"{len(self.refused_clean)} well-formed request(s) refused")
        return ", ".join(parts) or "no fault fired; every request accepted"

    def problems(self) -> list[str]:
        """One expected-vs-answered line per failing fault (what a failed step prints)."""
        lines = [f"{o.fault.id}: sent {o.sent}; expected {o.fault.expected.describe()}; "
                 f"answered {o.answered} ({o.verdict}{': ' + o.detail if o.detail else ''})"
                 for o in self.outcomes if o.verdict in FAILING]
        return lines + list(self.refused_clean)

    def notes(self) -> list[str]:
        """One line per judged fault, for the report."""
        return [f"fault {o.fault.id}: {o.verdict} (answered {o.answered or '-'}; expected "
                f"{o.fault.expected.describe()})" + (f" - {o.detail}" if o.detail else "")
                for o in self.outcomes]


def _status_for(fault_id: str, hook: str, answers: MppsAnswers) -> tuple[int | None, str]:
    """The status a fault is judged on, or (None, why it was not exercised)."""
    if fault_id in SEQUENCE_FAULTS:
        if fault_id in answers.extra:
            return answers.extra[fault_id], ""
        return None, "the request before it was refused, so the repeat was never sent"
    if fault_id == "mpps.orphan":
        # The scanner never finishes: what is judged is that the target took the start.
        return answers.create, "" if answers.create is not None else "no N-CREATE was sent"
    if hook == CREATE_HOOK:
        return answers.create, "" if answers.create is not None else "no N-CREATE was sent"
    if hook == SET_HOOK:
        if answers.final is None or answers.final == UNSENT:
            return None, "no N-SET was sent (mpps.orphan, or the exam was not started)"
        return answers.final, ""
    return None, f"{hook} faults are judged by their own step, not by the MPPS verdict"


def judge_mpps(fired: Iterable[FiredFault], answers: MppsAnswers) -> StepVerdict:
    """Judge every MPPS fault that fired against the catalogue; also require that an
    exchange no fault touched was accepted (a target that refuses good MPPS is wrong too)."""
    fired = list(fired)
    outcomes = []
    for hook, fault_id, _count in fired:
        fault = BY_ID[fault_id]
        status, why_not = _status_for(fault_id, hook, answers)
        if status is None:
            outcomes.append(Outcome(fault, NOT_EXERCISED, fault.description, "-", why_not))
            continue
        observation = Observation(sent=fault.description, status=status)
        verdict, detail = judge(fault, observation)
        outcomes.append(Outcome(fault, verdict, fault.description, answered_text(observation),
                                detail))
    create_changed = any(h == CREATE_HOOK and f in mutations.MPPS_CREATE for h, f, _ in fired)
    set_changed = any(h == SET_HOOK and f in _SET_CHANGING for h, f, _ in fired)
    refused = []
    if answers.create is not None and not create_changed and is_failure(answers.create):
        refused.append(f"a well-formed N-CREATE was refused with {answers.create:04X}")
    if answers.final not in (None, UNSENT) and not set_changed and is_failure(answers.final):
        refused.append(f"a well-formed N-SET was refused with {answers.final:04X}")
    return StepVerdict(tuple(outcomes), tuple(refused))


#: What an HL7 sender can check about faults whose expected answer is a behaviour.
_NO_ACK_FAULTS = frozenset({"mllp.no-start-block", "mllp.no-end-block", "mllp.oversize"})


def judge_hl7(fired: Iterable[FiredFault], acks: Sequence[Any]) -> StepVerdict:
    """Judge an EHR's faults on the ACKs it got back. Each message the EHR sends is one
    opportunity at ``ehr.hl7`` (and at ``mllp.frame``), so opportunity N is ``acks[N-1]``
    (``AckResult``: ``code``, ``error_code``; ``code`` is empty when no ACK came)."""
    outcomes = []
    for _hook, fault_id, count in fired:
        fault = BY_ID[fault_id]
        if not 0 < count <= len(acks):
            outcomes.append(Outcome(fault, NOT_EXERCISED, fault.description, "-",
                                    "the message was never answered or not sent"))
            continue
        ack = acks[count - 1]
        obs = Observation(sent=fault.description, ack_code=ack.code, err_code=ack.error_code,
                          answered=(f"{ack.code}" + (f" ERR {ack.error_code}"
                                                     if ack.error_code is not None else ""))
                          if ack.code else "no ACK")
        if fault_id in _NO_ACK_FAULTS:
            obs.checks["no ACK for the broken frame"] = not ack.code
        elif fault_id == "hl7.duplicate-control-id":
            obs.checks["the repeated message was acknowledged AA"] = ack.code in ("AA", "CA")
        elif fault.expected.kind != "ack":
            obs.checks["an ACK came back (no crash)"] = bool(ack.code)
        verdict, detail = judge(fault, obs)
        outcomes.append(Outcome(fault, verdict, fault.description, obs.answered, detail))
    return StepVerdict(tuple(outcomes))


def judged_all_unsupported(outcomes: Iterable[Outcome]) -> bool:
    """True when every row says the target does not offer the service (N/A, not a pass)."""
    rows = list(outcomes)
    return bool(rows) and all(o.verdict == NOT_SUPPORTED for o in rows)


def probe_verdict(outcomes: Iterable[Outcome]) -> StepVerdict:
    """A catalogue run (``faults.probe``) as a step verdict; implementation-defined and
    not-supported rows pass (they are noted), non-conformant and error rows fail."""
    return StepVerdict(tuple(outcomes))


__all__ = ["FiredFault", "MppsAnswers", "StepVerdict", "judge_mpps", "judge_hl7", "probe_verdict",
           "judged_all_unsupported", "NOT_EXERCISED", "UNSENT", "FAILING"]
