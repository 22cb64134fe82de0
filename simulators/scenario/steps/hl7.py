"""HL7 steps: the EHR sends ADT (A01/A04/A08/A40) and orders (NW/CA) to the RIS.

Each step is one message over the EHR's MLLP connection and observes the ACK
(``ack``: AA/AE/AR, ``error_code``: ERR-3, ``text``: MSA-3). ``by:`` names the EHR
when a scenario declares more than one. Patients are ``$references`` to the seeded
world; ``hl7.update`` rebinds its variable to the updated demographics, so later
steps (and expectations such as ``$jane.name``) see what the EHR now says.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from simulators.actors.ehr import ORDER_STYLES, AckResult, Ehr
from simulators.actors.modality import Modality
from simulators.errors import ScenarioError
from simulators.scenario.context import StepContext, StepOutcome
from simulators.site.site import PatientView
from simulators.scenario.models import BaseExpect, StepBase, StrictModel
from simulators.scenario.registry import step
from simulators.scenario.steps._support import resolve_patient, site, variable_name
from simulators.world.catalogue import procedures_for
from simulators.world.world import PRIORITIES

AckCode = Literal["AA", "AE", "AR", "CA", "CE", "CR"]


class AckExpect(BaseExpect):
    ack: AckCode | None = Field(None, description="MSA-1 the receiver must answer")
    error_code: int | None = Field(None, description="ERR-3 code, e.g. 204 unknown key")


def ack_outcome(result: AckResult, **observed: object) -> StepOutcome:
    """What every HL7 step observes: the ACK, plus step-specific values."""
    values = {"ack": result.code, "error_code": result.error_code, "text": result.text,
              "message_type": result.message_type, "control_id": result.control_id}
    message = f"{result.message_type} answered {result.code}"
    if result.error_code is not None:
        message += f" (ERR {result.error_code}: {result.text})"
    return StepOutcome(observed={**values, **observed}, message=message)


class _Hl7Step(StepBase):
    """A message sent by the EHR (``by:``, or the only EHR)."""

    expect: AckExpect = Field(default_factory=AckExpect)

    def ehr(self, ctx: StepContext) -> Ehr:
        return site(ctx).only(Ehr, self.by)


class _PatientStep(_Hl7Step):
    patient: str = Field(description="the patient: $patientN or a name from environment.patients")


@step("hl7.admit")
class AdmitStep(_PatientStep):
    """ADT^A01: the patient is admitted (inpatient)."""

    def run(self, ctx: StepContext) -> StepOutcome:
        view = resolve_patient(ctx, self.patient)
        return ack_outcome(self.ehr(ctx).admit(view.patient), patient=view)


@step("hl7.register")
class RegisterStep(_PatientStep):
    """ADT^A04: the patient is registered (outpatient)."""

    def run(self, ctx: StepContext) -> StepOutcome:
        view = resolve_patient(ctx, self.patient)
        return ack_outcome(self.ehr(ctx).register(view.patient), patient=view)


class PatientChanges(StrictModel):
    """Demographics an ADT^A08 changes (unset ones stay as they were)."""

    family_name: str | None = Field(None, min_length=1, max_length=40)
    given_name: str | None = Field(None, min_length=1, max_length=40)
    birth_date: dt.date | None = None
    sex: Literal["F", "M", "O"] | None = None


@step("hl7.update")
class UpdateStep(_PatientStep):
    """ADT^A08: demographics changed; the patient's variable now holds the new values."""

    changes: PatientChanges

    def run(self, ctx: StepContext) -> StepOutcome:
        view = resolve_patient(ctx, self.patient)
        changes = self.changes.model_dump(exclude_none=True)
        if not changes:
            raise ScenarioError("hl7.update needs at least one change", field="changes")
        updated = PatientView(view.index, view.patient.with_changes(**changes))
        outcome = ack_outcome(self.ehr(ctx).update(updated.patient), patient=updated)
        name = variable_name(self.patient)
        if name is not None and outcome.observed["ack"] in ("AA", "CA"):
            ctx.vars.set(name, updated)
            outcome.notes.append(f"${name} is now {updated}")
        return outcome


@step("hl7.merge")
class MergeStep(_Hl7Step):
    """ADT^A40: ``merged`` is folded into ``surviving`` (its orders move with it)."""

    surviving: str = Field(description="the patient who remains")
    merged: str = Field(description="the duplicate record that disappears")

    def run(self, ctx: StepContext) -> StepOutcome:
        surviving = resolve_patient(ctx, self.surviving)
        merged = resolve_patient(ctx, self.merged)
        return ack_outcome(self.ehr(ctx).merge(surviving.patient, merged.patient),
                           surviving=surviving, merged=merged)


@step("hl7.order")
class OrderStep(_PatientStep):
    """New order (ORC-1 NW) for a modality; ``save`` accession, study_uid, placer..."""

    for_: str | None = Field(None, alias="for",
                             description="the modality actor whose station gets the exam")
    modality: str | None = Field(None, pattern=r"^[A-Z]{2,4}$",
                                 description="modality when no 'for:' actor is named")
    procedure: str | None = Field(None, description="catalogue code or description")
    priority: Literal[PRIORITIES] = "ROUTINE"  # type: ignore[valid-type]
    style: Literal[ORDER_STYLES] = "ORM"  # type: ignore[valid-type]

    def run(self, ctx: StepContext) -> StepOutcome:
        here = site(ctx)
        view = resolve_patient(ctx, self.patient)
        modality_code, station_ae, station_name = self._station(ctx)
        procedure = None
        if self.procedure:
            procedure = here.world.find_procedure(modality_code, code=self.procedure,
                                                  meaning=self.procedure)
            if procedure is None:
                known = ", ".join(p.meaning for p in procedures_for(modality_code))
                raise ScenarioError(f"no {modality_code} procedure {self.procedure!r} "
                                    f"(catalogue: {known})", field="procedure")
        order = here.world.order(view.patient, modality_code, station_ae=station_ae,
                                 station_name=station_name, index=here.next_order_index(),
                                 priority=self.priority, procedure=procedure)
        here.record_order(order)
        return ack_outcome(self.ehr(ctx).place_order(order, self.style),
                           accession=order.accession, study_uid=order.study_uid,
                           placer=order.placer_number, filler=order.filler_number,
                           patient_id=order.patient.patient_id, patient=view,
                           requested_procedure_id=order.requested_procedure_id,
                           step_id=order.step.step_id, procedure=order.procedure.meaning,
                           station=station_name, station_ae=station_ae)

    def _station(self, ctx: StepContext) -> tuple[str, str, str]:
        here = site(ctx)
        if self.for_ is not None:
            scanner: Modality = here.actor(self.for_, Modality)
            if self.modality and self.modality != scanner.config.modality:
                raise ScenarioError(f"{self.for_} is a {scanner.config.modality}, not a "
                                    f"{self.modality}", field="modality")
            return scanner.config.modality, scanner.config.ae_title, scanner.config.station_name
        if self.modality is None:
            raise ScenarioError("say which modality performs the order: 'for: <modality "
                                "actor>' or 'modality: CT'", field="for")
        scanner = here.modality_for(self.modality)
        if scanner is not None:
            return self.modality, scanner.config.ae_title, scanner.config.station_name
        return self.modality, f"{self.modality}_ROOM1", f"{self.modality}1"


@step("hl7.cancel")
class CancelStep(_Hl7Step):
    """Cancel request (ORC-1 CA) for an order placed earlier in the scenario."""

    accession: str = Field(description="the order's accession, e.g. $acc")
    style: Literal[ORDER_STYLES] = "ORM"  # type: ignore[valid-type]

    def run(self, ctx: StepContext) -> StepOutcome:
        accession = str(ctx.resolve(self.accession))
        order = site(ctx).orders.get(accession)
        if order is None:
            raise ScenarioError(f"no order with accession {accession} was placed in this "
                                f"scenario", field="accession")
        return ack_outcome(self.ehr(ctx).cancel_order(order, self.style), accession=accession)


__all__ = ["AdmitStep", "RegisterStep", "UpdateStep", "MergeStep", "OrderStep", "CancelStep",
           "AckExpect", "ack_outcome"]
