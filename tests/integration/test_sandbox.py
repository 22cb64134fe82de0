"""The sandbox on real sockets: pacing, the trainer API, the CLI lifecycle, flat memory.

Everything talks over loopback: HL7 over MLLP between EHR and RIS, DICOM between the
modalities, the RIS and the built-in target, JSON over HTTP to the trainer API. What
the tests check comes back over the wire: C-FIND on the target, the API's answers,
the CLI's exit codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from simulators.events import EventBus
from simulators.sandbox.api import TrainerApi
from simulators.sandbox.clock import SimClock
from simulators.cli.sandbox import load_environment, refuse_if_running
from simulators.sandbox.sandbox import Sandbox
from simulators.site.site import QUERY_AE
from simulators.dicom.address import AeAddress
from simulators.dicom.qrscu import QrClient
from tests.helpers import RecordedEvents, eventually

ROOT = Path(__file__).resolve().parents[2]
TRAINING_SITE = ROOT / "scenarios" / "sites" / "training-hospital.yaml"
SMALL_SITE = """
environment:
  seed: 5
  target: builtin
  actors:
    ehr: {kind: ehr}
    ris: {kind: ris, ae_title: SBX_RIS}
    ct1: {kind: modality, modality: CT, ae_title: SBX_CT1, station: CT1}
    cr1: {kind: modality, modality: CR, ae_title: SBX_CR1, station: CR1}
"""




# ---------------------------------------------------------------------- pacing
class FakeWall:
    """A wall clock the test moves by hand: SimClock's injected ``wall`` source."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Waiter:
    """``clock.wait_until(target)`` in a thread; ``done`` is set when it returns."""

    def __init__(self, clock: SimClock, target: float) -> None:
        self.done, self.result = threading.Event(), None

        def wait() -> None:
            self.result = clock.wait_until(target)
            self.done.set()

        threading.Thread(target=wait, daemon=True).start()


def test_at_60x_simulated_minutes_take_wall_seconds() -> None:
    """On an injected wall clock the pace is exact, and a wait ends when (and only when)
    the wall reaches its simulated target. The real clock keeps a lower bound only: a
    busy machine may wake a waiter late, never early."""
    wall = FakeWall()
    clock = SimClock(60, wall=wall)
    waiter = Waiter(clock, 3 * 60)  # 3 simulated minutes: 3 wall seconds
    wall.now += 1.5
    assert clock.now() == 90
    assert not waiter.done.wait(0.3)  # half-way: still waiting
    wall.now += 1.5
    assert waiter.done.wait(10) and waiter.result is True
    assert clock.now() == 180

    real = SimClock(60)
    began, sim_began = time.monotonic(), real.now()
    assert real.wait_until(sim_began + 60)  # 1 simulated minute
    assert time.monotonic() - began >= 0.95
    assert real.now() - sim_began >= 60


def test_a_pace_change_shortens_a_wait_already_running() -> None:
    """A wait begun at 60x for 630 simulated seconds (10.5 wall seconds) ends after 1.5
    wall seconds when the pace turns 600x after the first 0.5: on an injected wall
    clock, exactly then, and not at 1.0 (330 s), nor would it at 60x (90 s)."""
    wall = FakeWall()
    clock = SimClock(60, wall=wall)
    waiter = Waiter(clock, 630)
    wall.now += 0.5
    assert clock.now() == 30
    clock.set_speed("600x")
    assert clock.now() == 30  # re-anchored: simulated time does not jump
    wall.now += 0.5
    assert clock.now() == 330
    assert not waiter.done.wait(0.3)
    wall.now += 0.5
    assert waiter.done.wait(10) and waiter.result is True
    assert clock.now() == 630


# ---------------------------------------------------------------------- trainer API
def _http(api: TrainerApi, method: str, route: str, body: Any = None,
          raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    host, port = api.address
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://{host}:{port}{route}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def sandbox(tmp_path: Path, event_bus: RecordedEvents) -> Any:
    """A small sandbox at 600x on the test's own bus, with its trainer API."""
    site = tmp_path / "site.yaml"
    site.write_text(SMALL_SITE, encoding="utf-8")
    box = Sandbox(load_environment(site), pace=600, seed=3, events=event_bus.bus)
    box.start()
    api = TrainerApi(box).start()
    try:
        yield box, api
    finally:
        api.stop()
        box.stop()


def _studies_of(box: Sandbox, patient_id: str) -> list[Any]:
    client = QrClient(box.site.require_target().dicom, QUERY_AE, EventBus(), "test")
    status, found = client.find("STUDY", {"PatientID": patient_id})
    assert status == 0
    return found


def _recent(api: TrainerApi, run_id: int) -> dict[str, Any] | None:
    _, status = _http(api, "GET", "/status")
    return next((r for r in status["recent"] if r["id"] == run_id), None)


def test_trainer_starts_a_pathway_for_a_named_patient(sandbox: Any) -> None:
    box, api = sandbox
    assert _http(api, "POST", "/rate", {"factor": 0}) == (200, {"rate_factor": 0.0})
    code, started = _http(api, "POST", "/pathways", {"pathway": "routine",
                                                     "patient": "Mrs Training Smith",
                                                     "modality": "CT"})
    assert code == 200 and started["patient_id"].startswith(f"SBX{box.epoch.tag}-")
    done = eventually(lambda: _recent(api, started["id"]), 60, "the routine pathway to end")
    assert done["state"] == "completed", done["error"]
    assert done["outcome"] == {"mpps": "COMPLETED: success", "report_ack": "AA"}
    studies = eventually(lambda: _studies_of(box, started["patient_id"]), 20, "the study")
    assert len(studies) == 1
    assert str(studies[0].PatientName) == "ZZTRAIN-SMITH^Mrs Training"
    assert str(studies[0].AccessionNumber) == done["accession"]
    assert int(studies[0].NumberOfStudyRelatedInstances) == 2
    _, status = _http(api, "GET", "/status")
    assert status["reports_received_by_ehr"] >= 1
    assert status["pathways"]["by_pathway"]["routine"]["completed"] >= 1


def test_an_injected_fault_shows_in_the_modalitys_traffic(sandbox: Any,
                                                         event_bus: RecordedEvents) -> None:
    box, api = sandbox
    _http(api, "POST", "/rate", {"factor": 0})
    mark = len(event_bus.events)  # what the test's own pathway does comes after this
    code, answer = _http(api, "POST", "/faults", {"modality": "CT1",
                                                  "fault": "mpps.create-not-in-progress"})
    assert (code, answer["faults"]) == (200, ["mpps.create-not-in-progress"])
    _, started = _http(api, "POST", "/pathways", {"pathway": "routine", "modality": "CT"})
    done = eventually(lambda: _recent(api, started["id"]), 60, "the faulted pathway to end")
    assert done["state"] == "failed" and "MPPS" in done["error"]
    creates = [e for e in event_bus.events[mark:]
               if e.kind == "dicom.n-create" and e.actor == "ct1"]
    assert creates and creates[-1].status not in ("", "0x0000"), creates[-1]
    assert box.modality_actor("ct1").faults.fired[-1][1] == "mpps.create-not-in-progress"
    # Clearing the fault brings the room back.
    assert _http(api, "POST", "/faults", {"modality": "ct1", "fault": None})[1]["faults"] == []


def test_bad_requests_get_4xx_and_the_api_lives_on(sandbox: Any) -> None:
    _, api = sandbox
    assert _http(api, "POST", "/faults", {"modality": "CT1", "fault": "no.such"})[0] == 400
    assert _http(api, "POST", "/faults", {"modality": "XX9", "fault": "mpps.orphan"})[0] == 400
    assert _http(api, "POST", "/pace", {"pace": "fast"})[0] == 400
    assert _http(api, "POST", "/rate", {"factor": "lots"})[0] == 400
    assert _http(api, "POST", "/pathways", {"pathway": "teleport"})[0] == 400
    assert _http(api, "POST", "/pathways", raw=b"{not json")[0] == 400
    assert _http(api, "POST", "/nowhere", {})[0] == 404
    assert _http(api, "POST", "/pace", {"pace": "10x"}) == (200, {"pace": "10x"})
    assert _http(api, "GET", "/status")[1]["pace"] == "10x"


# ---------------------------------------------------------------------- the CLI
def _pacsim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _cli_status(state: Path) -> dict[str, Any]:
    result = _pacsim("sandbox", "status", "--json", "-", "--state", str(state))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_one_hour_at_60x_through_the_cli(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "sandbox", "up", str(TRAINING_SITE),
         "--target", "builtin", "--pace", "60x", "--duration", "1h", "--seed", "4",
         "--state", str(state)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        eventually(state.exists, 180, "the state file")  # start-up on a loaded machine
        # Busier than a quiet morning so a minute of wall time completes several pathways.
        api = json.loads(state.read_text())["api"]
        urllib.request.urlopen(urllib.request.Request(
            api + "/rate", data=json.dumps({"factor": 3}).encode(), method="POST"), timeout=10)
        first = eventually(lambda: (s := _cli_status(state))["pathways"]["totals"]["completed"] >= 3
                       and s, 50, "three completed pathways")
        epoch = first["epoch"]
        old_ids = {i for r in first["recent"] for i in r["identifiers"]}
        reported = [r for r in first["recent"] if r["outcome"].get("report_ack")]
        assert reported and first["reports_received_by_ehr"] >= len(reported)
        target = first["target"]
        client = QrClient(AeAddress(ae_title=target["ae_title"], host=target["host"],
                                    port=target["port"]), QUERY_AE, EventBus(), "test")
        for run in reported:
            assert run["outcome"]["mpps"] == "COMPLETED: success"
            status, found = client.find("STUDY", {"AccessionNumber": run["accession"]})
            assert status == 0 and len(found) == 1
            assert str(found[0].PatientID) == run["patient_id"]

        result = _pacsim("sandbox", "reset", "--state", str(state))
        assert result.returncode == 0, result.stderr
        after = _cli_status(state)
        assert after["epoch"] != epoch
        assert after["pathways"]["totals"]["completed"] == 0 and after["recent"] == []
        second = eventually(lambda: (s := _cli_status(state))["pathways"]["totals"]["completed"] >= 1
                        and s, 50, "a pathway of the new epoch")
        new_ids = {i for r in second["recent"] for i in r["identifiers"]}
        assert new_ids and not new_ids & old_ids
        assert all(i.startswith(("SBX" + second["epoch"], "1.2.826.0.1.3680043.10.1011.7."))
                   for i in new_ids)

        result = _pacsim("sandbox", "down", "--state", str(state))
        assert result.returncode == 0, result.stderr
        assert process.wait(timeout=60) == 0
        assert not state.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_status_without_a_running_sandbox_is_a_clear_error(tmp_path: Path) -> None:
    result = _pacsim("sandbox", "status", "--state", str(tmp_path / "none.json"))
    assert result.returncode == 2 and "no running sandbox" in result.stderr


# ---------------------------------------------------------------------- flat memory
def test_memory_stays_flat_as_pathways_complete() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.sandbox_day", "--pace", "600", "--hours", "1.5",
         "--start", "08:00", "--rate", "4", "--every", "15", "--json", "--max-wall", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) >= 4, result.stdout
    warm, last = lines[1], lines[-1]
    completed = last["completed"] - warm["completed"]
    assert completed >= 20, lines
    grown = last["rss_mb"] - warm["rss_mb"]
    # Forgotten pathways cost nothing; what remains is the RIS's and archive's own
    # records of each study (a few kB) and allocator noise. 300 kB per pathway would
    # mean something keeps whole pathways or images.
    assert grown <= 5.0 + 0.3 * completed, lines


# ---------------------------------------------------------------------- a whole hour on Orthanc
@pytest.mark.orthanc
@pytest.mark.slow
def test_a_whole_simulated_hour_at_60x_into_orthanc(tmp_path: Path) -> None:
    """The CI hour: one simulated hour at 60x runs to its end by itself (about a minute of
    wall time) into a real Orthanc, whose own web UI trainees use and which holds the
    studies the pathways sent."""
    from tests.helpers import require_tool

    require_tool("Orthanc")
    state = tmp_path / "sandbox.json"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "sandbox", "up", str(TRAINING_SITE),
         "--target", "orthanc", "--pace", "60x", "--duration", "1h", "--seed", "11",
         "--state", str(state)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        eventually(state.exists, 180, "the state file")  # Orthanc start-up on a loaded machine
        status = eventually(lambda: (s := _cli_status(state))["pathways"]["totals"]["completed"] >= 2
                        and s, 60, "two completed pathways")
        web_ui = status["target"]["web_ui"]
        assert status["target"]["kind"] == "orthanc" and web_ui
        with urllib.request.urlopen(web_ui, timeout=10) as answer:
            assert answer.status == 200
        rest = web_ui.split("/app/")[0]
        with urllib.request.urlopen(rest + "/studies", timeout=10) as answer:
            assert len(json.loads(answer.read())) >= 1
        output, _ = process.communicate(timeout=150)  # a hang fails here
        wall = time.monotonic() - started
        assert process.returncode == 0, output
        assert "simulated duration reached" in output  # it ended by its own clock
        # 60 simulated minutes at 60x take at least about 60 s; no ceiling (the pace
        # itself is checked exactly on an injected clock above).
        assert wall >= 50, wall
        assert not state.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_a_second_up_is_refused_and_leaves_the_first_ones_state(tmp_path: Path) -> None:
    """Issue 18: `sandbox up` twice with one state file: the second exits 2 naming the
    running one, and the first keeps its state file (status still reaches it)."""
    state = tmp_path / "sandbox.json"
    site = tmp_path / "small.yaml"
    site.write_text(SMALL_SITE, encoding="utf-8")
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "sandbox", "up", str(site), "--pace", "60x",
         "--state", str(state)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        eventually(state.exists, 60, "the state file")
        before = state.read_text()
        second = _pacsim("sandbox", "up", str(site), "--state", str(state))
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"pid {first.pid}" in second.stderr and "already running" in second.stderr
        assert state.read_text() == before  # the first one's state is untouched
        assert _cli_status(state)["pace"] == "60x"  # and it is still reachable
    finally:
        _pacsim("sandbox", "down", "--state", str(state))
        first.wait(60)
    assert not state.exists()
    # a state file whose process is gone is stale: `up` may replace it
    state.write_text(json.dumps({"api": "http://127.0.0.1:9", "pid": 2 ** 22 + 7}))
    refuse_if_running(state)
