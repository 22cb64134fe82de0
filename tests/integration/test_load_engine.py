"""The load engine against real servers on loopback: exact counts, percentiles of known
delays, association rejects by reason, and the loopback rule."""

from __future__ import annotations

import io
import itertools
import threading
import time

import pytest
from pynetdicom import evt
from pynetdicom.sop_class import Verification

from simulators.dicom.ae import AeSettings, make_ae, start_server
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.load import DicomPeer, LoadEngine, LoadProfile, LoadTarget, load_dict, run_load
from simulators.world.world import World

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
        self.peer = DicomPeer("127.0.0.1", self.server.server_address[1], "DELAYED")
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


def test_counts_exact_and_percentiles_match_injected_delays(delayed: DelayedEchoServer) -> None:
    console = io.StringIO()
    run = run_load(echo_profile(200), LoadTarget(store=delayed.peer), world=World(1),
                   live=console)
    ops = run.stats.operations(run.duration)
    assert delayed.answered == 200
    assert run.operations_started == 200 and run.interrupted == 0
    assert run.stopped_early.startswith("max_operations")
    for name in ("echo", "dicom.c-echo", "dicom.associate", "dicom.release"):
        assert ops[name]["count"] == 200, name
        assert ops[name]["errors"] == 0, name
    wire = ops["dicom.c-echo"]
    # Sorted: 120 x 20 ms, 60 x 60 ms, 20 x 200 ms; p50 -> 20 ms, p95/p99/max -> 200 ms.
    assert 20 <= wire["p50_ms"] < 20 + 40, wire
    assert 200 <= wire["p95_ms"] < 200 + 60, wire
    assert 200 <= wire["p99_ms"] < 200 + 80, wire
    assert 200 <= wire["max_ms"] < 200 + 150, wire
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
    profile = echo_profile(40, thresholds={"dicom.c-echo": {"p50": "1s", "p95": "50ms"},
                                           "echo": {"errors": "0%", "min_count": 40}})
    run = run_load(profile, LoadTarget(store=delayed.peer), world=World(1))
    verdicts = {t["name"]: t["passed"] for t in load_dict(run)["thresholds"]}
    assert verdicts == {"dicom.c-echo p50": True, "dicom.c-echo p95": False,
                        "echo errors": True, "echo count": True}


def test_workers_merge_every_event(delayed: DelayedEchoServer) -> None:
    run = run_load(echo_profile(60, workers=2), LoadTarget(store=delayed.peer), world=World(1))
    assert run.workers == 2
    ops = run.stats.operations(run.duration)
    assert ops["echo"]["count"] == 60 == ops["dicom.c-echo"]["count"] == delayed.answered
    assert 200 <= ops["dicom.c-echo"]["max_ms"] < 400


def test_non_loopback_target_is_refused_before_any_traffic() -> None:
    outside = LoadTarget(store=DicomPeer("192.0.2.10", 104, "PACS"))
    with pytest.raises(ConfigError, match="not on loopback"):
        LoadEngine(echo_profile(1), outside, world=World(1), events=EventBus())
    allowed_by_profile_only = echo_profile(1, allow_external=True)
    with pytest.raises(ConfigError, match="not on loopback"):
        run_load(allowed_by_profile_only, outside, world=World(1))
    with pytest.raises(ConfigError, match="not on loopback"):
        run_load(echo_profile(1), outside, world=World(1), allow_external=True)
