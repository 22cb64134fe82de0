"""The exam workflow as steps use it: the library plus what a scenario site remembers.

:mod:`simulators.actors.workflow` runs the parts of an exam with explicit arguments;
here each exam a step begins is recorded in the site (so ``exam: $acc`` finds it in a
later step). Whether MPPS and commitment are sent follows the modality's wiring,
which the site made from the target's capabilities (:meth:`Capabilities.route`).
"""

from __future__ import annotations

from simulators.actors import workflow
from simulators.actors.modality import Exam, Modality
from simulators.actors.workflow import (  # noqa: F401 - the parts steps call unchanged
    commit, finish, refused_status, status_word, store, worklist_item,
)
from simulators.scenario.context import StepContext
from simulators.site.site import Site
from simulators.world.context import StudyContext


def mpps_possible(ctx: StepContext, scanner: Modality) -> bool:
    """MPPS is sent when the site wired the modality to an MPPS peer (the target when it
    takes MPPS, else the RIS)."""
    return scanner.config.mpps is not None


def commitment_possible(ctx: StepContext, scanner: Modality) -> bool:
    """Commitment is asked when the site wired a commitment peer (a target that takes it)."""
    return scanner.config.commitment is not None


def why_not(ctx: StepContext, service: str) -> str:
    """Why ``service`` is not used in this run: the route's reason (which service the
    target lacks, how that was learned) or the modality's own wiring."""
    missing = ctx.unsupported([service])
    if missing:
        return missing[0].reason
    return f"{service}: the modality has no {service} peer"


def begin_exam(site: Site, scanner: Modality, accession: str,
               *, send_mpps: bool) -> tuple[Exam, str]:
    """:func:`simulators.actors.workflow.begin_exam`, remembered under the accession."""
    exam, word = workflow.begin_exam(scanner, accession, send_mpps=send_mpps)
    site.record_exam(scanner.name, accession, exam)
    return exam, word


def begin_unscheduled(site: Site, scanner: Modality, context: StudyContext, *,
                      send_mpps: bool) -> tuple[Exam, str]:
    """An unscheduled exam, remembered under its study UID."""
    exam, word = workflow.begin_unscheduled(scanner, context, send_mpps=send_mpps)
    site.record_exam(scanner.name, context.study_uid, exam)
    return exam, word


def find_exam(ctx: StepContext, site: Site, scanner: Modality, reference: str) -> Exam | None:
    """``exam: $exam`` (saved by mpps.start) or ``exam: $acc`` (the accession)."""
    value = ctx.resolve(reference)
    if isinstance(value, Exam):
        return value
    return site.exam(scanner.name, str(value))


__all__ = ["mpps_possible", "commitment_possible", "why_not", "worklist_item", "begin_exam",
           "begin_unscheduled", "store", "commit", "finish", "refused_status", "find_exam",
           "status_word"]
