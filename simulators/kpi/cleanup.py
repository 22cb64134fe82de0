"""Removing what a probe cycle left on the target, where the target allows it.

* The canary order: cancelled at the order filler with ORC-1 ``CA`` (RAD-2/13),
  so it leaves the canary station's worklist.
* The canary study on Orthanc: ``POST /tools/lookup`` finds the study by its UID,
  ``DELETE /studies/{id}`` removes it (Orthanc REST API).
* The built-in archive has no delete operation (its store is append-only, durable
  by design); its canaries live in the temp directory removed when the built-in
  target stops. DICOM itself has no standard "delete study" a probe could send.

Cleanup failures are reported in the cycle's log and never turn into probe results:
they do not tell the go-live team how fast the PACS is.
"""

from __future__ import annotations

import logging

from simulators.errors import PacsimError
from simulators.events import EventBus
from simulators.http.client import JsonClient
from simulators.kpi.canary import CanaryCycle
from simulators.kpi.probes_hl7 import send_order
from simulators.kpi.target import ProbeTarget

log = logging.getLogger(__name__)


def cancel_order(target: ProbeTarget, cycle: CanaryCycle, *, kind: str = "orm",
                 events: EventBus | None = None) -> bool:
    try:
        send_order(target, cycle.order, "CA", kind=kind, events=events)
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort, but said out loud
        log.warning("canary order %s could not be cancelled: %s", cycle.accession, exc)
        return False
    return True


def delete_orthanc_study(rest_url: str, study_uid: str, timeout: float) -> int:
    """Delete the study with ``study_uid`` through Orthanc's REST API; studies deleted."""
    base = rest_url.rstrip("/")
    try:
        orthanc = JsonClient(base, timeout=timeout, name="Orthanc")
        deleted = 0
        for item in orthanc.post("/tools/lookup", data=study_uid) or []:
            if item.get("Type") == "Study":
                orthanc.delete(f"/studies/{item['ID']}")
                deleted += 1
        return deleted
    except (PacsimError, AttributeError, KeyError, TypeError) as exc:
        log.warning("canary study %s could not be deleted from %s: %s", study_uid, base, exc)
        return 0


__all__ = ["cancel_order", "delete_orthanc_study"]
