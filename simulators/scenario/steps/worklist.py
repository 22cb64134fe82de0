"""Worklist steps: a modality queries the Modality Worklist; the RIS's view of an order.

``mwl.query`` is a real MWL C-FIND from the modality actor named in ``by:`` to the
RIS. By default it asks for the modality's own station AE title and today's date,
as a scanner does; ``match`` adds or overrides keys (``station_ae: any`` drops the
station). Items come back with friendly keys (``accession``, ``patient_id``,
``patient_name``, ``station``...), so ``expect: {contains: {...}}`` reads like the
screen a technologist sees.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from simulators.actors.modality import Modality
from simulators.errors import ConfigError, ScenarioError
from simulators.scenario.context import StepContext, StepOutcome
from simulators.scenario.expectations import check_all, check_contains
from simulators.scenario.models import BaseExpect, StrictModel
from simulators.scenario.registry import step
from simulators.scenario.steps._support import NeedsMixin, describe_dataset, site, translate_match


class Range(StrictModel):
    """A number between ``min`` and ``max`` (either may be left out)."""

    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


Count = int | Range


class ListExpect(BaseExpect):
    """Expectations on a list of answers (worklist items, query matches)."""

    status: str | None = Field(None, description="final C-FIND status: success or 0x....")
    count: Count | None = Field(None, description="how many answers, or {min, max}")
    contains: dict[str, Any] | None = Field(
        None, description="at least one answer has these values")
    excludes: dict[str, Any] | None = Field(None, description="no answer has these values")


def judge_list(ctx: StepContext, expect: BaseExpect, observed: dict[str, Any],
               items: list[dict[str, Any]]) -> list[Any]:
    """Generic checks for the plain keys, item matching for ``contains``/``excludes``."""
    written = ctx.resolve(expect.model_dump(exclude_unset=True, by_alias=True))
    written.pop("max_duration", None)
    special = {key: written.pop(key) for key in ("contains", "excludes") if key in written}
    results = check_all(written, observed)
    if "contains" in special:
        results.append(check_contains("contains", special["contains"], items))
    if "excludes" in special:
        results.append(check_contains("excludes", special["excludes"], items, present=False))
    return results


@step("mwl.query")
class WorklistQueryStep(NeedsMixin):
    """The modality in ``by:`` queries its worklist (RAD-5)."""

    match: dict[str, Any] = Field(default_factory=dict,
                                  description="matching keys: accession, patient_id, station...")
    expect: ListExpect = Field(default_factory=ListExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        scanner: Modality = site(ctx).actor(self.by, Modality)
        try:
            found = scanner.query_worklist(**translate_match(ctx.resolve(self.match)))
        except ConfigError as exc:  # an unknown matching key is the author's mistake
            raise ScenarioError(str(exc), field="match") from None
        items = [describe_dataset(item) for item in found]
        observed = {"status": "success", "count": len(items), "items": items}
        return StepOutcome(observed=observed, message=f"{len(items)} worklist item(s)",
                           expectations=judge_list(ctx, self.expect, observed, items))


class OrderStateExpect(BaseExpect):
    status: str | None = Field(None, description="SCHEDULED, STARTED, COMPLETED, "
                                                 "DISCONTINUED, or absent")
    patient_id: str | None = None


@step("ris.order_state")
class OrderStateStep(NeedsMixin):
    """What the RIS's order book says about one order (no wire: the RIS's own state)."""

    accession: str = Field(description="the order's accession, e.g. $acc")
    expect: OrderStateExpect = Field(default_factory=OrderStateExpect)

    def run(self, ctx: StepContext) -> StepOutcome:
        ris = site(ctx).ris
        if ris is None:
            raise ScenarioError("this environment has no RIS")
        accession = str(ctx.resolve(self.accession))
        order = ris.order(accession)
        if order is None:
            return StepOutcome(observed={"status": "absent"}, message=f"no order {accession}")
        return StepOutcome(observed={"status": order.step.status,
                                     "patient_id": order.patient.patient_id,
                                     "patient_name": order.patient.dicom_name},
                           message=f"order {accession} is {order.step.status}")


__all__ = ["WorklistQueryStep", "OrderStateStep", "ListExpect", "Range", "Count", "judge_list"]
