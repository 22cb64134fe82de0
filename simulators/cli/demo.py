"""The main job on the embedded default: one scheduled exam end to end, narrated.

EHR -> RIS (HL7 ADT + order over MLLP), modality -> RIS (worklist C-FIND, MPPS),
modality -> archive (C-STORE, storage commitment), then the archive is queried
for the study. Every wire exchange is printed as it happens, from the event bus,
so a newcomer sees exactly which IHE transaction carried what. Everything runs
in-process on loopback with free ports.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import ExitStack
from typing import TextIO

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ehr import Ehr, EhrConfig
from simulators.actors.modality import Modality, ModalityConfig
from simulators.dicom.address import AeAddress
from simulators.actors.ris import Ris, RisConfig
from simulators.events import EventBus, Exchange
from simulators.world import World

STATIONS = {"CT": ("CT_ROOM1", "CT1"), "MR": ("MR_ROOM1", "MR1"), "CR": ("CR_ROOM1", "CR1"),
            "DX": ("DX_ROOM1", "DX1"), "MG": ("MG_ROOM1", "MG1"), "US": ("US_ROOM1", "US1")}


def _printer(out: TextIO, t0: float):
    def show(event: Exchange) -> None:
        status = f" {event.status}" if event.status else ""
        out.write(f"  {event.start - t0:7.3f}s  {event.actor:<9} {event.kind:<20} -> "
                  f"{event.peer:<22} {event.outcome}{status} ({event.duration * 1000:.1f} ms)\n")
    return show


def run_demo(*, seed: int = 42, modality: str = "CT", out: TextIO) -> int:
    """Run one scheduled exam end to end and print what happened; 0 when all checks hold."""
    station_ae, station_name = STATIONS[modality]
    events = EventBus()
    world = World(seed=seed)
    patient = world.patient(0)
    order = world.order(patient, modality, station_ae=station_ae, station_name=station_name,
                        index=0, start=dt.datetime.now().replace(second=0, microsecond=0))
    with ExitStack() as stack:
        ris = stack.enter_context(Ris(RisConfig(ae_title="PACSIM_RIS"), events=events))
        archive_cfg = ArchiveConfig(ae_title="PACSIM_ARC")
        archive = stack.enter_context(Archive(archive_cfg, events=events))
        ehr = stack.enter_context(Ehr(EhrConfig(ris_host=ris.hl7_address[0],
                                                ris_port=ris.hl7_address[1]), events=events))
        ris_host, ris_port = ris.dicom_address
        ris_peer = AeAddress(ae_title="PACSIM_RIS", host=ris_host, port=ris_port)
        arc_peer = AeAddress(ae_title="PACSIM_ARC", host="127.0.0.1", port=archive.port)
        scanner = stack.enter_context(Modality(ModalityConfig(
            name=station_name.lower(), ae_title=station_ae, modality=modality,
            station_name=station_name, worklist=ris_peer, mpps=ris_peer, store=arc_peer,
            commitment=arc_peer, series=2, per_series=3, seed=seed), world=world, events=events))
        t0 = time.time()
        stack.callback(events.subscribe(_printer(out, t0)))

        out.write(f"pacsim demo: {modality} exam for synthetic patient {patient.dicom_name} "
                  f"(ID {patient.patient_id}), accession {order.accession}\n")
        out.write(f"  RIS {ris.describe()}\n  archive {archive.describe()}\n"
                  f"  modality {scanner.describe()}\n\n")
        checks: list[tuple[str, bool, str]] = []

        out.write("1. EHR admits the patient and places the order (RAD-1, RAD-2)\n")
        admit, placed = ehr.admit(patient), ehr.place_order(order)
        checks.append(("HL7 ADT^A01 and ORM^O01 acknowledged AA", admit.code == placed.code == "AA",
                       f"{admit.code}/{placed.code}"))

        out.write("2. Technologist queries the worklist (RAD-5)\n")
        items = [i for i in scanner.query_worklist() if i.get("AccessionNumber") == order.accession]
        checks.append(("order appears on the worklist once", len(items) == 1, f"{len(items)} item(s)"))
        if not items:
            return _summary(out, checks)

        out.write("3. Exam performed: MPPS, C-STORE, storage commitment, MPPS completed (RAD-6,8,10,7)\n")
        result = scanner.perform(items[0])
        stored_ok = sum(1 for s in result.store_statuses if s == 0)
        checks.append(("all images stored", stored_ok == result.images == 6,
                       f"{stored_ok}/{result.images}"))
        committed = result.commitment is not None and result.commitment.complete
        checks.append(("storage commitment confirmed every image", committed,
                       f"{len(result.commitment.committed) if result.commitment else 0} committed"))
        checks.append(("MPPS IN PROGRESS and COMPLETED accepted",
                       result.mpps_create_status == result.mpps_final_status == 0,
                       f"0x{result.mpps_create_status:04X}/0x{result.mpps_final_status:04X}"))
        state = ris.order(order.accession)
        checks.append(("RIS shows the step completed",
                       state is not None and state.step.status == "COMPLETED",
                       state.step.status if state else "no order"))

        out.write("4. The archive holds the study with the right patient (RAD-11)\n")
        studies = archive.find_studies(AccessionNumber=order.accession)
        found = studies[0] if len(studies) == 1 else {}
        checks.append(("archive holds one study with 6 instances",
                       str(found.get("NumberOfStudyRelatedInstances")) == "6",
                       f"{len(studies)} study, {found.get('NumberOfStudyRelatedInstances')} instances"))
        same_patient = (found.get("PatientID") == patient.patient_id
                        and str(found.get("PatientName")) == patient.dicom_name
                        and found.get("PatientBirthDate") == patient.dicom_birth_date)
        checks.append(("demographics identical to the EHR's", same_patient,
                       f"{found.get('PatientName')} {found.get('PatientID')} {found.get('PatientBirthDate')}"))
        return _summary(out, checks)


def _summary(out: TextIO, checks: list[tuple[str, bool, str]]) -> int:
    out.write("\nResult\n")
    for name, passed, seen in checks:
        out.write(f"  {'PASS' if passed else 'FAIL'}  {name}  [{seen}]\n")
    failed = sum(1 for _, passed, _ in checks if not passed)
    out.write(f"\n{len(checks) - failed} passed, {failed} failed\n")
    return 0 if failed == 0 else 1


__all__ = ["run_demo"]
