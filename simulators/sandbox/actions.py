"""What each pathway action does, on the site's real actors.

Every action drives the actors the scenario steps drive (the EHR's ADT and orders,
the modality's worklist, MPPS and C-STORE through the same workflow helpers as
``modality.perform``, the target through the Q/R client of ``target.seed_priors``),
so the sandbox's traffic is the traffic a scenario would send. The one part with no
actor of its own is the reporting system: :class:`Reporter` sends ORU^R01 (built by
:func:`simulators.hl7.messages.oru_r01`) from the RIS side to the EHR's listener.

An action raises :class:`PathwayFailed` when the hospital answers wrongly (an HL7
AE/AR, a refused C-STORE), and :class:`PathwayInterrupted` when the sandbox stops or
resets under it; anything else a PacsimError already describes.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pydicom.dataset import Dataset

from simulators.actors.ehr import AckResult, Ehr
from simulators.actors.modality import Exam, Modality
from simulators.errors import PathwayFailed, PathwayInterrupted
from simulators.events import EventBus
from simulators.hl7.messages import oru_r01
from simulators.hl7.mllp import MllpClient
from simulators.sandbox.clock import SimClock
from simulators.sandbox.identity import Epoch
from simulators.sandbox.pathways import Action, PathwayRun
from simulators.site.site import QUERY_AE, Site
from simulators.actors import workflow as wf
from simulators.dicom.qrscu import QrClient
from simulators.world.context import StudyContext
from simulators.world.images import build_study

#: How long (wall seconds) a worklist change may take to show after its ACK.
WORKLIST_WAIT = 10.0
REPORT_TEXT = ("SANDBOX TRAINING REPORT - NOT A REAL PATIENT\n"
               "Findings: no acute abnormality (synthetic).\nImpression: normal study.")


class Reporter:
    """The reporting system: ORU^R01 to the EHR over one kept MLLP connection.

    ``accepted`` counts the reports the EHR acknowledged AA/CA: the EHR's own answer
    on the wire, read here because an EHR in a container reports no events of its own
    between operations."""

    def __init__(self, ehr: Ehr, events: EventBus) -> None:
        host, port = ehr.address
        self._client = MllpClient(host, port, timeout=10.0, events=events, name="reporting")
        self._lock = threading.Lock()
        self.accepted = 0

    def send(self, message: str) -> str:
        with self._lock:
            reply = self._client.send(message)
            if _ack_code(reply) in ("AA", "CA"):
                self.accepted += 1
            return reply

    def close(self) -> None:
        with self._lock:
            self._client.close()


@dataclass
class Services:
    """What actions need from the running sandbox."""

    site: Site
    epoch: Epoch
    clock: SimClock
    events: EventBus
    reporter: Reporter
    stop: threading.Event

    @property
    def ehr(self) -> Ehr:
        return self.site.only(Ehr, None)

    def scanner(self, run: PathwayRun) -> Modality:
        return self.site.actor(run.station, Modality)


def _ack_code(reply: str) -> str:
    """MSA-1 of an ACK (empty when there is none)."""
    return reply.split("MSA|", 1)[1][:2] if "MSA|" in reply else ""


def _accepted(result: AckResult, what: str) -> None:
    if not result.accepted:
        raise PathwayFailed(f"{what} answered {result.code or 'nothing'}",
                            error_code=result.error_code, text=result.text)


def _patient(run: PathwayRun, svc: Services, role: str) -> Any:
    if role not in run.patients:
        run.patients[role] = svc.epoch.patient(run.display_name if role == "main" else None)
    return run.patients[role]


def _order(run: PathwayRun, role: str) -> Any:
    if role not in run.orders:
        raise PathwayFailed(f"no order for the {role} patient yet (pathway definition)")
    return run.orders[role]


def _until(check: Callable[[], bool], svc: Services, what: str) -> None:
    """Poll ``check`` for up to WORKLIST_WAIT wall seconds (bounded)."""
    deadline = time.monotonic() + WORKLIST_WAIT
    for _ in range(200):
        if check():
            return
        if svc.stop.is_set():
            raise PathwayInterrupted("sandbox stopping")
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise PathwayFailed(f"{what} within {WORKLIST_WAIT:g}s")


# ---------------------------------------------------------------------- ADT and orders
def admit(run: PathwayRun, action: Action, svc: Services) -> None:
    _accepted(svc.ehr.admit(_patient(run, svc, action.role())), "ADT^A01")


def register(run: PathwayRun, action: Action, svc: Services) -> None:
    _accepted(svc.ehr.register(_patient(run, svc, action.role())), "ADT^A04")


def order(run: PathwayRun, action: Action, svc: Services) -> None:
    role = action.role()
    scanner = svc.scanner(run)
    placed = svc.epoch.order(_patient(run, svc, role), scanner.config.modality,
                             station_ae=scanner.config.ae_title,
                             station_name=scanner.config.station_name,
                             priority=str(action.args.get("priority", "ROUTINE")))
    _accepted(svc.ehr.place_order(placed), "ORM^O01 NW")
    run.orders[role] = placed


def cancel(run: PathwayRun, action: Action, svc: Services) -> None:
    placed = _order(run, action.role())
    _accepted(svc.ehr.cancel_order(placed), "ORM^O01 CA")
    scanner = svc.scanner(run)
    _until(lambda: not scanner.query_worklist(AccessionNumber=placed.accession), svc,
           f"accession {placed.accession} did not leave the worklist")


def merge(run: PathwayRun, action: Action, svc: Services) -> None:
    surviving = _patient(run, svc, action.role("surviving"))
    merged_role = action.role("merged")
    merged = _patient(run, svc, merged_role)
    _accepted(svc.ehr.merge(surviving, merged), "ADT^A40")
    # The merged record's orders now belong to the surviving patient (as the RIS did).
    surviving_role = action.role("surviving")
    if merged_role in run.orders and surviving_role not in run.orders:
        run.orders[surviving_role] = run.orders.pop(merged_role).with_changes(patient=surviving)


# ---------------------------------------------------------------------- the exam
def worklist(run: PathwayRun, action: Action, svc: Services) -> None:
    placed = _order(run, action.role())
    scanner = svc.scanner(run)
    _until(lambda: len(scanner.query_worklist(AccessionNumber=placed.accession)) == 1, svc,
           f"accession {placed.accession} did not appear once on {scanner.name}'s worklist")


def _finish(scanner: Modality, exam: Any, outcome: str, run: PathwayRun) -> None:
    if scanner.config.mpps is None:
        return
    word = wf.finish(scanner, exam, outcome, "110514")
    run.outcome["mpps"] = f"{exam.mpps_status}: {word}"
    if word != "success":
        raise PathwayFailed(f"MPPS {outcome.upper()} answered {word}", study=run.pathway.name)


def _store(scanner: Modality, exam: Any, images: int, run: PathwayRun) -> None:
    result = wf.store(scanner, exam, 1, max(1, images))
    run.study_uids.append(exam.context.study_uid)
    if result["failed"]:
        raise PathwayFailed(f"{result['failed']} image(s) refused by the target",
                            statuses=",".join(result["statuses"]))


def perform(run: PathwayRun, action: Action, svc: Services) -> None:
    """MPPS IN PROGRESS, images, MPPS COMPLETED/DISCONTINUED (MPPS only where the site
    sends it; the exam identity then comes from the worklist entry, as scenarios do)."""
    placed = _order(run, action.role())
    scanner = svc.scanner(run)
    exam, word = wf.begin_exam(scanner, placed.accession, send_mpps=scanner.config.mpps is not None)
    if word not in ("success", "unsupported"):
        raise PathwayFailed(f"MPPS IN PROGRESS answered {word}")
    _store(scanner, exam, int(action.args.get("images", 2)), run)
    _finish(scanner, exam, str(action.args.get("outcome", "completed")), run)


def unscheduled(run: PathwayRun, action: Action, svc: Services) -> None:
    """Emergency exam without an order: a new study under the epoch's UID root."""
    scanner = svc.scanner(run)
    patient = _patient(run, svc, "main")
    context = StudyContext.unscheduled(patient, svc.epoch.world, scanner.config.modality,
                                       station_name=scanner.config.station_name,
                                       index=run.run_id)
    if scanner.config.mpps is not None:  # N-CREATE from where the modality runs
        exam = scanner.mpps_start_unscheduled(context)
    else:
        exam = Exam(context, context.mpps_uid or svc.epoch.world.uid("mpps", context.study_uid),
                    Dataset(), context.performed_step_start)
    _store(scanner, exam, int(action.args.get("images", 2)), run)
    _finish(scanner, exam, "completed", run)


def report(run: PathwayRun, action: Action, svc: Services) -> None:
    placed = _order(run, action.role())
    reply = svc.reporter.send(oru_r01(placed, REPORT_TEXT))
    code = _ack_code(reply)
    run.outcome["report_ack"] = code
    if code not in ("AA", "CA"):
        raise PathwayFailed(f"ORU^R01 answered {code or 'nothing'}")


def priors(run: PathwayRun, action: Action, svc: Services) -> None:
    """Older studies of the patient, already in the target (one per year back)."""
    patient = _patient(run, svc, "main")
    scanner = svc.scanner(run)
    now = dt.datetime.now().replace(microsecond=0, second=0)
    datasets = []
    for years in range(1, int(action.args.get("studies", 1)) + 1):
        start = now - dt.timedelta(days=365 * years)
        old = svc.epoch.order(patient, scanner.config.modality, station_ae="PRIOR",
                              station_name="PRIOR", start=start)
        context = StudyContext.from_order(old, svc.epoch.world, performed_start=start)
        datasets += build_study(context, series=1, per_series=1)
        run.study_uids.append(old.study_uid)
    client = QrClient(svc.site.require_target().dicom, QUERY_AE, svc.events, "sandbox-priors")
    failed = sum(1 for status in client.store(datasets) if status != 0)
    if failed:
        raise PathwayFailed(f"{failed} prior image(s) refused by the target")


def wait(run: PathwayRun, action: Action, svc: Services) -> None:
    if not svc.clock.sleep(float(action.args.get("minutes", 0)) * 60.0, svc.stop):
        raise PathwayInterrupted("sandbox stopping")


ACTION_FUNCTIONS: dict[str, Callable[[PathwayRun, Action, Services], None]] = {
    "admit": admit, "register": register, "order": order, "worklist": worklist,
    "perform": perform, "report": report, "cancel": cancel, "merge": merge,
    "priors": priors, "unscheduled": unscheduled, "wait": wait,
}


__all__ = ["Services", "Reporter", "ACTION_FUNCTIONS", "REPORT_TEXT"]
