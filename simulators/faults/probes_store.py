"""Probes for storage and storage-commitment faults (PS3.4 Annex B and Annex J).

C-STOREs go through the raw injector so the command can name one SOP class while the
dataset says another (``store.sop-mismatch``) and so a transfer can be cut half-way.
Whether an object was stored is read back over the wire with a storage commitment
request, the one service every archive here offers that answers "do you hold this
instance?" (Q/R would do too, but not every target serves instance-level queries).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from simulators.actors.modality import Exam
from simulators.dicom.fast import dimse
from simulators.dicom.worklist import build_worklist_item
from simulators.errors import PacsimError
from simulators.faults.probing import ProbeRun, probe
from simulators.faults.raw_dicom import EXPLICIT_LE, RawAssociation, status_of
from simulators.faults.scu import serving
from simulators.faults.target import STATION_AE, STATION_NAME, Target
from simulators.injection import mutations
from simulators.injection.model import Observation
from simulators.world.context import StudyContext
from simulators.world.images import build_study

CT = mutations.CT_IMAGE_STORAGE
_INDEX = itertools.count(20_000)


def probe_image(run: ProbeRun) -> Dataset:
    """A small, valid CT image of a new synthetic study (fresh UIDs every call)."""
    index = next(_INDEX)
    order = run.world.order(run.world.patient(index), "CT", station_ae=STATION_AE,
                            station_name=STATION_NAME, index=index,
                            start=dt.datetime.now().replace(microsecond=0))
    context = StudyContext.from_worklist(build_worklist_item(order), run.world,
                                         station_name=STATION_NAME)
    return build_study(context, series=1, per_series=1, rows=8, cols=8)[0]


def _store(target: Target, datasets: list[Dataset], *, sop_class: str = CT,
           cut: bool = False) -> tuple[list[int | None], str]:
    """C-STORE each dataset under ``sop_class``; ``cut`` sends half of the last one and
    aborts. Returns the statuses and how the association ended."""
    assert target.store is not None
    statuses: list[int | None] = []
    with RawAssociation(target.store.host, target.store.port, tls=target.store.tls) as raw:
        answer = raw.associate(target.calling_ae, target.store.ae_title,
                               [(sop_class, [EXPLICIT_LE])], max_pdu=65_536)
        if answer.kind != "accepted" or not any(c.accepted for c in raw.contexts):
            return statuses, f"not accepted: {answer.describe()}"
        context_id = raw.context_id(sop_class)
        for index, ds in enumerate(datasets):
            data = raw.encode(ds, context_id)
            message = dimse.c_store_rq(raw.next_id(), sop_class, str(ds.SOPInstanceUID), data=data)
            pdus = raw.message_pdus(message, context_id)
            if cut and index == len(datasets) - 1:
                for pdu in pdus[:-1]:
                    raw.send(pdu)
                raw.send(pdus[-1][: max(12, len(pdus[-1]) // 2)])
                raw.abort()
                return statuses, "aborted by us"
            for pdu in pdus:
                raw.send(pdu)
            statuses.append(status_of(raw.read_message()))
        raw.release()
    return statuses, "released"


def _no_store(sent: str) -> Observation:
    return Observation(sent=sent, unsupported="target has no storage address")


def _hex(status: int | None) -> str:
    return "none" if status is None else f"{status:04X}"


@probe("store.sop-mismatch")
def sop_mismatch(target: Target, run: ProbeRun) -> Observation:
    if target.store is None:
        return _no_store("C-STORE")
    statuses, ending = _store(target, [mutations.sop_mismatch(probe_image(run))])
    if not statuses:
        return Observation(sent="MR dataset under CT context", unsupported=ending)
    return Observation(sent="MR dataset under the CT Image Storage context", status=statuses[0])


@probe("store.missing-type1")
def missing_type1(target: Target, run: ProbeRun) -> Observation:
    if target.store is None:
        return _no_store("C-STORE")
    statuses, ending = _store(target, [mutations.store_missing_type1(probe_image(run))])
    if not statuses:
        return Observation(sent="C-STORE without Study Instance UID", unsupported=ending)
    return Observation(sent="C-STORE without Study Instance UID", status=statuses[0])


@probe("store.duplicate-uid-different-content")
def duplicate_uid(target: Target, run: ProbeRun) -> Observation:
    if target.store is None:
        return _no_store("C-STORE x2")
    image = probe_image(run)
    statuses, ending = _store(target, [image, mutations.duplicate_different_content(image)])
    if len(statuses) < 2:
        return Observation(sent="same SOP Instance UID twice", unsupported=ending)
    answered = f"{_hex(statuses[0])} then {_hex(statuses[1])}"
    obs = Observation(sent="same SOP Instance UID, other patient", answered=answered,
                      status=statuses[1], open_reason=f"answers {answered}")
    obs.checks["first C-STORE accepted"] = statuses[0] == 0x0000
    return obs


@probe("store.abort-mid-transfer")
def abort_mid_transfer(target: Target, run: ProbeRun) -> Observation:
    if target.store is None:
        return _no_store("C-STORE then A-ABORT")
    image = probe_image(run)
    _, ending = _store(target, [image], cut=True)
    if ending != "aborted by us":
        return Observation(sent="half a C-STORE then A-ABORT", unsupported=ending)
    obs = Observation(sent="C-STORE command + half the dataset, then A-ABORT",
                      answered="(aborted by us)")
    obs.checks["still serving afterwards"] = serving(target.store, target.calling_ae)
    result = _commit(target, [image], run)
    if result is not None and not isinstance(result, CommitmentFailure) \
            and result.same_association is not None:
        obs.checks["partial object not stored"] = not result.committed
    return obs


# ------------------------------------------------------------------ commitment
def _commit(target: Target, images: list[Dataset], run: ProbeRun) -> Any:
    """Ask for commitment of ``images`` through the listener modality (None if absent)."""
    modality = getattr(target, "commitment_modality", None)
    if modality is None or target.store is None:
        return None

    context = StudyContext.from_worklist(build_worklist_item(run.world.order(
        run.world.patient(1), "CT", station_ae=STATION_AE, station_name=STATION_NAME,
        index=next(_INDEX))), run.world, station_name=STATION_NAME)
    exam = Exam(context, f"2.25.{next(_INDEX)}{int(time.time())}", Dataset(),
                dt.datetime.now(), images=images)
    try:
        return modality.request_commitment(exam, timeout=10.0)
    except PacsimError as exc:
        return CommitmentFailure(str(exc))


@dataclass(frozen=True)
class CommitmentFailure:
    """The commitment request itself failed (association refused or aborted)."""

    reason: str
    action_status: int = -1
    committed: tuple[str, ...] = ()
    failed: tuple[tuple[str, int], ...] = ()
    same_association: bool | None = None


@probe("stgcmt.same-vs-new-assoc")
def same_vs_new(target: Target, run: ProbeRun) -> Observation:
    if target.store is None or getattr(target, "commitment_modality", None) is None:
        return Observation(sent="N-ACTION", unsupported="no commitment path configured")
    image = probe_image(run)
    statuses, ending = _store(target, [image])
    if statuses != [0x0000]:
        return Observation(sent="N-ACTION", unsupported=f"C-STORE failed first ({ending})")
    result = _commit(target, [image], run)
    if isinstance(result, CommitmentFailure):
        obs = Observation(sent="N-ACTION for 1 stored instance", answered=result.reason)
        obs.checks["N-ACTION answered"] = False
        return obs
    if result.action_status != 0x0000:
        return Observation(sent="N-ACTION commitment request", status=result.action_status,
                           answered=f"N-ACTION {_hex(result.action_status)}",
                           unsupported="" if result.action_status != 0x0122 else
                           "storage commitment not supported")
    via = {True: "same association", False: "new association", None: "no report"}[
        result.same_association]
    obs = Observation(sent="N-ACTION for 1 stored instance",
                      answered=f"N-EVENT-REPORT on {via}: {len(result.committed)} committed")
    obs.checks["report arrived"] = result.same_association is not None
    obs.checks["every instance committed"] = list(result.committed) == [str(image.SOPInstanceUID)]
    return obs


@probe("stgcmt.partial")
def partial(target: Target, run: ProbeRun) -> Observation:
    if target.store is None or getattr(target, "commitment_modality", None) is None:
        return Observation(sent="N-ACTION", unsupported="no commitment path configured")
    stored, missing = probe_image(run), probe_image(run)
    statuses, ending = _store(target, [stored])
    if statuses != [0x0000]:
        return Observation(sent="N-ACTION", unsupported=f"C-STORE failed first ({ending})")
    result = _commit(target, [stored, missing], run)
    if isinstance(result, CommitmentFailure):
        obs = Observation(sent="N-ACTION for 1 stored + 1 missing", answered=result.reason)
        obs.checks["N-ACTION answered"] = False
        return obs
    reasons = dict(result.failed)
    obs = Observation(sent="N-ACTION for 1 stored + 1 never-stored instance",
                      answered=f"{len(result.committed)} committed, failed "
                               + ", ".join(f"{r:04X}" for r in reasons.values()))
    obs.checks["report arrived"] = result.same_association is not None
    obs.checks["stored instance committed"] = str(stored.SOPInstanceUID) in result.committed
    obs.checks["missing instance failed with 0112/0119"] = \
        reasons.get(str(missing.SOPInstanceUID)) in (0x0112, 0x0119)
    return obs


__all__ = ["probe_image"]
