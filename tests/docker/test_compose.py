"""The compose file: rendered from its scenario, valid for docker-compose 1.29, and the
mirrored site brought up with it, all healthy, one study through, then down."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from simulators.actors.ehr import Ehr, EhrConfig
from simulators.runtime.compose import render, write
from simulators.runtime.topology import plan
from simulators.scenario import load_scenario
from simulators.world import World
from tests.docker.scenarios import order_for
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "compose" / "mirrored-site.yaml"
PROJECT = "pacsimdockertest"


def rendered() -> tuple[str, dict[str, str]]:
    return render(plan(load_scenario(SCENARIO).environment), title="compose/mirrored-site.yaml")


def test_checked_in_compose_file_matches_its_scenario():
    text, files = rendered()
    assert (ROOT / "compose" / "docker-compose.yml").read_text() == text
    for relative, content in files.items():
        assert (ROOT / "compose" / relative).read_text() == content, relative


def test_mirrored_site_has_what_the_issue_asks():
    document = yaml.safe_load(rendered()[0])
    services = document["services"]
    assert "version" not in document
    kinds = {name: s["labels"]["org.pacsim.kind"] for name, s in services.items()}
    assert sorted(kinds.values()).count("modality") >= 3
    assert {"orthanc", "ris", "ehr", "archive"} <= set(kinds.values())
    assert services["ct-bad-mpps"]["labels"]["org.pacsim.faults"] == "malformed-mpps-scanner"
    for service in services.values():
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        assert service["healthcheck"]["test"][0] == "CMD"
        for condition in service.get("depends_on", {}).values():
            assert condition == {"condition": "service_healthy"}


def _compose(directory: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", "-p", PROJECT, *args], cwd=directory,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.docker
def test_compose_up_all_healthy_one_study_through_then_down(docker, tmp_path):
    require_tool("docker-compose")
    directory = tmp_path / "site"
    write(plan(load_scenario(SCENARIO).environment), directory / "docker-compose.yml")
    assert _compose(directory, "config", "-q").returncode == 0
    try:
        began = time.monotonic()
        up = _compose(directory, "up", "-d")
        assert up.returncode == 0, up.stderr[-2000:]
        containers = docker.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})
        assert len(containers) == 7
        deadline = time.monotonic() + 120
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            for container in containers:
                container.reload()
            health = {c.labels["org.pacsim.actor"]: c.attrs["State"].get("Health", {}).get("Status", "none")
                      for c in containers}
            if set(health.values()) == {"healthy"}:
                break
            time.sleep(0.5)
        assert set(health.values()) == {"healthy"}, health
        print(f"\ndocker-compose up to all healthy: {time.monotonic() - began:.1f}s")

        by_actor = {c.labels["org.pacsim.actor"]: c for c in containers}
        hl7 = by_actor["ris"].ports["2575/tcp"][0]
        http = by_actor["orthanc"].ports["8042/tcp"][0]
        assert hl7["HostIp"] == http["HostIp"] == "127.0.0.1"
        patient, order = order_for(World(42), 9, index=900, station_ae="MR_ROOM1",
                                   station_name="MR1")
        with Ehr(EhrConfig(ris_host="127.0.0.1", ris_port=int(hl7["HostPort"]))) as ehr:
            assert ehr.admit(patient).code == "AA"
            assert ehr.place_order(order).code == "AA"
        found: list[dict] = []
        deadline = time.monotonic() + 60
        while not found and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{http['HostPort']}/studies?expand",
                                        timeout=10) as reply:
                found = [s for s in json.loads(reply.read())
                         if s["MainDicomTags"].get("AccessionNumber") == order.accession]
            time.sleep(0.5)
        assert found, "no study reached Orthanc through the compose environment"
        assert found[0]["PatientMainDicomTags"]["PatientName"] == patient.dicom_name
    finally:
        down = _compose(directory, "down", "-v", "--timeout", "5")
    assert down.returncode == 0, down.stderr[-2000:]
    assert docker.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"}) == []
    shutil.rmtree(directory, ignore_errors=True)
