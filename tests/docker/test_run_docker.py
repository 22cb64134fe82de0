"""``pacsim run --runtime docker``: every actor in its own container, steps unchanged.

The golden-path CT scenario from the library runs with each actor (EHR, RIS, six
modalities, the viewer) in its own container against the built-in target container
and against the Orthanc container, and so does the tablet UAT (a viewer container
reading the target by DICOMweb over the private network); a failing run and a Ctrl-C (SIGINT to the CLI,
during start-up and during a step) leave no container or network behind, checked by
the run's label (SIGTERM, as a CI timeout sends, too). Needs the images built from this checkout (``--control-port``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from simulators.events import Exchange
from simulators.runtime.docker import list_states
from simulators.runtime.engine import RUN_LABEL
from simulators.scenario import load_scenario
from simulators.runtime.sites import open_site
from simulators.scenario.environment import SITE_KEY
from simulators.site.site import Site, patient_resolver
from simulators.scenario.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "scenarios" / "golden-path-ct.yaml"
TABLET = ROOT / "scenarios" / "uat-referring-physician-tablet.yaml"
GOLDEN_ACTORS = {"ehr", "ris", "ct1", "mr1", "cr1", "dx1", "mg1", "us1", "reading1"}
RUN_ID = re.compile(r"as run ([0-9a-f]+)")

SMALL = """\
pacsim: 1
name: Docker runtime check
environment:
  seed: 7
  target: builtin
  actors:
    ehr: {kind: ehr}
    ris: {kind: ris, ae_title: GH_RIS}
    ct1: {kind: modality, modality: CT, ae_title: CT_ROOM1, station: CT1}
steps:
  - name: Patient is admitted
    do: hl7.admit
    patient: $patient0
    expect: {ack: AA}
%s
"""
FAILING_STEP = """\
  - name: Two items on an empty worklist (fails on purpose)
    do: mwl.query
    by: ct1
    expect: {count: 2}
"""
LONG_STEP = """\
  - name: A long pause to interrupt
    do: wait
    duration: 120s
"""


def _leftovers(docker: Any, run_id: str) -> tuple[list[Any], list[Any]]:
    selector = {"label": f"{RUN_LABEL}={run_id}"}
    return (docker.containers.list(all=True, filters=selector),
            docker.networks.list(filters=selector))


def _run_in_containers(docker: Any, target: str, path: Path = GOLDEN
                       ) -> tuple[Any, Site, dict[str, Any]]:
    """A library scenario (the golden path) with runtime docker; also what ran where,
    seen during the run."""
    scenario = load_scenario(path).with_environment(target=target)
    sites: list[Site] = []
    running: dict[str, Any] = {}

    def snapshot(_event: Exchange) -> None:  # once, from inside the run
        if not running and sites and sites[0].run_id:
            running.update({s.actor: s for s in list_states(docker, sites[0].run_id)})

    def factory(environment: Any, events: Any) -> dict[str, Any]:
        events.subscribe(snapshot)
        sites.append(open_site(environment, events, "docker"))
        return {SITE_KEY: sites[0]}

    result = run_scenario(scenario, actors_factory=factory,
                          resolver=patient_resolver(scenario.environment))
    return result, sites[0], running


def _steps(result: Any) -> dict[str, str]:
    return {step.name: step.status for step in result.steps}


def test_golden_path_with_every_actor_in_a_container_against_the_builtin_target(docker):
    result, site, running = _run_in_containers(docker, "builtin")
    assert result.environment_error is None, result.environment_error
    assert set(_steps(result).values()) == {"passed"}, _steps(result)
    assert result.exit_code == 0
    assert set(running) == GOLDEN_ACTORS | {"target"}
    assert all(s.status == "running" and s.health == "healthy" for s in running.values())
    # The exchanges happened in the containers and came back to this bus for the report.
    store = next(s for s in result.steps if s.name == "Images are stored in the target")
    stored = [e for e in store.events if e.kind == "dicom.c-store" and e.actor == "ct1"]
    assert len(stored) == 4 and {e.status for e in stored} == {"0x0000"}
    assert _leftovers(docker, site.run_id) == ([], [])


def test_golden_path_with_every_actor_in_a_container_against_orthanc(docker):
    result, site, running = _run_in_containers(docker, "orthanc")
    assert result.environment_error is None, result.environment_error
    statuses = _steps(result)
    # Orthanc has no MPPS: the running container was probed, and MPPS went to the RIS
    # container as the plan wired it (issue 17: it used to be N/A).
    assert set(statuses.values()) == {"passed"}, statuses
    learned = site.capabilities.capability("mpps")
    assert (learned.supported, learned.source) == (False, "negotiated")
    assert site.capabilities.route("mpps").to == "ris"
    assert set(running) == GOLDEN_ACTORS | {"orthanc"}
    assert running["orthanc"].kind == "orthanc"
    assert _leftovers(docker, site.run_id) == ([], [])


@pytest.mark.parametrize("target, web_port", [("builtin", 8080), ("orthanc", 8042)])
def test_the_tablet_uat_runs_with_the_viewer_in_its_container(docker, target, web_port):
    """The viewer container searches (QIDO-RS) and loads (WADO-RS) from the target by the
    network's name and in-network port, and the physician's timings come back."""
    result, site, running = _run_in_containers(docker, target, TABLET)
    assert result.environment_error is None, result.environment_error
    assert set(_steps(result).values()) == {"passed"}, _steps(result)
    assert result.exit_code == 0
    assert running["tablet"].kind == "viewer" and running["reading1"].kind == "viewer"
    opened = next(s for s in result.steps if s.do == "viewer.open_study")
    seen = {e.name: e.seen for e in opened.expectations}
    assert (seen["instances"], seen["status"], seen["studies"]) == (3, "success", 1), seen
    web = [e for e in opened.events if e.actor == "tablet"
           and e.kind in ("dicomweb.qido", "dicomweb.wado")]
    service = "target" if target == "builtin" else "orthanc"
    assert {e.kind for e in web} == {"dicomweb.qido", "dicomweb.wado"}
    assert all(e.peer == f"{service}:{web_port}" for e in web), {e.peer for e in web}
    assert sum(e.bytes for e in web if e.kind == "dicomweb.wado") > 0
    assert _leftovers(docker, site.run_id) == ([], [])


class _Cli:
    """``pacsim -v run --runtime docker FILE`` as a child process, its output collected."""

    def __init__(self, scenario: Path) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "-v", "run", "--runtime", "docker",
             str(scenario)], cwd=ROOT, env=os.environ.copy(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if any(text in line for line in self.lines):
                return
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"never saw {text!r}:\n{''.join(self.lines)[-3000:]}")

    @property
    def run_id(self) -> str:
        found = RUN_ID.search("".join(self.lines))
        assert found, "".join(self.lines)[-2000:]
        return found.group(1)

    def finish(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"pacsim run did not end:\n{''.join(self.lines)[-3000:]}")
        self._reader.join(5)
        return code

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def test_a_failing_run_exits_1_and_removes_every_container_and_network(docker, tmp_path):
    scenario = tmp_path / "failing.yaml"
    scenario.write_text(SMALL % FAILING_STEP, encoding="utf-8")
    cli = _Cli(scenario)
    code = cli.finish(240)
    output = "".join(cli.lines)
    assert code == 1, output[-3000:]
    assert "FAIL" in output and "count: expected 2, seen 0" in output
    assert _leftovers(docker, cli.run_id) == ([], [])


@pytest.mark.parametrize("moment, wait_for, signum", [
    ("while containers start", "docker: started ris", signal.SIGINT),
    ("while a step runs", "every container healthy", signal.SIGINT),
    ("on SIGTERM while a step runs", "every container healthy", signal.SIGTERM),
])
def test_ctrl_c_removes_every_container_and_network(docker, tmp_path, moment, wait_for, signum):
    scenario = tmp_path / "long.yaml"
    scenario.write_text(SMALL % LONG_STEP, encoding="utf-8")
    cli = _Cli(scenario)
    cli.wait_for(wait_for, 180)
    run_id = cli.run_id
    if "step" in moment:
        time.sleep(1.0)  # the admit step is done in well under a second: now in the wait
        containers, _ = _leftovers(docker, run_id)
        assert len(containers) == 4  # ehr, ris, ct1 and the target, all up
    cli.process.send_signal(signum)
    code = cli.finish(90)
    assert code == 130, "".join(cli.lines)[-3000:]
    assert _leftovers(docker, run_id) == ([], []), moment


@pytest.mark.parametrize("name", ["unscheduled-emergency-exam.yaml",
                                  "uat-ct-chest-with-priors.yaml"])
def test_library_scenarios_that_need_in_network_addresses_pass_in_containers(docker, name):
    """The unscheduled exam's MPPS N-CREATE leaves from the modality's container (its RIS
    is a container-network name), and a viewer's container is a C-MOVE destination like an
    archive: both passed in-process only before."""
    result, site, _running = _run_in_containers(docker, "builtin", ROOT / "scenarios" / name)
    assert result.environment_error is None, result.environment_error
    assert set(_steps(result).values()) == {"passed"}, _steps(result)
    assert _leftovers(docker, site.run_id) == ([], [])
