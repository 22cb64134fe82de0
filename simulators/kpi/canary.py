"""The canary: a synthetic patient no one can mistake for a real one, and its orders.

Why a fixed, unmistakable identity: probes run against production systems after
go-live. Everything they create carries Patient ID ``PACSIM-CANARY`` and the name
``ZZCANARY^PROBE`` (sorts last in every worklist, and says what it is), so staff can
filter it and cleanup can find it. Each probe cycle gets a fresh accession and
Study Instance UID (a ``token`` from the clock and a counter) so one cycle's order or
image is never confused with the previous one's, and polling measures *this* cycle.
The order and images come from :mod:`simulators.world`, like every other order.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from dataclasses import dataclass, replace

from pydicom.dataset import Dataset

from simulators.world.context import StudyContext
from simulators.world.images import build_study
from simulators.world.models import Order, Patient
from simulators.world.world import World

CANARY_PATIENT_ID = "PACSIM-CANARY"
CANARY_FAMILY, CANARY_GIVEN = "ZZCANARY", "PROBE"
CANARY_STATION_AE = "PACSIM_CANARY"
CANARY_STATION_NAME = "CANARY"
CANARY_MODALITY = "CT"
#: A seed of its own so canary UIDs never equal a scenario world's (seed 42 etc.).
CANARY_SEED = 990_001

_counter = itertools.count()


def canary_patient() -> Patient:
    return Patient(patient_id=CANARY_PATIENT_ID, issuer="PACSIM", family_name=CANARY_FAMILY,
                   given_name=CANARY_GIVEN, birth_date=dt.date(1900, 1, 1), sex="O")


def new_token() -> str:
    """Ten digits, unique within a process and (by the clock) across restarts."""
    return f"{(int(time.time() * 10) * 100 + next(_counter) % 100) % 10**10:010d}"


@dataclass(frozen=True)
class CanaryCycle:
    """The canary objects of one probe cycle: an order and a study of images."""

    token: str
    order: Order
    world: World

    @property
    def accession(self) -> str:
        return self.order.accession

    @property
    def study_uid(self) -> str:
        return self.order.study_uid

    def images(self, count: int = 2, size: int = 256) -> list[Dataset]:
        """``count`` CT slices of ``size``x``size`` (16-bit): the image-load payload."""
        context = StudyContext.from_order(self.order, self.world)
        return build_study(context, series=1, per_series=count, rows=size, cols=size)


def new_cycle(now: dt.datetime | None = None) -> CanaryCycle:
    """A fresh canary order scheduled now on the canary station, with a unique accession."""
    world = World(CANARY_SEED)
    token = new_token()
    start = (now or dt.datetime.now()).replace(microsecond=0)
    order = world.order(canary_patient(), CANARY_MODALITY, station_ae=CANARY_STATION_AE,
                        station_name=CANARY_STATION_NAME, index=0, start=start)
    order = order.with_changes(
        accession=f"CAN{token}", placer_number=f"PLCAN{token}", filler_number=f"FLCAN{token}",
        requested_procedure_id=f"RPC{token}", study_uid=world.uid("canary-study", token),
        step=replace(order.step, step_id=f"SPC{token}"))
    return CanaryCycle(token, order, world)


__all__ = ["CanaryCycle", "new_cycle", "canary_patient", "CANARY_PATIENT_ID",
           "CANARY_STATION_AE", "CANARY_FAMILY", "CANARY_GIVEN"]
