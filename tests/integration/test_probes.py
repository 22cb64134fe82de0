"""Go-live probes over real sockets: the built-in target and RIS, a real reporting peer,
and the failure paths (target down, slow target, wrong called AE).

Every figure asserted here crossed the wire: the bytes an image load counted are
compared with the bytes of the same objects retrieved another way, the worklist
and cancellation are checked in the RIS's order book, the store is read back.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import requests

from simulators.dicom.fast.server import FastServer, ServerSettings, SupportedContext
from simulators.hl7 import messages
from simulators.hl7.mllp_client import MllpClient
from simulators.kpi.canary import CANARY_PATIENT_ID
from simulators.kpi.embedded import ProbeSession, SessionOptions
from simulators.kpi.result import FAIL, OK, SKIPPED, TIMEOUT
from simulators.kpi.runner import PROBES, ProbeRunner
from simulators.kpi.store import ResultStore
from simulators.dicom.address import AeAddress
from simulators.kpi.target import ProbeTarget
from tests.helpers import free_port, require_tool

VERIFICATION = "1.2.840.10008.1.1"


class Radiologist:
    """A reporting peer: reports every canary order the RIS holds with an ORU^R01."""

    def __init__(self, session: ProbeSession) -> None:
        self.session = session
        self.reported: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        host, port = self.session.report_address  # type: ignore[misc]
        with MllpClient(host, port, timeout=5) as client:
            for _ in range(2000):  # bounded: at most ~100 s of 50 ms polls
                if self.stop.wait(0.05):
                    return
                for order in self.session.ris.orders():  # type: ignore[union-attr]
                    if order.patient.patient_id == CANARY_PATIENT_ID and \
                            order.accession not in self.reported:
                        client.send(messages.oru_r01(order, "No acute findings."))
                        self.reported.add(order.accession)

    def __enter__(self) -> "Radiologist":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def builtin(tmp_path):
    with ProbeSession(SessionOptions(timeout=5.0, report_port=0)) as session:
        session.open()
        yield session


def test_every_probe_passes_on_the_builtin_target(builtin: ProbeSession, tmp_path) -> None:
    target = builtin.target
    assert target is not None and target.dicomweb, "the built-in archive serves DICOMweb"
    with ResultStore(tmp_path) as store, Radiologist(builtin) as radiologist:
        runner = ProbeRunner(target, store=store, receiver=builtin.receiver,
                             reports=builtin.reports, images=3, image_size=128)
        began = time.perf_counter()
        results = {r.probe: r for r in runner.run_cycle()}
        cycle = time.perf_counter() - began
        assert [r.probe for r in store.between(0, time.time() + 1)] == list(PROBES)
    assert {name: r.outcome for name, r in results.items()} == {name: OK for name in PROBES}, \
        {name: r.error for name, r in results.items()}
    # Each probe's latency lies inside the cycle that measured it (not under a fixed
    # ceiling: a busy machine makes both longer); wrong units or an epoch would not.
    for result in results.values():
        assert 0 < result.seconds <= cycle, (result.probe, result.seconds, cycle)
    # The three image loads moved the same three objects: C-MOVE and C-GET count the
    # same data set bytes; the WADO-RS body is those objects plus multipart framing.
    move, get, wado = results["load_cmove"], results["load_cget"], results["load_wado"]
    assert move.figures["images"] == get.figures["images"] == 3
    assert move.figures["bytes"] == get.figures["bytes"] > 3 * 128 * 128 * 2
    assert wado.figures["bytes"] > move.figures["bytes"]
    for load in (move, get, wado):
        assert 0 < load.figures["first_byte_seconds"] <= load.seconds
        assert load.figures["mb_per_s"] == pytest.approx(
            load.figures["bytes"] / 1e6 / load.seconds)
    # The report came from the radiologist for this cycle's accession, after the order.
    (accession,) = radiologist.reported
    assert results["order_to_report"].seconds >= results["order_to_worklist"].figures["ack_seconds"]
    # Cleanup: the canary order was cancelled at the RIS, so it left the worklist.
    order = builtin.ris.order(accession)  # type: ignore[union-attr]
    assert order is not None and order.step.status == "DISCONTINUED"
    assert not [item for item in builtin.ris.worklist_items()  # type: ignore[union-attr]
                if item.AccessionNumber == accession]
    # The stored study is the canary's, under its unmistakable identity.
    (study,) = builtin.archive.find_studies(PatientID=CANARY_PATIENT_ID)  # type: ignore[union-attr]
    assert study["PatientName"] == "ZZCANARY^PROBE"


def test_report_turnaround_not_measured_without_a_reporting_peer(tmp_path) -> None:
    with ProbeSession(SessionOptions(timeout=3.0)) as session:
        runner = ProbeRunner(session.open(), probes=["order_to_worklist", "order_to_report"])
        results = {r.probe: r for r in runner.run_cycle()}
    assert results["order_to_worklist"].outcome == OK
    assert results["order_to_report"].outcome == SKIPPED
    assert "not measured" in results["order_to_report"].error


def test_target_down_is_a_recorded_failure(tmp_path) -> None:
    target = ProbeTarget("down", AeAddress(ae_title="NOBODY", host="127.0.0.1", port=free_port()),
                         timeout=2.0)
    with ResultStore(tmp_path) as store:
        runner = ProbeRunner(target, probes=["echo", "store_to_queryable", "load_cget"],
                             store=store)
        results = runner.run_cycle()
        stored = list(store.between(0, time.time() + 1))
    assert [r.outcome for r in results] == [FAIL, FAIL, FAIL]
    assert all("unreachable" in r.error for r in results), [r.error for r in results]
    assert [(r.probe, r.outcome, r.target) for r in stored] == \
        [(r.probe, FAIL, "down") for r in results]


class SlowEchoServer:
    """A Verification SCP (the fast acceptor) that answers each C-ECHO after ``delay``,
    or with ``delay=None`` only once ``release`` is set; ``answered`` is set on answering."""

    def __init__(self, delay: float | None) -> None:
        self.release, self.answered = threading.Event(), threading.Event()

        async def slow_echo(request) -> int:  # noqa: ANN001
            if delay is None:
                await asyncio.to_thread(self.release.wait, 60)
            else:
                await asyncio.sleep(delay)
            self.answered.set()
            return 0x0000
        settings = ServerSettings(ae_title="SLOW", contexts=(
            SupportedContext(VERIFICATION, ("1.2.840.10008.1.2",)),))
        self.server = FastServer(settings, {"C-ECHO": slow_echo}, actor="slow")

    def __enter__(self) -> AeAddress:
        self.server.start()
        return AeAddress(ae_title="SLOW", host="127.0.0.1", port=self.server.port)

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.stop()


def test_slow_target_is_a_timeout() -> None:
    """The target answers only once the test lets it, so a probe that came back before
    that gave up on its own 1 s timeout (no ceiling in seconds needed); it did wait
    about that long (lower bound)."""
    slow = SlowEchoServer(delay=None)
    with slow as peer:
        target = ProbeTarget("slow", peer, timeout=1.0)
        (result,) = ProbeRunner(target, probes=["echo"]).run_cycle()
        assert not slow.answered.is_set()  # the probe returned before any answer existed
    assert result.outcome == TIMEOUT, result.error
    assert result.seconds >= 0.9
    assert "timed out" in result.error


def test_slow_target_within_the_timeout_is_ok_and_measured() -> None:
    """Measured: at least the target's 0.3 s delay, and no more than the cycle that
    measured it (no fixed ceiling: a busy machine makes both longer)."""
    slow = SlowEchoServer(delay=0.3)
    with slow as peer:
        began = time.perf_counter()
        (result,) = ProbeRunner(ProbeTarget("slow", peer, timeout=2.0),
                                probes=["echo"]).run_cycle()
        cycle = time.perf_counter() - began
    assert result.outcome == OK and slow.answered.is_set()
    assert 0.3 <= result.seconds <= cycle


def test_wrong_called_ae_fails_naming_the_rejection(builtin: ProbeSession) -> None:
    real = builtin.target.store  # type: ignore[union-attr]
    target = ProbeTarget("wrong-ae", AeAddress(ae_title="NOT_THE_PACS", host=real.host,
                                               port=real.port), timeout=3.0)
    results = ProbeRunner(target, probes=["echo", "load_cmove", "load_cget"],
                          receiver=builtin.receiver).run_cycle()
    assert [r.outcome for r in results] == [FAIL, FAIL, FAIL]
    echo, *retrieves = results
    assert "rejected: permanent, called AE title not recognised" in echo.error
    # C-MOVE/C-GET associate through pynetdicom's requestor; ``associate`` reports the
    # RJ the peer sent even when pynetdicom's race calls it an abort.
    for result in retrieves:
        assert "rejected: permanent, called AE title not recognised" in result.error, result.error


@pytest.mark.orthanc
def test_orthanc_target_deletes_its_canary(tmp_path) -> None:
    require_tool("Orthanc")
    with ProbeSession(SessionOptions(target="orthanc", timeout=10.0)) as session:
        target = session.open()
        results = {r.probe: r for r in ProbeRunner(
            target, probes=["echo", "store_to_queryable", "load_cmove", "load_cget", "load_wado"],
            receiver=session.receiver).run_cycle()}
        assert all(r.outcome == OK for r in results.values()), \
            {n: r.error for n, r in results.items()}
        assert results["load_cmove"].figures["bytes"] == results["load_cget"].figures["bytes"]
        left = requests.get(f"{target.rest}/studies", timeout=5).json()
    assert left == []
