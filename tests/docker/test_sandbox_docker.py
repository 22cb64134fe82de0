"""``pacsim sandbox up --runtime docker``: the training hospital with every actor in a container.

One bounded sandbox at 60x into an Orthanc container, driven from the command line and
the trainer API as a trainer would: about ten simulated minutes of arrivals plus two
named pathways, status (with Orthanc's web interface on its published 127.0.0.1 port),
a catalogue fault injected into a modality container, a reset, and ``sandbox down``.
What is checked comes back over the wire: the trainer API's answers, a C-FIND on the
Orthanc container for the named patient's study, Orthanc's own web UI and REST API,
and afterwards the engine itself: no container or network with the run's label.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


from tests.helpers import eventually
from simulators.dicom.address import AeAddress
from simulators.events import EventBus
from simulators.runtime.engine import RUN_LABEL, remove_by_label
from simulators.site.site import QUERY_AE
from simulators.dicom.qrscu import QrClient

ROOT = Path(__file__).resolve().parents[2]
SITE = """\
environment:
  seed: 9
  target: orthanc
  actors:
    ehr: {kind: ehr}
    ris: {kind: ris, ae_title: DK_RIS}
    ct1: {kind: modality, modality: CT, ae_title: DK_CT1, station: CT1}
    cr1: {kind: modality, modality: CR, ae_title: DK_CR1, station: CR1}
"""
RUN_ID = re.compile(r"docker run ([0-9a-z-]+)\)")
#: Simulated seconds the sandbox runs before the trainer's checks (10 minutes).
SIMULATED = 600




class _Up:
    """``pacsim sandbox up`` in the background, its output collected."""

    def __init__(self, site: Path, state: Path) -> None:
        self.state = state
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "sandbox", "up", str(site), "--runtime",
             "docker", "--pace", "60x", "--seed", "4", "--state", str(state)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def run_id(self) -> str | None:
        found = RUN_ID.search(self.output)
        return found.group(1) if found else None


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "sandbox", *args,
                           "--state", str(state)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _status(state: Path) -> dict[str, Any]:
    done = _cli(state, "status", "--json", "-")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _api(state: Path, route: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    base = json.loads(state.read_text())["api"]
    request = urllib.request.Request(base + route, data=json.dumps(body).encode(),
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _leftovers(docker: Any, run_id: str) -> tuple[list[Any], list[Any]]:
    selector = {"label": f"{RUN_LABEL}={run_id}"}
    return (docker.containers.list(all=True, filters=selector),
            docker.networks.list(filters=selector))


def test_a_sandbox_in_containers_runs_resets_and_leaves_nothing_behind(docker, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    state = tmp_path / "sandbox.json"
    up = _Up(site, state)
    run_id: str | None = None
    try:
        eventually(lambda: state.exists() or up.process.poll() is not None, 240,
                   "the state file", step=0.5)
        assert up.process.poll() is None, up.output[-3000:]
        run_id = eventually(up.run_id, 10, "the run id in the output")
        running = {c.labels.get("org.pacsim.actor") for c in _leftovers(docker, run_id)[0]}
        assert running == {"orthanc", "ris", "ehr", "ct1", "cr1"}

        # Two named pathways (the trainer's button) next to the day's own arrivals.
        code, emergency = _api(state, "/pathways", {"pathway": "emergency",
                                                    "patient": "Trauma Trainee", "modality": "CT"})
        assert code == 200, emergency
        code, inpatient = _api(state, "/pathways", {"pathway": "inpatient",
                                                    "patient": "Ward Trainee", "modality": "CR"})
        assert code == 200, inpatient

        status = eventually(lambda: (s := _status(state))["sim_elapsed_s"] >= SIMULATED
                        and s["pathways"]["totals"]["completed"] >= 2 and s, 150,
                        f"{SIMULATED} simulated seconds and two completed pathways")
        assert status["pace"] == "60x", status
        recent = {r["id"]: r for r in status["recent"]}
        for started in (emergency, inpatient):
            assert recent[started["id"]]["state"] == "completed", recent[started["id"]]["error"]
        # The inpatient pathway ends with an ORU the EHR container acknowledged.
        assert status["reports_received_by_ehr"] >= 1
        assert status["exchanges"]["dicom.c-store"]["count"] >= 4

        # Trainees use Orthanc's own web interface, published on this machine.
        target = status["target"]
        assert target["kind"] == "orthanc" and target["host"] == "127.0.0.1"
        assert target["capabilities"]["mpps"]["served_by"] == "ris"  # probed: no MPPS SCP
        web_ui = target["web_ui"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/app/explorer\.html", web_ui), web_ui
        with urllib.request.urlopen(web_ui, timeout=10) as answer:
            assert answer.status == 200
        peer = AeAddress(ae_title=target["ae_title"], host=target["host"], port=target["port"])
        client = QrClient(peer, QUERY_AE, EventBus(), "test")
        for started in (emergency, inpatient):
            found_status, found = client.find("STUDY", {"PatientID": started["patient_id"]})
            assert found_status == 0 and len(found) == 1, started

        # A catalogue fault goes into the CT container; an unknown one is refused there.
        code, fault = _api(state, "/faults", {"modality": "CT1", "fault": "mpps.orphan"})
        assert (code, fault["faults"], fault["ae_title"]) == (200, ["mpps.orphan"], "DK_CT1")
        code, refused = _api(state, "/faults", {"modality": "ct1", "fault": "no.such-fault"})
        assert code == 400 and refused["error"]["type"] == "ConfigError"
        assert "no.such-fault" in refused["error"]["message"]

        before = status["epoch"]
        reset = _cli(state, "reset")
        assert reset.returncode == 0 and f"epoch {before} -> " in reset.stdout, reset.stderr
        after = _status(state)
        assert after["epoch"] != before and after["pathways"]["totals"]["completed"] == 0
        assert after["sim_elapsed_s"] < SIMULATED

        down = _cli(state, "down")
        assert down.returncode == 0, down.stderr
        assert up.process.wait(90) == 0, up.output[-3000:]
        assert not state.exists()
        assert _leftovers(docker, run_id) == ([], [])
    finally:
        if up.process.poll() is None:
            up.process.terminate()
            try:
                up.process.wait(60)
            except subprocess.TimeoutExpired:
                up.process.kill()
                up.process.wait(10)
        run_id = run_id or up.run_id()
        if run_id:
            remove_by_label(docker, run_id)


def test_the_sandbox_refuses_an_unknown_runtime(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "sandbox", "up", str(site),
                           "--runtime", "podman"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "podman" in done.stderr
