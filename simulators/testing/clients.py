"""What a test holds to drive an environment and look at the target, whatever the runtime.

:class:`PacsimEnvironment` answers "where is the RIS / the target" for an in-process
site and for containers alike, so a suite's tests do not change with
``pacsim_runtime``. :class:`OrderDesk` places orders the way the hospital's EHR does
(HL7 ADT + ORM over MLLP to the RIS); :class:`TargetProbe` asks the target the way a
viewer does (C-FIND, study root), and waits for a study with a bounded poll.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from simulators.actors.ehr import AckResult, Ehr, EhrConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.qrscu import QrClient
from simulators.errors import ConfigError, ProtocolError, StatusError
from simulators.events import EventBus
from simulators.world import World
from simulators.world.models import Order

QUERY_AE = "PACSIM_QR"
#: What a study-level probe asks the target to return.
_STUDY_KEYS = ("StudyInstanceUID", "AccessionNumber", "PatientID", "PatientName",
               "PatientBirthDate", "ModalitiesInStudy", "NumberOfStudyRelatedInstances")


@dataclass
class PacsimEnvironment:
    """Addresses of a running environment as seen from the test process."""

    runtime: str
    seed: int
    ris_dicom: AeAddress
    ris_mllp: tuple[str, int]
    target_dicom: AeAddress
    target_rest_url: str | None
    #: modality actor name -> (station AE title, station name, modality code)
    stations: dict[str, tuple[str, str, str]]
    run_id: str | None = None

    def station(self, actor: str | None = None) -> tuple[str, str, str]:
        """The (AE, station name, modality) of ``actor``, or of the only modality."""
        if actor is None:
            if len(self.stations) != 1:
                raise ConfigError("say which modality (the environment has "
                                  f"{len(self.stations)})", modalities=",".join(self.stations))
            return next(iter(self.stations.values()))
        try:
            return self.stations[actor]
        except KeyError:
            raise ConfigError(f"no modality named {actor!r}",
                              modalities=",".join(self.stations)) from None


class OrderDesk:
    """Admit patients and place orders on the environment's RIS, as the EHR does."""

    _numbers = itertools.count(int(time.time()) % 100_000 * 10)  # unique across sessions

    def __init__(self, environment: PacsimEnvironment, world: World) -> None:
        self.environment, self.world = environment, world
        host, port = environment.ris_mllp
        self._ehr = Ehr(EhrConfig(name="test-ehr", ris_host=host, ris_port=port))
        self._ehr.start()
        self.acks: list[AckResult] = []

    def place(self, patient: int = 0, *, modality_actor: str | None = None) -> Order:
        """ADT^A01 then ORM^O01 for world patient ``patient``, scheduled now on the
        modality's station; raises StatusError unless both are acknowledged AA."""
        station_ae, station_name, modality = self.environment.station(modality_actor)
        person = self.world.patient(patient)
        order = self.world.order(person, modality, station_ae=station_ae,
                                 station_name=station_name, index=next(self._numbers),
                                 start=dt.datetime.now().replace(second=0, microsecond=0))
        for ack in (self._ehr.admit(person), self._ehr.place_order(order)):
            self.acks.append(ack)
            if not ack.accepted:
                raise StatusError("the RIS refused the message", status=ack.code,
                                  detail=ack.text or None)
        return order

    def close(self) -> None:
        self._ehr.stop()


class TargetProbe:
    """C-FIND the target at study level; wait (bounded) for a study to arrive."""

    def __init__(self, environment: PacsimEnvironment) -> None:
        self.peer = environment.target_dicom
        self._client = QrClient(self.peer, QUERY_AE, EventBus(), "pacsim-test")

    def find_studies(self, **keys: Any) -> list[Dataset]:
        """Study-level C-FIND with ``keys`` as matching keys; ProtocolError on a failure."""
        return self._client.find_matches("STUDY", keys, keys=_STUDY_KEYS)

    def wait_for_study(self, accession: str, *, instances: int | None = None,
                       timeout: float = 60.0, interval: float = 0.5) -> Dataset:
        """The study with ``accession`` once it is there (with ``instances`` objects)."""
        deadline = time.monotonic() + timeout
        seen: list[Dataset] = []
        while time.monotonic() < deadline:
            seen = self.find_studies(AccessionNumber=accession)
            if seen and (instances is None or
                         int(seen[0].get("NumberOfStudyRelatedInstances") or 0) >= instances):
                return seen[0]
            time.sleep(interval)
        raise ProtocolError(f"study {accession} not complete on the target after {timeout:.0f}s",
                            found=len(seen))


class LocalPerformers:
    """In-process runtime: run each auto_interval modality's unattended loop in a thread,
    as ``pacsim serve modality`` does in a container."""

    def __init__(self, modalities: list[Any]) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=m.run_until, args=(self._stop,), daemon=True,
                                          name=f"auto-{m.name}")
                         for m in modalities if m.config.auto_interval]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


__all__ = ["PacsimEnvironment", "OrderDesk", "TargetProbe", "LocalPerformers", "QUERY_AE"]
