"""The modality's storage-commitment listener (a FastServer) against peers that are not pacsim.

Orthanc's storage commitment SCP always reports on a new association: it calls the
modality's AE as registered in its ``DicomModalities``, proposing the SCP role for
itself through role selection (DCMTK's ``ASC_SC_ROLE_SCP``), and insists that the
N-EVENT-REPORT-RSP echoes the Affected SOP Class/Instance UIDs with status 0x0000.
pynetdicom stands in for reporters that propose no role selection at all. The
robustness test puts garbage and a silent connection on the listener first; the real
report must still get through. Everything runs over real associations on loopback.
"""

from __future__ import annotations

import datetime as dt
import itertools
import socket
import struct
import time
from dataclasses import dataclass
from typing import Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role
from pynetdicom.sop_class import StorageCommitmentPushModel

from simulators.actors.modality import Exam, Modality, ModalityConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.worklist import build_worklist_item
from simulators.events import EventBus, Exchange
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.world.context import StudyContext
from simulators.world.world import World
from tests.helpers import needs, require_tool

STATION = "CT_LISTEN"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
NO_SUCH_OBJECT_INSTANCE = 0x0112
_EXAMS = itertools.count(1)


@dataclass
class Site:
    """A modality whose store and commitment peer is a real Orthanc."""

    modality: Modality
    orthanc: OrthancProcess
    world: World
    events: list[Exchange]

    def exam(self, images: int) -> Exam:
        """A new exam with ``images`` generated images (Orthanc has no MPPS: none sent)."""
        index = next(_EXAMS)
        order = self.world.order(self.world.patient(index), "CT", station_ae=STATION,
                                 station_name="CT1", index=index)
        context = StudyContext.from_worklist(build_worklist_item(order), self.world,
                                             station_name="CT1")
        exam = Exam(context, self.world.uid("mpps", context.study_uid), Dataset(),
                    dt.datetime.now())
        self.modality.build_images(exam, series=1, per_series=images)
        return exam

    def orthanc_job_state(self, transaction_uid: str, wait: float = 30.0) -> str:
        """Final state of Orthanc's StorageCommitmentScp job for ``transaction_uid``.

        Orthanc fails that job when our N-EVENT-REPORT-RSP is not what it expects
        (Affected SOP Class/Instance UIDs echoed, no data set, status 0x0000), so
        "Success" is Orthanc's own verdict on the listener's answer.
        """
        deadline, state = time.monotonic() + wait, "missing"
        while time.monotonic() < deadline:
            jobs = [job for job in self.orthanc.rest("/jobs?expand")
                    if job.get("Type") == "StorageCommitmentScp"
                    and job.get("Content", {}).get("TransactionUid") == transaction_uid]
            state = jobs[0]["State"] if jobs else "missing"
            if state in ("Success", "Failure"):
                return state
            time.sleep(0.1)
        return state

    def listener_reports(self) -> list[Exchange]:
        """N-EVENT-REPORTs the modality's listener served (not its client side)."""
        return [e for e in self.events if e.kind == "dicom.n-event-report"
                and e.actor == self.modality.name and e.detail.get("via") == "new"]


@pytest.fixture(scope="module")
@needs("Orthanc")
def site() -> Iterator[Site]:
    require_tool("Orthanc")
    orthanc = OrthancProcess(OrthancSettings(ae_title="ORTHANC"))  # ports chosen, not started
    peer = AeAddress(ae_title=orthanc.ae_title, host="127.0.0.1", port=orthanc.dicom_port)
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    world = World(seed=12)
    config = ModalityConfig(name="ct-listen", ae_title=STATION, store=peer, commitment=peer,
                            rows=32, cols=32, commitment_timeout=60)
    with Modality(config, world=world, events=bus) as modality:
        # Orthanc sends its report to the modality's AE at the address it was given here.
        orthanc.settings.modalities = {STATION: ("127.0.0.1", modality.port)}
        with orthanc:
            yield Site(modality, orthanc, world, seen)


def test_orthanc_reports_commitment_to_the_listener_on_a_new_association(site: Site) -> None:
    exam = site.exam(images=3)
    stored, never_stored = exam.images[:2], exam.images[2]
    assert site.modality.store_datasets(stored) == [0x0000, 0x0000]

    result = site.modality.request_commitment(exam)

    assert result.action_status == 0x0000
    assert result.same_association is False  # Orthanc always reports on a new association
    assert sorted(result.committed) == sorted(str(ds.SOPInstanceUID) for ds in stored)
    assert result.failed == ((str(never_stored.SOPInstanceUID), NO_SUCH_OBJECT_INSTANCE),)
    served = [e for e in site.listener_reports()
              if e.detail.get("transaction_uid") == result.transaction_uid]
    assert len(served) == 1
    assert served[0].status == "0x0000" and served[0].detail["calling_ae"] == "ORTHANC"
    assert served[0].detail["event_type"] == 2  # failures exist
    assert site.orthanc_job_state(result.transaction_uid) == "Success"


def _send_and_read(port: int, payload: bytes) -> bytes:
    """Send ``payload`` on a fresh connection; what the listener answers before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        answer = b""
        for _ in range(100):  # bounded: the listener aborts and closes at once
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def test_garbage_and_an_idle_connection_do_not_keep_the_report_out(site: Site) -> None:
    port = site.modality.port
    # each gets an A-ABORT (0x07) and a close; nothing is left unread, so no reset races it
    for garbage in (b"\x00GARBAGE\xff",                                   # claims ~1 GB
                    struct.pack(">BBI", 0x99, 0, 8) + b"GARBAGE!",         # no such PDU type
                    struct.pack(">BBI", 0x04, 0, 12) + b"\x00" * 12):      # P-DATA, no association
        assert _send_and_read(port, garbage)[:1] == b"\x07", garbage
    # a connection that never sends a byte is held open while the real report comes in
    # (the listener only drops it when ARTIM expires, 30 s after it connected)
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        exam = site.exam(images=2)
        assert site.modality.store_datasets(exam.images) == [0x0000, 0x0000]
        result = site.modality.request_commitment(exam)
    assert result.complete and result.same_association is False
    assert sorted(result.committed) == sorted(str(ds.SOPInstanceUID) for ds in exam.images)
    assert any(e.detail.get("transaction_uid") == result.transaction_uid
               for e in site.listener_reports())


# ------------------------------------------------- a reporter without role selection
@pytest.fixture
def listener() -> Iterator[tuple[Modality, list[Exchange]]]:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    with Modality(ModalityConfig(name="ct-plain", ae_title=STATION), events=bus) as modality:
        yield modality, seen


def _report(port: int, information: Dataset, event_type: int = 1) -> int:
    """pynetdicom as the SCP: a new association with no role selection, one report."""
    ae = AE("PLAINPACS")
    ae.add_requested_context(StorageCommitmentPushModel)
    assoc = ae.associate("127.0.0.1", port, ae_title=STATION)
    assert assoc.is_established
    try:
        status, _ = assoc.send_n_event_report(information, event_type,
                                              StorageCommitmentPushModel, COMMITMENT_INSTANCE)
        return int(status.Status)
    finally:
        assoc.release()


def test_a_report_nobody_waits_for_is_accepted_and_one_without_transaction_refused(
        listener: tuple[Modality, list[Exchange]]) -> None:
    modality, seen = listener
    unknown = Dataset()
    unknown.TransactionUID = "1.2.826.0.1.3680043.10.12.1"
    unknown.ReferencedSOPSequence = []
    assert _report(modality.port, unknown) == 0x0000  # filed by Transaction UID, as before

    anonymous = Dataset()
    anonymous.ReferencedSOPSequence = []
    assert _report(modality.port, anonymous) == 0x0115  # invalid argument value

    served = [e for e in seen if e.kind == "dicom.n-event-report" and e.actor == "ct-plain"]
    assert [e.status for e in served] == ["0x0000", "0x0115"]
    assert all(e.detail["calling_ae"] == "PLAINPACS" for e in served)


def test_the_listener_grants_the_scp_role_a_reporter_proposes(
        listener: tuple[Modality, list[Exchange]]) -> None:
    """Role selection answered as pynetdicom's acceptor did (PS3.4 J.3.3): the reporter
    proposing SCP-only gets it; one proposing nothing keeps the default roles."""
    modality, _ = listener
    ae = AE("ROLEPACS")
    ae.add_requested_context(StorageCommitmentPushModel)
    for roles, expected in (([build_role(StorageCommitmentPushModel, scp_role=True)], (False, True)),
                            ([], (True, False))):
        assoc = ae.associate("127.0.0.1", modality.port, ae_title=STATION, ext_neg=roles)
        assert assoc.is_established
        try:
            (context,) = assoc.accepted_contexts
            assert (context.as_scu, context.as_scp) == expected  # the requestor's roles
        finally:
            assoc.release()
