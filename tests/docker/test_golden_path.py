"""The golden path with every actor in its own container, against the Orthanc container.

HL7 ADT + ORM go over MLLP into the RIS container; the CT container (unattended,
polling its worklist) performs the exam: MPPS to the RIS, C-STORE to Orthanc; the
study is then checked on Orthanc over DICOM (C-FIND) and its REST API.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from simulators.actors.ehr import Ehr, EhrConfig
from simulators.dicom.address import AeAddress
from simulators.errors import ConfigError
from simulators.runtime.docker import DockerEnvironment, list_states
from simulators.runtime.engine import RUN_LABEL
from simulators.runtime.topology import DICOM_PORT, HL7_PORT, plan
from simulators.scenario.models import Environment
from simulators.testing.clients import PacsimEnvironment, TargetProbe
from simulators.world import World
from tests.docker.scenarios import GOLDEN, golden_environment, order_for


def test_order_to_study_with_every_actor_in_a_container(docker, capsys):
    environment = golden_environment()
    began = time.monotonic()
    with DockerEnvironment(plan(environment), run_id="dockertest-golden", client=docker) as env:
        healthy_after = time.monotonic() - began
        states = {s.actor: s for s in list_states(docker, env.run_id)}
        assert set(states) == {"orthanc", "ris", "ehr", "ct1"}
        assert all(s.health == "healthy" and s.status == "running" for s in states.values())

        world = World(environment.seed)
        patient, order = order_for(world, 2, index=500)
        ris_host, ris_port = env.address("ris", HL7_PORT)
        with Ehr(EhrConfig(ris_host=ris_host, ris_port=ris_port)) as ehr:
            assert ehr.admit(patient).code == "AA"
            assert ehr.place_order(order).code == "AA"

        ris_dicom_host, ris_dicom_port = env.address("ris", DICOM_PORT)
        orthanc_host, orthanc_port = env.address("orthanc", 4242)
        target = TargetProbe(PacsimEnvironment(
            "docker", environment.seed,
            AeAddress(ae_title="PACSIM_RIS", host=ris_dicom_host, port=ris_dicom_port),
            (ris_host, ris_port),
            AeAddress(ae_title="ORTHANC", host=orthanc_host, port=orthanc_port), None, {}))
        study = target.wait_for_study(order.accession, instances=4, timeout=60)
        assert study.PatientID == patient.patient_id
        assert str(study.PatientName) == patient.dicom_name
        assert study.PatientBirthDate == patient.dicom_birth_date
        assert int(study.NumberOfStudyRelatedInstances) == 4

        host, port = env.address("orthanc", 8042)
        with urllib.request.urlopen(f"http://{host}:{port}/studies?expand", timeout=10) as reply:
            studies = json.loads(reply.read())
        assert [s["MainDicomTags"]["AccessionNumber"] for s in studies] == [order.accession]
        assert studies[0]["MainDicomTags"]["StudyInstanceUID"] == str(study.StudyInstanceUID)
        # MPPS went to the RIS (Orthanc has none): the modality logs the exam completed
        # once storage commitment and MPPS COMPLETED are done, shortly after the images.
        ct1 = docker.containers.get("pacsim-dockertest-golden-ct1")
        expected = f"performed {order.accession}: 4 images, MPPS COMPLETED"
        deadline = time.monotonic() + 45
        while expected not in ct1.logs().decode() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert expected in ct1.logs().decode()
    with capsys.disabled():
        print(f"\npacsim up (4 containers) to all healthy: {healthy_after:.1f}s")
    assert docker.containers.list(all=True, filters={"label": f"{RUN_LABEL}=dockertest-golden"}) == []
    assert docker.networks.list(filters={"label": f"{RUN_LABEL}=dockertest-golden"}) == []


def test_ports_are_published_on_loopback_only(docker):
    environment = Environment.model_validate({"target": "builtin", "actors": {}})
    with DockerEnvironment(plan(environment), run_id="dockertest-ports", client=docker):
        container = docker.containers.get("pacsim-dockertest-ports-target")
        bindings = [b for bs in container.attrs["NetworkSettings"]["Ports"].values() if bs
                    for b in bs]
        assert bindings and {b["HostIp"] for b in bindings} == {"127.0.0.1"}


def test_an_actor_that_cannot_start_fails_up_and_leaves_nothing(docker):
    broken = dict(GOLDEN, actors={**GOLDEN["actors"], "ct1": {
        **GOLDEN["actors"]["ct1"], "settings": {"series": 0}}})  # refused by ModalityConfig
    runtime = DockerEnvironment(plan(Environment.model_validate(broken)),
                                run_id="dockertest-broken", client=docker)
    with pytest.raises(ConfigError, match="ct1 is exited") as failure:
        runtime.start(timeout=60)
    assert "series, per_series, rows and cols must be positive" in str(failure.value)
    assert docker.containers.list(all=True, filters={"label": f"{RUN_LABEL}=dockertest-broken"}) == []
