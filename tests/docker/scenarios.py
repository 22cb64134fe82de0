"""The environments the Docker tests start (built in code: no scenario file to drift)."""

from __future__ import annotations

import datetime as dt

from simulators.scenario.models import Environment
from simulators.world import World
from simulators.world.models import Order, Patient

GOLDEN = {
    "seed": 11,
    "target": "orthanc",
    "actors": {
        "ris": {"kind": "ris", "ae_title": "PACSIM_RIS"},
        "ehr": {"kind": "ehr"},
        "ct1": {"kind": "modality", "ae_title": "CT_ROOM1", "modality": "CT", "station": "CT1",
                "settings": {"auto_interval": 1, "series": 2, "per_series": 2}},
    },
}


def golden_environment() -> Environment:
    return Environment.model_validate(GOLDEN)


def order_for(world: World, patient_index: int, index: int, station_ae: str = "CT_ROOM1",
              station_name: str = "CT1") -> tuple[Patient, Order]:
    patient = world.patient(patient_index)
    order = world.order(patient, "CT", station_ae=station_ae, station_name=station_name,
                        index=index, start=dt.datetime.now().replace(second=0, microsecond=0))
    return patient, order
