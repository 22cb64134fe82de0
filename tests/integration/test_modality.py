"""The modality's whole workflow against DCMTK wlmscpfs + storescp and a pynetdicom
MPPS / storage-commitment SCP (commitment reports on the same or a new association)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, StorageCommitmentPushModel

from simulators.peers.dcmtk import dcmtk_server
from simulators.actors.modality import Modality, ModalityConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, make_ae
from simulators.dicom.fast import read_part10
from simulators.dicom.mpps import MppsManager
from simulators.dicom.worklist import build_worklist_item
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.world.world import World
from tests.helpers import free_port, needs, require_tool, start_server
from tests.integration.test_fast_client import write_worklist

STATION = "CT_ROOM1"
COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"


@dataclass
class PacsScp:
    """MPPS (the shared state machine) and storage commitment checked against the files
    storescp really received; ``mode`` says where the N-EVENT-REPORT goes."""

    received: Path
    mpps: MppsManager = field(default_factory=MppsManager)
    mode: str = "same"  # "same" association, or "new" to the modality's listener
    modality_port: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def on_action(self, event: Any) -> tuple[int, Dataset | None]:
        info = event.action_information
        stored = {read_part10(path).sop_instance for path in self.received.iterdir()}
        report = Dataset()
        report.TransactionUID = info.TransactionUID
        report.ReferencedSOPSequence = [i for i in info.ReferencedSOPSequence
                                        if i.ReferencedSOPInstanceUID in stored]
        failed = [i for i in info.ReferencedSOPSequence if i.ReferencedSOPInstanceUID not in stored]
        for item in failed:
            item.FailureReason = 0x0112
        if failed:
            report.FailedSOPSequence = failed
        event_type = 2 if failed else 1
        target = self._same if self.mode == "same" else self._new
        thread = threading.Timer(0.05, target, (event.assoc, report, event_type))
        self.threads.append(thread)
        thread.start()
        return 0x0000, None

    @staticmethod
    def _same(assoc: Any, report: Dataset, event_type: int) -> None:
        assoc.send_n_event_report(report, event_type, StorageCommitmentPushModel, COMMITMENT_INSTANCE)

    def _new(self, _assoc: Any, report: Dataset, event_type: int) -> None:
        ae = AE("PACS")
        ae.add_requested_context(StorageCommitmentPushModel)
        assoc = ae.associate("127.0.0.1", self.modality_port, ae_title=STATION,
                             ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)])
        assert assoc.is_established
        assoc.send_n_event_report(report, event_type, StorageCommitmentPushModel, COMMITMENT_INSTANCE)
        assoc.release()


@dataclass
class Site:
    modality: Modality
    scp: PacsScp
    received: Path
    items: list[Dataset]
    events: list


@pytest.fixture
@needs("wlmscpfs", "storescp")
def site(tmp_path: Path) -> Iterator[Site]:
    require_tool("wlmscpfs", "storescp")
    world = World(seed=77)
    items = write_worklist(tmp_path / "wl", "WLM", world, 2, station_ae=STATION)
    other = World(seed=78).order(world.patient(9), "CT", station_ae="OTHER", station_name="X", index=9)
    build_worklist_item(other).save_as(tmp_path / "wl" / "WLM" / "other.wl", implicit_vr=False,
                                       little_endian=True)
    received = tmp_path / "received"
    received.mkdir()
    scp = PacsScp(received)
    ae = make_ae(AeSettings("PACS"))
    ae.add_supported_context(ModalityPerformedProcedureStep)
    ae.add_supported_context(StorageCommitmentPushModel)
    server = start_server(ae, "127.0.0.1", 0, [(evt.EVT_N_CREATE, scp.mpps.handle_n_create),
                                                (evt.EVT_N_SET, scp.mpps.handle_n_set),
                                                (evt.EVT_N_ACTION, scp.on_action)])
    wl_port, store_port, bus = free_port(), free_port(), EventBus()
    seen: list = []
    bus.subscribe(seen.append)
    pacs = AeAddress(ae_title="PACS", host="127.0.0.1", port=server.server_address[1])
    config = ModalityConfig(name="ct1", ae_title=STATION, modality="CT", station_name="CT1",
                            worklist=AeAddress(ae_title="WLM", host="127.0.0.1", port=wl_port),
                            mpps=pacs,
                            store=AeAddress(ae_title="STORESCP", host="127.0.0.1",
                                            port=store_port),
                            commitment=pacs,
                            series=2, per_series=2, rows=32, cols=32, commitment_timeout=5)
    try:
        with dcmtk_server(["wlmscpfs", "-dfp", str(tmp_path / "wl")], wl_port), \
                dcmtk_server(["storescp", "-aet", "STORESCP", "-od", str(received)], store_port), \
                Modality(config, world=world, events=bus) as modality:
            scp.modality_port = modality.port
            yield Site(modality, scp, received, items, seen)
            for thread in scp.threads:
                thread.join(5)
    finally:
        server.shutdown()


def test_worklist_query_returns_only_our_station(site: Site) -> None:
    found = site.modality.query_worklist()
    assert sorted(i.AccessionNumber for i in found) == sorted(i.AccessionNumber for i in site.items)
    everything = site.modality.query_worklist(ScheduledStationAETitle=None)
    assert len(everything) == 3


def test_perform_completed_with_commitment_on_the_same_association(site: Site) -> None:
    item = site.modality.query_worklist()[0]
    result = site.modality.perform(item)
    assert result.outcome == "COMPLETED" and result.store_statuses == (0, 0, 0, 0)
    stored = [read_part10(path) for path in site.received.iterdir()]
    assert len(stored) == 4
    first = pydicom.dcmread(next(site.received.iterdir()))
    assert (first.PatientID, first.AccessionNumber, first.StudyInstanceUID) == (
        item.PatientID, item.AccessionNumber, item.StudyInstanceUID)
    assert result.commitment is not None and result.commitment.complete
    assert result.commitment.same_association is True
    assert sorted(result.commitment.committed) == sorted(s.sop_instance for s in stored)
    mpps = site.scp.mpps.get(result.mpps_uid)
    assert mpps is not None and mpps.status == "COMPLETED" and result.mpps_final_status == 0
    ssas = mpps.dataset.ScheduledStepAttributesSequence[0]
    assert (ssas.AccessionNumber, ssas.StudyInstanceUID) == (item.AccessionNumber, item.StudyInstanceUID)
    assert ssas.ScheduledProcedureStepID == item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID
    referenced = {ref.ReferencedSOPInstanceUID for series in mpps.dataset.PerformedSeriesSequence
                  for ref in series.ReferencedImageSequence}
    assert referenced == {s.sop_instance for s in stored}
    assert len(mpps.dataset.PerformedSeriesSequence) == 2
    kinds = [e.kind for e in site.events]
    assert kinds.count("dicom.c-store") == 4 and kinds.count("dicom.n-event-report") == 1
    assert {"dicom.n-create", "dicom.n-set", "dicom.n-action", "dicom.c-find"} <= set(kinds)


def test_commitment_report_on_a_new_association_reaches_the_listener(site: Site) -> None:
    site.scp.mode = "new"
    exam = site.modality.mpps_start(site.modality.query_worklist()[1])
    assert site.modality.store_study(exam, series=1, per_series=3) == [0, 0, 0]
    commitment = site.modality.request_commitment(exam)
    assert commitment.complete and commitment.same_association is False
    assert len(commitment.committed) == 3
    assert site.modality.mpps_complete(exam) == 0


def test_commitment_reports_instances_the_archive_does_not_have(site: Site) -> None:
    exam = site.modality.mpps_start(site.modality.query_worklist()[0])
    site.modality.build_images(exam, series=1, per_series=2)  # built, never stored
    commitment = site.modality.request_commitment(exam)
    assert not commitment.complete and commitment.committed == ()
    assert sorted(uid for uid, _ in commitment.failed) == sorted(ds.SOPInstanceUID for ds in exam.images)
    assert {reason for _, reason in commitment.failed} == {0x0112}


def test_discontinued_sends_the_reason_code_and_no_images(site: Site) -> None:
    result = site.modality.perform(site.modality.query_worklist()[0], outcome="DISCONTINUED")
    assert result.images == 0 and not any(site.received.iterdir())
    mpps = site.scp.mpps.get(result.mpps_uid)
    assert mpps is not None and mpps.status == "DISCONTINUED"
    reason = mpps.dataset.PerformedProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (reason.CodeValue, reason.CodingSchemeDesignator) == ("110514", "DCM")
    again = site.modality.mpps_start(site.modality.query_worklist()[0])  # a retry: new MPPS UID
    assert again.mpps_uid != result.mpps_uid


def test_bad_config_is_refused() -> None:
    with pytest.raises(ConfigError):
        ModalityConfig(modality="PET")
    with pytest.raises(ConfigError):
        ModalityConfig(store=("127.0.0.1", 0, "X"))
    with pytest.raises(ConfigError, match="no worklist peer"):
        Modality(ModalityConfig(), events=EventBus()).query_worklist()
