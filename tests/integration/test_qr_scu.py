"""The one Q/R SCU against real acceptors: kept associations, results, events, timeouts.

``QrClient`` replaced four clients; what each of them relied on is checked here on
real associations: the migration's kept associations (C-FIND, C-MOVE), the
C-GET bytes as received, several studies moved as one exchange with summed counts,
and a retrieve that outlives its timeout reported so the probes count a timeout.
"""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest
from pydicom.dataset import Dataset

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.fast.server import FastServer, ServerSettings, SupportedContext
from simulators.dicom.qrscu import QrClient
from simulators.errors import ProtocolError
from simulators.events import EventBus, Exchange
from simulators.kpi.result import TIMEOUT
from simulators.kpi.runner import ProbeRunner
from simulators.kpi.target import ProbeTarget
from simulators.world.context import StudyContext
from simulators.world.images import build_study
from simulators.world.world import World

STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def _studies(count: int) -> list[list[Dataset]]:
    world = World(21)
    return [build_study(StudyContext.from_order(
        world.order(world.patient(index), "CT", station_ae="CT1", station_name="CT1",
                    index=index), world), series=1, per_series=2) for index in range(count)]


@pytest.fixture
def events() -> list[Exchange]:
    return []


@pytest.fixture
def archive(events: list[Exchange]) -> Iterator[tuple[Archive, AeAddress, list[list[Dataset]]]]:
    bus = EventBus()
    bus.subscribe(events.append)
    with Archive(ArchiveConfig(name="pacs"), events=bus) as pacs, \
            Archive(ArchiveConfig(name="dest", ae_title="DEST"), events=bus) as dest:
        pacs.config.destinations["DEST"] = ("127.0.0.1", dest.port)
        peer = AeAddress(ae_title=pacs.config.ae_title, host="127.0.0.1", port=pacs.port)
        studies = _studies(3)
        assert QrClient(peer, "LOADER", bus, "loader").store(
            [ds for study in studies for ds in study]) == [0] * 6
        yield pacs, peer, studies


def test_a_kept_client_reuses_one_association_per_kind(archive, events) -> None:
    _, peer, studies = archive
    bus = EventBus()
    bus.subscribe(events.append)
    sop_class = str(studies[0][0].SOPClassUID)
    with QrClient(peer, "MIGRATOR", bus, "migrator", keep_open=True) as client:
        for study in studies:
            uid = str(study[0].StudyInstanceUID)
            match = {"StudyInstanceUID": uid, "SeriesInstanceUID": str(study[0].SeriesInstanceUID)}
            assert len(client.find_matches("IMAGE", match)) == 2
            fetched = client.get({"StudyInstanceUID": uid}, [sop_class], keep=True)
            assert fetched.ok and len(fetched.instances) == 2 == fetched.received
            assert all(item.data for item in fetched.instances)
            assert client.move({"StudyInstanceUID": uid}, "DEST").completed == 2
    opened = [e for e in events if e.kind == "dicom.associate" and e.actor == "migrator"]
    assert len(opened) == 1, "one kept fast-client association for every C-FIND"
    gets = {e.peer for e in events if e.kind == "dicom.c-get" and e.actor == "pacs"}
    moves = {e.peer for e in events if e.kind == "dicom.c-move" and e.actor == "pacs"}
    assert len(moves) == 1, "one kept association for every C-MOVE"
    assert len(gets) == 3, "each C-GET on its own association (idle pynetdicom ones poll)"
    mine = [e for e in events if e.actor == "migrator" and e.kind in ("dicom.c-get",
                                                                       "dicom.c-move")]
    assert len(mine) == 6 and all(e.outcome == "ok" for e in mine)


def test_several_studies_move_as_one_exchange_with_summed_counts(archive, events) -> None:
    _, peer, studies = archive
    bus = EventBus()
    bus.subscribe(events.append)
    result = QrClient(peer, "VIEWER", bus, "viewer").move_studies(
        [str(study[0].StudyInstanceUID) for study in studies], "DEST")
    assert (result.status, result.completed, result.failed) == (0, 6, 0)
    assert result.summary() == {"status": "success", "completed": 6, "failed": 0,
                                "warning": 0}
    (event,) = [e for e in events if e.kind == "dicom.c-move" and e.actor == "viewer"]
    assert (event.status, event.detail["completed"], event.detail["destination"]) == \
        ("0x0000", 6, "DEST")


def test_an_unknown_destination_is_a_failed_retrieve_not_an_exception(archive) -> None:
    _, peer, studies = archive
    result = QrClient(peer, "VIEWER").move({"StudyInstanceUID": str(
        studies[0][0].StudyInstanceUID)}, "NOBODY")
    assert result.status == 0xA801 and not result.ok


def test_a_hierarchical_image_query_finds_its_studies_first(archive) -> None:
    _, peer, studies = archive
    accession = str(studies[1][0].AccessionNumber)
    status, images = QrClient(peer, "VIEWER").find("IMAGE", {"AccessionNumber": accession})
    assert status == 0 and {str(ds.SOPInstanceUID) for ds in images} == \
        {str(ds.SOPInstanceUID) for ds in studies[1]}
    with pytest.raises(ProtocolError, match="not a DICOM attribute keyword"):
        QrClient(peer, "VIEWER").find("STUDY", {"NoSuchKeyword": "x"})


def test_a_retrieve_that_outlives_its_timeout_is_a_probe_timeout() -> None:
    async def never_answers_in_time(request: object) -> int:
        await asyncio.sleep(3)
        return 0x0000

    settings = ServerSettings(ae_title="SLOW", contexts=(
        SupportedContext(STUDY_ROOT_GET, ("1.2.840.10008.1.2",)),))
    server = FastServer(settings, {"C-GET": never_answers_in_time}, actor="slow")
    server.start()
    try:
        target = ProbeTarget("slow", AeAddress(ae_title="SLOW", host="127.0.0.1",
                                               port=server.port), timeout=1.0)
        (result,) = ProbeRunner(target, probes=["load_cget"]).run_cycle()
    finally:
        server.stop()
    assert result.outcome == TIMEOUT, result.error
    assert "timed out" in result.error
