"""DIMSE probes: C-ECHO, worklist query latency, store-to-queryable latency.

Why the fast client (:class:`~simulators.dicom.fast.client.FastClient`): it is the
requestor the load engine measures with, so a probe's latency and a load test's
latency mean the same thing, and it names rejections and timeouts in its errors
(which :func:`~simulators.kpi.result.measure` turns into ``fail`` / ``timeout`` by type).
Each probe opens its own association and releases it: an association set-up is part
of what a modality or viewer waits for, so it is inside the measured time.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable, TypeVar

from pydicom.dataset import Dataset

from simulators.dicom.address import AeAddress
from simulators.dicom.fast.client import FastClient
from simulators.dicom.fast.dimse import FIND_MODELS
from simulators.dicom.fast.requests import worklist_identifier
from simulators.dicom.qrscu import QrClient
from simulators.errors import NotMeasured, ProbeTimeout, StatusError
from simulators.events import EventBus
from simulators.kpi.canary import CANARY_STATION_AE, CanaryCycle
from simulators.kpi.target import ProbeTarget

VERIFICATION = "1.2.840.10008.1.1"
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
T = TypeVar("T")


def open_client(target: ProbeTarget, peer: AeAddress, sop_classes: list[str],
                events: EventBus | None = None) -> FastClient:
    """An established association from the probe's AE to ``peer`` (AssociationError if not)."""
    client = FastClient(actor="probe", events=events, dimse_timeout=target.timeout)
    try:
        client.connect(peer.host, peer.port, target.calling_ae, peer.ae_title,
                       [(uid, UNCOMPRESSED) for uid in sop_classes], timeout=target.timeout)
    except BaseException:
        client.close()
        raise
    return client


def poll_until(check: Callable[[], T | None], *, timeout: float, interval: float,
               what: str) -> tuple[T, int]:
    """Call ``check`` until it returns something; (answer, polls). Bounded by ``timeout``."""
    deadline = time.perf_counter() + timeout
    polls = 0
    while True:
        polls += 1
        answer = check()
        if answer is not None:
            return answer, polls
        if time.perf_counter() + interval > deadline:
            raise ProbeTimeout(f"{what} did not appear within {timeout:g}s", polls=polls)
        time.sleep(interval)


def _checked(status: int, what: str, peer: AeAddress) -> None:
    if status != 0x0000:
        raise StatusError(f"{what} answered status 0x{status:04X}", status=status,
                          peer=str(peer))


# -- C-ECHO -----------------------------------------------------------------------------
def echo(target: ProbeTarget, events: EventBus | None = None) -> dict[str, float]:
    """Association + C-ECHO + release: is the target up, and how fast does it answer."""
    with open_client(target, target.store, [VERIFICATION], events) as client:
        _checked(client.echo(), "C-ECHO", target.store)
    return {}


# -- worklist ---------------------------------------------------------------------------
def canary_worklist_query(accession: str = "") -> Dataset:
    """What a modality sends: its station, today; optionally one accession."""
    match = {"AccessionNumber": accession} if accession else {}
    return worklist_identifier(CANARY_STATION_AE, dt.date.today(), match)


def worklist_query(target: ProbeTarget, events: EventBus | None = None) -> dict[str, float]:
    """A modality's worklist query (canary station, today): association to final status."""
    peer = _worklist_peer(target)
    with open_client(target, peer, [FIND_MODELS["worklist"]], events) as client:
        status, matches = client.find(canary_worklist_query(), "worklist")
        _checked(status, "MWL C-FIND", peer)
    return {"matches": float(len(matches))}


def _worklist_peer(target: ProbeTarget) -> AeAddress:
    if target.worklist is None:
        raise NotMeasured("not measured: no worklist peer configured (--worklist AE@HOST:PORT)")
    return target.worklist


def wait_for_worklist_item(target: ProbeTarget, accession: str,
                           events: EventBus | None = None) -> int:
    """Poll MWL until the accession is listed; returns the number of queries it took."""
    peer = _worklist_peer(target)
    query = canary_worklist_query(accession)
    with open_client(target, peer, [FIND_MODELS["worklist"]], events) as client:
        def listed() -> bool | None:
            status, matches = client.find(query, "worklist")
            _checked(status, "MWL C-FIND", peer)
            return True if any(m.get("AccessionNumber") == accession for m in matches) else None
        _, polls = poll_until(listed, timeout=target.timeout, interval=target.poll_interval,
                              what=f"worklist item {accession}")
    return polls


# -- store to queryable -----------------------------------------------------------------
#: What the canary's study-level C-FIND asks back (its match is the Study Instance UID).
STUDY_RETURN_KEYS = ("PatientID", "NumberOfStudyRelatedInstances")


def store_to_queryable(target: ProbeTarget, cycle: CanaryCycle, images: list[Dataset],
                       events: EventBus | None = None) -> tuple[float, dict[str, float]]:
    """C-STORE the canary study, then C-FIND (study root) until the study answers.

    The latency runs from the first C-STORE request to the first C-FIND match; the
    association set-up is excluded (the modality already had one open). Stores and
    queries share one association, opened by pacsim's Q/R SCU before the clock starts.
    """
    sop_classes = sorted({str(ds.SOPClassUID) for ds in images})
    with QrClient(target.store, target.calling_ae, events, "probe", target.timeout,
                  keep_open=True) as client:
        client.open(find_models=("study",), sop_classes=sop_classes)
        started = time.perf_counter()
        for status in client.store(images):
            _checked(status, "C-STORE", target.store)
        stored = time.perf_counter() - started
        match = {"StudyInstanceUID": cycle.study_uid}

        def queryable() -> bool | None:
            status, matches = client.find("STUDY", match, keys=STUDY_RETURN_KEYS)
            _checked(status, "study C-FIND", target.store)
            return True if any(m.get("StudyInstanceUID") == cycle.study_uid for m in matches) \
                else None
        _, polls = poll_until(queryable, timeout=target.timeout, interval=target.poll_interval,
                              what=f"study {cycle.study_uid}")
        seconds = time.perf_counter() - started
    size = sum(len(ds.PixelData) for ds in images)
    return seconds, {"store_seconds": stored, "polls": float(polls), "images": float(len(images)),
                     "pixel_bytes": float(size)}


__all__ = ["echo", "worklist_query", "wait_for_worklist_item", "store_to_queryable",
           "open_client", "poll_until", "canary_worklist_query", "STUDY_RETURN_KEYS"]
