"""The viewer actor loading real studies over real sockets: built-in archive and Orthanc.

Each load method (WADO-RS, C-MOVE to the viewer's own storage SCP, C-GET) must
bring every image of the study, report bytes and a first-image time no later
than the whole load, and emit its exchange events. ``viewer.priors`` runs in a
scenario with a legacy archive actor whose store was filled beforehand.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest
from pydicom.dataset import Dataset

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.viewer import Viewer, ViewerConfig, ViewerSource
from simulators.dicom.address import AeAddress
from simulators.dicom.fast import FastClient
from simulators.dicom.store import DicomStore
from simulators.events import EventBus, Exchange
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.scenario import load_scenario
from simulators.scenario.environment import run_in_environment
from simulators.world.context import StudyContext
from simulators.world.images import build_study
from simulators.world.world import World
from tests.helpers import require_tool
from tests.integration.test_scenarios import explain

SEED = 42


def _study(index: int, *, years_back: int = 0, series: int = 2, per_series: int = 3,
           patient: int = 0) -> list[Dataset]:
    world = World(SEED)
    start = dt.datetime.now().replace(microsecond=0) - dt.timedelta(days=365 * years_back)
    order = world.order(world.patient(patient), "CT", station_ae="CT1", station_name="CT1",
                        index=index, start=start)
    return build_study(StudyContext.from_order(order, world), series=series,
                       per_series=per_series)


def _c_store(host: str, port: int, called: str, datasets: list[Dataset]) -> None:
    contexts = [(sop, ["1.2.840.10008.1.2.1"]) for sop in
                dict.fromkeys(str(ds.SOPClassUID) for ds in datasets)]
    with FastClient(actor="loader") as client:
        client.connect(host, port, "LOADER", called, contexts)
        assert client.store_many(datasets) == [0] * len(datasets)


@pytest.fixture
def events() -> list[Exchange]:
    return []


@pytest.fixture
def viewer(events: list[Exchange]) -> Iterator[Viewer]:
    bus = EventBus()
    bus.subscribe(events.append)
    with Viewer(ViewerConfig(ae_title="TABLET1", timeout=30), events=bus) as started:
        yield started


def _check_load(viewer: Viewer, source: ViewerSource, study: list[Dataset],
                events: list[Exchange]) -> None:
    uid = str(study[0].StudyInstanceUID)
    for via, kind in (("wado", "dicomweb.wado"), ("move", "dicom.c-move"),
                      ("get", "dicom.c-get")):
        timing = viewer.load_study(uid, via, source)
        assert timing.status == "success", (via, timing)
        assert timing.instances == len(study), (via, timing)
        assert timing.bytes > sum(len(ds.PixelData) for ds in study), (via, timing)
        assert timing.first_image_s is not None and 0 <= timing.first_image_s <= timing.total_s
        assert timing.mb_per_s > 0
        mine = [e for e in events if e.kind == kind and e.actor == viewer.name]
        assert mine and mine[-1].outcome == "ok", (via, [(e.kind, e.status) for e in mine])
    received = {s.study_uid: s.instance_count for s in viewer.studies()}
    assert received == {uid: len(study)}  # the C-MOVE landed in the viewer's own store


def test_viewer_on_the_builtin_archive(viewer: Viewer, events: list[Exchange]) -> None:
    study = _study(1)
    other = _study(2, patient=1)
    with Archive(ArchiveConfig(name="target", dicomweb_port=0,
                               destinations={"TABLET1": ("127.0.0.1", viewer.port)}),
                 events=viewer.events) as target:
        _c_store("127.0.0.1", target.port, target.config.ae_title, study + other)
        source = ViewerSource(name="target",
                              dicom=AeAddress(ae_title=target.config.ae_title, host="127.0.0.1",
                                              port=target.port),
                              dicomweb_url=target.dicomweb_url)
        patient_id = str(study[0].PatientID)
        by_qido = viewer.search_studies(source, PatientID=patient_id)
        by_find = viewer.search_studies(source, via="find", PatientID=patient_id)
        assert [s["StudyInstanceUID"] for s in by_qido] == [str(study[0].StudyInstanceUID)]
        assert [s["StudyInstanceUID"] for s in by_find] == [s["StudyInstanceUID"] for s in by_qido]
        assert by_qido[0]["NumberOfStudyRelatedInstances"] == str(len(study))
        _check_load(viewer, source, study, events)
        missing = viewer.load_study("1.2.826.0.1.3680043.10.999.1", "wado", source)
        assert missing.status == "http 404" and missing.instances == 0


@pytest.mark.orthanc
def test_viewer_on_orthanc_dicomweb(viewer: Viewer, events: list[Exchange]) -> None:
    require_tool("Orthanc")
    study = _study(3, series=1, per_series=4)
    settings = OrthancSettings(dicomweb=True,
                               modalities={"TABLET1": ("127.0.0.1", viewer.port),
                                           "LOADER": ("127.0.0.1", 1)})
    with OrthancProcess(settings) as orthanc:
        _c_store("127.0.0.1", orthanc.dicom_port, orthanc.ae_title, study)
        source = ViewerSource(name="orthanc",
                              dicom=AeAddress(ae_title=orthanc.ae_title, host="127.0.0.1",
                                              port=orthanc.dicom_port),
                              dicomweb_url=orthanc.dicomweb_url)
        found = viewer.search_studies(source, PatientID=str(study[0].PatientID))
        assert [s["StudyInstanceUID"] for s in found] == [str(study[0].StudyInstanceUID)]
        _check_load(viewer, source, study, events)


PRIORS_SCENARIO = """
pacsim: 1
name: priors in a parallel archive
description: the viewer finds priors in the target and in the legacy PACS
environment:
  seed: {seed}
  patients: {{walter: 4}}
  actors:
    legacy: {{kind: archive, ae_title: LEGACY_PACS, settings: {{storage_dir: "{legacy}"}}}}
    reading1: {{kind: viewer, ae_title: READ_WS1}}
steps:
  - do: target.seed_priors
    patient: $walter
    studies: 1
    save: {{study_uids: $in_target}}
    expect: {{stored: 2}}
  - do: target.retrieve
    method: move
    match: {{study_uid: $in_target.0}}
    to: legacy
    expect: {{received: 2}}
  - do: viewer.priors
    by: reading1
    patient: $walter
    sources: [target, legacy]
    expect:
      count: 3
      found_in: {{target: 1, legacy: 3}}
      only_in: {{target: 0, legacy: 2}}
      both: 1
"""


def test_priors_are_found_in_whichever_system_holds_them(tmp_path: Path) -> None:
    legacy_dir = tmp_path / "legacy"
    store = DicomStore(legacy_dir)
    try:
        for index, years in ((900, 3), (901, 5)):
            for ds in _study(index, years_back=years, series=1, per_series=1, patient=4):
                outcome = store.put(ds, transfer_syntax=str(ds.file_meta.TransferSyntaxUID))
                assert outcome.ok
    finally:
        store.close()
    path = tmp_path / "priors.yaml"
    path.write_text(PRIORS_SCENARIO.format(seed=SEED, legacy=legacy_dir))
    result = run_in_environment(load_scenario(path), step_timeout=60)
    assert result.exit_code == 0, explain(result)
    priors = result.steps[-1]
    holders = sorted(note.rsplit(": ", 1)[1] for note in priors.notes)
    assert holders == ["legacy", "legacy", "target, legacy"]
    kinds = {e.kind for e in priors.events}
    assert "dicom.c-find" in kinds


def test_priors_expectation_can_fail(tmp_path: Path) -> None:
    text = PRIORS_SCENARIO.format(seed=SEED, legacy=tmp_path / "empty")
    path = tmp_path / "priors.yaml"
    path.write_text(text)
    result = run_in_environment(load_scenario(path), step_timeout=60)
    assert result.exit_code == 1
    failing = [e for e in result.steps[-1].expectations if not e.passed]
    assert {e.name for e in failing} >= {"count", "found_in"}
