"""The testcontainers classes and the pytest plugin, as a hospital's suite uses them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from testcontainers.core.network import Network

from simulators.actors.ehr import Ehr, EhrConfig
from simulators.runtime.engine import RUN_LABEL
from simulators.runtime.probes import dicom_echo, mllp_ping
from simulators.testing import (
    EhrContainer, LegacyPacsContainer, ModalityContainer, OrthancContainer, RisContainer,
)
from simulators.world import World
from tests.docker.scenarios import order_for

ROOT = Path(__file__).resolve().parents[2]
RUN = "dockertest-tc"


def test_containers_carry_a_study_from_order_to_orthanc(docker):
    with Network() as network:
        with OrthancContainer(run_id=RUN).with_network(network).with_network_aliases("orthanc") as orthanc, \
             RisContainer(run_id=RUN).with_station("CT", "CT_ROOM1", "CT1") \
                .with_network(network).with_network_aliases("ris") as ris, \
             ModalityContainer(run_id=RUN).with_worklist("PACSIM_RIS@ris:11112") \
                .with_mpps("PACSIM_RIS@ris:11112").with_store("ORTHANC@orthanc:4242") \
                .with_auto_interval(1).with_network(network) as ct:
            # Each accessor points at a live listener on loopback.
            ris_peer, ct_peer = ris.get_dicom_address(), ct.get_dicom_address()
            assert dicom_echo(ris_peer.host, ris_peer.port, ris_peer.ae_title) == 0
            assert dicom_echo(ct_peer.host, ct_peer.port, "CT_ROOM1") == 0
            assert orthanc.get_rest_url().startswith("http://127.0.0.1:")
            patient, order = order_for(World(5), 1, index=700)
            host, port = ris.get_mllp_address()
            with Ehr(EhrConfig(ris_host=host, ris_port=port)) as ehr:
                assert [ehr.admit(patient).code, ehr.place_order(order).code] == ["AA", "AA"]
            studies: list[dict] = []
            deadline = time.monotonic() + 60
            while not studies and time.monotonic() < deadline:
                studies = [
                    s for s in orthanc.rest("/studies?expand")
                    if s["MainDicomTags"].get("AccessionNumber") == order.accession]
                time.sleep(0.5)
            assert studies, "the modality container never stored the study on Orthanc"
            assert studies[0]["PatientMainDicomTags"]["PatientID"] == patient.patient_id
    assert docker.containers.list(all=True, filters={"label": f"{RUN_LABEL}={RUN}"}) == []


def test_ehr_and_legacy_pacs_containers_answer_their_protocols(docker):
    with EhrContainer(run_id=RUN).with_ris("ris") as ehr, \
         LegacyPacsContainer(run_id=RUN, ae_title="OLD_PACS") as legacy:
        # The EHR refuses what is not ORU^R01 with an application reject: it answers.
        assert mllp_ping(*ehr.get_mllp_address()) == "AR"
        peer = legacy.get_dicom_address()
        assert peer.ae_title == "OLD_PACS" and dicom_echo(peer.host, peer.port, peer.ae_title) == 0
        labels = legacy.get_wrapped_container().labels
        assert labels[RUN_LABEL] == RUN and labels["org.pacsim.kind"] == "archive"


def test_pytest_plugin_runs_the_hospital_ci_example_and_writes_junit(docker, tmp_path):
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--junitxml={junit}", "-o", "timeout=240"],
        cwd=ROOT / "examples" / "hospital-ci", env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (int(suite.get("tests")), int(suite.get("failures")), int(suite.get("errors")),
            int(suite.get("skipped"))) == (4, 0, 0, 0)
    # The session removed its containers (label org.pacsim.run=pytest-<id>).
    left = [c.name for c in docker.containers.list(all=True, filters={"label": RUN_LABEL})
            if c.labels.get(RUN_LABEL, "").startswith("pytest-")]
    assert left == []
