"""Plain pynetdicom SCU helpers the probes share: MWL queries, MPPS sessions, echo.

Probes speak to targets through pynetdicom's own requestor (not pacsim's fast
client) so a verdict never depends on the client under test elsewhere in pacsim;
associations go through :func:`simulators.dicom.ae.associate` for TCP_NODELAY and
an AssociationError that says why a peer refused.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    CTImageStorage, ModalityPerformedProcedureStep, ModalityWorklistInformationFind,
    Verification,
)

from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.reference_find import find_on
from simulators.errors import AssociationError

MPPS_CLASS = str(ModalityPerformedProcedureStep)
MWL_CLASS = str(ModalityWorklistInformationFind)


def _ae(calling_ae: str, *contexts: object, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    ae = make_ae(AeSettings(calling_ae, acse_timeout=timeout, dimse_timeout=timeout,
                            network_timeout=timeout, connection_timeout=timeout))
    for context in contexts:
        ae.add_requested_context(context)
    return ae


@contextmanager
def session(endpoint: AeAddress, calling_ae: str, *contexts: object,
            timeout: float = 10.0) -> Iterator[Association]:
    """An established association proposing ``contexts``; released (or aborted) on exit."""
    ae = _ae(calling_ae, *contexts, timeout=timeout)
    assoc = associate(ae, endpoint.host, endpoint.port, endpoint.ae_title, tls=endpoint.tls)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def supports(endpoint: AeAddress, calling_ae: str, sop_class: object) -> bool:
    """Whether the peer accepts a presentation context for ``sop_class``."""
    try:
        with session(endpoint, calling_ae, sop_class, Verification) as assoc:
            return any(str(cx.abstract_syntax) == str(sop_class)
                       for cx in assoc.accepted_contexts)
    except AssociationError:
        return False


def echo_ok(endpoint: AeAddress, calling_ae: str) -> bool:
    """A C-ECHO on a new association succeeds: the peer is still serving."""
    try:
        with session(endpoint, calling_ae, Verification) as assoc:
            status = assoc.send_c_echo()
            return status is not None and int(status.get("Status", -1)) == 0
    except AssociationError:
        return False


def serving(endpoint: AeAddress, calling_ae: str, attempts: int = 6) -> bool:
    """C-ECHO on a fresh association, retried briefly: a forking server (DCMTK) needs a
    moment to reap the children of aborted associations before it is under its limit."""
    for attempt in range(attempts):
        if echo_ok(endpoint, calling_ae):
            return True
        time.sleep(0.25 * (attempt + 1))
    return False


def universal_mwl_identifier(**keys: str) -> Dataset:
    """An MWL identifier returning the keys the invariants and probes compare."""
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID"):
        setattr(query, keyword, keys.get(keyword, ""))
    step = Dataset()
    for keyword in ("ScheduledStationAETitle", "Modality", "ScheduledProcedureStepStartDate",
                    "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID",
                    "ScheduledProcedureStepStatus", "ScheduledProcedureStepDescription"):
        setattr(step, keyword, keys.get(keyword, ""))
    query.ScheduledProcedureStepSequence = Sequence([step])
    return query


def find_mwl(endpoint: AeAddress, calling_ae: str, identifier: Dataset | None = None,
             limit: int = 100_000) -> tuple[int | None, list[Dataset]]:
    """One MWL C-FIND: the final status (None if none arrived) and every match."""
    identifier = identifier if identifier is not None else universal_mwl_identifier()
    with session(endpoint, calling_ae, ModalityWorklistInformationFind) as assoc:
        return find_on(assoc, identifier, ModalityWorklistInformationFind, limit=limit)


def status_code(status: Dataset | None) -> int | None:
    if status is None or "Status" not in status:
        return None
    return int(status.Status)


def mpps_session(endpoint: AeAddress, calling_ae: str):  # type: ignore[no-untyped-def]
    """An association with the MPPS context (raises AssociationError if refused)."""
    return session(endpoint, calling_ae, ModalityPerformedProcedureStep)


__all__ = ["session", "supports", "echo_ok", "universal_mwl_identifier",
           "find_mwl", "serving", "status_code", "mpps_session", "MPPS_CLASS", "MWL_CLASS",
           "CTImageStorage"]
