"""The load engine against real servers on loopback: exact counts, percentiles of known
delays, association rejects by reason, the loopback rule, stored images equal to their
reference builds (DCMTK storescp), worklist polls counted against wlmscpfs."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import subprocess
import threading
import time
from pathlib import Path

import numpy
import pydicom

import pytest
from pynetdicom import evt
from pynetdicom.sop_class import Verification

from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, make_ae
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.dicom.worklist import build_worklist_item
from simulators.load import (
    LoadEngine, LoadProfile, LoadTarget, fleet_members, load_dict, run_load,
)
from simulators.load.engine import ORDER_BASE
from simulators.load.images import StudyImages
from simulators.load.operations import PATIENT_POOL
from simulators.load.profile import Images
from simulators.peers.dcmtk import dcmtk_server
from simulators.world.context import StudyContext
from simulators.world.world import World
from tests.helpers import RecordedEvents, free_port, require_tool, start_server

#: 60% of requests answered after 20 ms, 30% after 60 ms, 10% after 200 ms (cycled).
DELAYS = [0.02] * 6 + [0.06] * 3 + [0.2]


class DelayedEchoServer:
    """A pynetdicom Verification SCP that answers request k after DELAYS[k % 10]."""

    def __init__(self, max_associations: int = 50) -> None:
        self._counter = itertools.count()
        self._lock = threading.Lock()
        ae = make_ae(AeSettings(ae_title="DELAYED", maximum_associations=max_associations))
        ae.add_supported_context(Verification)
        self.server = start_server(ae, "127.0.0.1", 0, [(evt.EVT_C_ECHO, self._on_echo)])
        self.peer = AeAddress(ae_title="DELAYED", host="127.0.0.1",
                              port=self.server.server_address[1])
        self.answered = 0

    def _on_echo(self, event: object) -> int:
        with self._lock:
            delay = DELAYS[next(self._counter) % len(DELAYS)]
        time.sleep(delay)
        with self._lock:
            self.answered += 1
        return 0x0000

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def delayed() -> DelayedEchoServer:
    server = DelayedEchoServer()
    yield server
    server.close()


def echo_profile(operations: int, modalities: int = 10, **extra: object) -> LoadProfile:
    return LoadProfile.model_validate({
        "modalities": {"count": modalities, "mix": {"CT": 1}},
        "stages": [{"duration": "20s", "target": modalities, "ramp": "0s"}],
        "every_modality": [{"do": "echo", "think": 0}],
        "max_operations": operations, "grace": "20s", "timeout": "10s",
        "report": {"live": True}, **extra})


def test_counts_exact_and_percentiles_match_injected_delays(delayed: DelayedEchoServer,
                                                           event_bus: RecordedEvents) -> None:
    """No upper bound on any latency: a busy machine only adds to them. What is exact:
    the figures are the order statistics of exactly the C-ECHO durations that crossed
    the test's own bus (numpy's interpolation as the reference), and every answer took
    at least its injected delay, so the k-th fastest sample is at least the k-th
    smallest delay; no sample outlasts the run that measured it."""
    console = io.StringIO()
    run = run_load(echo_profile(200), LoadTarget(store=delayed.peer), world=World(1),
                   live=console, events=event_bus.bus)
    ops = run.stats.operations(run.duration)
    assert delayed.answered == 200
    assert run.operations_started == 200 and run.interrupted == 0
    assert run.stopped_early.startswith("max_operations")
    for name in ("echo", "dicom.c-echo", "dicom.associate", "dicom.release"):
        assert ops[name]["count"] == 200, name
        assert ops[name]["errors"] == 0, name
    wire = ops["dicom.c-echo"]
    samples = sorted(e.duration for e in event_bus.events if e.kind == "dicom.c-echo")
    assert len(samples) == 200
    assert sorted(run.stats.series("dicom.c-echo").latencies) == samples
    for p in (50, 95, 99):
        assert wire[f"p{p}_ms"] == pytest.approx(numpy.percentile(samples, p) * 1000, abs=1e-3)
    assert wire["max_ms"] == pytest.approx(samples[-1] * 1000, abs=1e-3)
    injected = sorted(DELAYS[k % len(DELAYS)] for k in range(200))
    assert all(sample >= delay for sample, delay in zip(samples, injected)), \
        [(round(s, 4), d) for s, d in zip(samples, injected) if s < d]
    assert samples[-1] <= run.duration
    # Sorted delays: 120 x 20 ms, 60 x 60 ms, 20 x 200 ms, so p50 >= 20 ms and p95, p99
    # and max >= 200 ms: the slow tail is the injected 200 ms.
    assert wire["p50_ms"] >= 20 and wire["p95_ms"] >= 200, wire
    assert wire["p99_ms"] >= 200 and wire["max_ms"] >= 200, wire
    assert ops["echo"]["p50_ms"] >= wire["p50_ms"]  # the operation spans the association
    assert "load: done" in console.getvalue()


def test_association_limit_rejects_are_counted_by_reason() -> None:
    server = DelayedEchoServer(max_associations=2)
    try:
        run = run_load(echo_profile(60, modalities=12), LoadTarget(store=server.peer),
                       world=World(1))
    finally:
        server.close()
    ops = run.stats.operations(run.duration)
    assert ops["echo"]["count"] == 60
    rejected = ops["echo"]["errors"]
    assert rejected > 0 and server.answered == 60 - rejected
    assert ops["echo"]["errors_by_reason"] == {
        "rejected: transient, local limit exceeded": rejected}
    assert ops["dicom.associate"]["errors"] == rejected
    report = load_dict(run)
    assert report["operations"]["echo"]["errors"] == rejected


def test_thresholds_decide_the_verdict(delayed: DelayedEchoServer) -> None:
    """Both verdicts are forced, neither by this machine's speed: p95 is at least the
    200 ms injected into every tenth answer, over its 50ms limit; p50 cannot exceed
    the profile's 10 s operation timeout, under its 30s limit."""
    profile = echo_profile(40, thresholds={"dicom.c-echo": {"p50": "30s", "p95": "50ms"},
                                           "echo": {"errors": "0%", "min_count": 40}})
    run = run_load(profile, LoadTarget(store=delayed.peer), world=World(1))
    verdicts = {t["name"]: t["passed"] for t in load_dict(run)["thresholds"]}
    assert verdicts == {"dicom.c-echo p50": True, "dicom.c-echo p95": False,
                        "echo errors": True, "echo count": True}


def test_workers_merge_every_event(delayed: DelayedEchoServer) -> None:
    """The merged samples keep each worker's durations: each answer's at least its
    injected delay, none longer than the run that collected them, and the max is the
    largest of them (no upper bound in seconds: a busy machine only adds)."""
    run = run_load(echo_profile(60, workers=2), LoadTarget(store=delayed.peer), world=World(1))
    assert run.workers == 2
    ops = run.stats.operations(run.duration)
    assert ops["echo"]["count"] == 60 == ops["dicom.c-echo"]["count"] == delayed.answered
    samples = sorted(run.stats.series("dicom.c-echo").latencies)
    injected = sorted(DELAYS[k % len(DELAYS)] for k in range(60))
    assert len(samples) == 60 and all(s >= d for s, d in zip(samples, injected)), samples
    assert samples[-1] <= run.duration
    assert ops["dicom.c-echo"]["max_ms"] == pytest.approx(samples[-1] * 1000, abs=1e-3)
    assert ops["dicom.c-echo"]["max_ms"] >= 200


def test_non_loopback_target_is_refused_before_any_traffic() -> None:
    outside = LoadTarget(store=AeAddress(ae_title="PACS", host="192.0.2.10", port=104))
    with pytest.raises(ConfigError, match="not on loopback"):
        LoadEngine(echo_profile(1), outside, world=World(1), events=EventBus())
    allowed_by_profile_only = echo_profile(1, allow_external=True)
    with pytest.raises(ConfigError, match="not on loopback"):
        run_load(allowed_by_profile_only, outside, world=World(1))
    with pytest.raises(ConfigError, match="not on loopback"):
        run_load(echo_profile(1), outside, world=World(1), allow_external=True)


def store_profile(modalities: int, images: dict[str, int]) -> LoadProfile:
    return LoadProfile.model_validate({
        "modalities": {"count": modalities, "mix": {"CT": 1, "MR": 1}},
        "stages": [{"duration": "30s", "target": modalities, "ramp": "0s"}],
        "every_modality": [{"do": "store", "think": 0, "images": images}],
        "max_operations": modalities, "grace": "30s", "timeout": "20s",
        "report": {"live": False}})


@pytest.mark.dciodvfy
@pytest.mark.dcmtk
def test_stored_studies_arrive_exact_and_valid(tmp_path: Path) -> None:
    """Images sent from templates are the world's images: every received file equals
    its reference build (identity included) and passes dciodvfy."""
    require_tool("storescp")
    received, port = tmp_path / "out", free_port()
    received.mkdir()
    shape = {"series": 2, "per_series": 3, "rows": 64, "cols": 48}
    profile = store_profile(2, shape)
    world = World(3, non_ascii=0.5)
    with dcmtk_server(["storescp", "-aet", "STORESCP", "-od", str(received)], port):
        store = AeAddress(ae_title="STORESCP", host="127.0.0.1", port=port)
        run = run_load(profile, LoadTarget(store=store),
                       world=world)
    ops = run.stats.operations(run.duration)
    assert ops["store"]["count"] == 2 and ops["store"]["errors"] == 0
    assert ops["dicom.c-store"]["count"] == 12 and ops["dicom.c-store"]["errors"] == 0
    assert run.prepare["image_shapes"] == 2  # CT and MR templates recorded before the start
    files = sorted(received.iterdir())
    got = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, files)}
    assert len(got) == 12
    reference: dict[str, object] = {}
    images = StudyImages()
    members = {m.ae_title: m for m in fleet_members(profile.modalities)}
    for study_uid in {ds.StudyInstanceUID for ds in got.values()}:
        sample = next(ds for ds in got.values() if ds.StudyInstanceUID == study_uid)
        member = members[sample.StationName]
        started = dt.datetime.strptime(sample.PerformedProcedureStepStartDate
                                       + sample.PerformedProcedureStepStartTime, "%Y%m%d%H%M%S")
        for index in (ORDER_BASE, ORDER_BASE + 1):  # the two orders the run numbered
            ctx = StudyContext.unscheduled(world.patient(index % PATIENT_POOL), world,
                                           member.modality, station_name=member.ae_title,
                                           index=index, performed_start=started)
            if ctx.study_uid == study_uid:
                reference.update((ds.SOPInstanceUID, ds)
                                 for ds in images.study(ctx, Images(**shape)))
    for uid, ds in got.items():  # pixels come from a per-modality template: size only
        expected = reference[uid]
        assert len(ds.PixelData) == len(expected.PixelData) == 64 * 48 * 2
        del ds.PixelData, expected.PixelData
        assert ds == expected, uid
    assert len({ds.StudyInstanceUID for ds in got.values()}) == 2
    require_tool("dciodvfy")
    result = subprocess.run(["dciodvfy", str(files[0])], capture_output=True, text=True,
                            timeout=60, check=False)
    assert [line for line in (result.stdout + result.stderr).splitlines()
            if line.startswith("Error")] == []


@pytest.mark.dcmtk
def test_worklist_polls_count_matches_against_wlmscpfs(tmp_path: Path) -> None:
    require_tool("wlmscpfs")
    folder = tmp_path / "WLM"
    folder.mkdir()
    (folder / "lockfile").touch()
    world = World(4)
    for index in range(30):
        order = world.order(world.patient(index), "CT", station_ae="BROAD",
                            station_name="BROAD", index=index)
        item = build_worklist_item(order)
        item.SpecificCharacterSet = "ISO_IR 192"
        item.save_as(folder / f"item{index}.wl", implicit_vr=False, little_endian=True)
    profile = LoadProfile.model_validate({
        "modalities": {"count": 20, "mix": {"CT": 1}},
        "stages": [{"duration": "30s", "target": 20, "ramp": "0s"}],
        "every_modality": [{"do": "mwl.query", "think": 0,
                            "match": {"ScheduledStationAETitle": "BROAD"}}],
        "max_operations": 20, "grace": "30s", "timeout": "20s", "report": {"live": False}})
    events = EventBus()
    polls: list = []
    events.subscribe(lambda e: polls.append(e) if e.kind == "load.mwl.query" else None)
    port = free_port()
    with dcmtk_server(["wlmscpfs", "-dfp", str(tmp_path)], port):
        worklist = AeAddress(ae_title="WLM", host="127.0.0.1", port=port)
        run = run_load(profile, LoadTarget(worklist=worklist),
                       world=World(1), events=events)
    ops = run.stats.operations(run.duration)
    assert ops["mwl.query"]["count"] == 20 and ops["mwl.query"]["errors"] == 0
    assert [e.detail["matches"] for e in polls] == [30] * 20
