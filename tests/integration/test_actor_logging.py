"""Actors tell their story (issue 18): one INFO line per accepted order, MPPS
transition and stored study; pacsim's own health checks never log as refusals."""

from __future__ import annotations

import logging

import pytest

from simulators.actors.ehr import Ehr, EhrConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.events import EventBus
from simulators.hl7.mllp_client import MllpClient
from simulators.runtime.probes import mllp_ping, probe_message
from simulators.scenario.environment import run_in_environment
from simulators.scenario.validate import load_scenario


def test_a_golden_path_logs_order_mpps_and_study_once_each(caplog) -> None:
    caplog.set_level(logging.INFO)
    result = run_in_environment(load_scenario("scenarios/golden-path-cr.yaml"))
    assert result.passed, [(s.name, s.message) for s in result.steps]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    orders = [line for line in lines if line.startswith("accepted order")]
    assert len(orders) == 1 and "XR CHEST 2 VIEWS" in orders[0], orders
    accession = orders[0].split()[2]
    mpps = [line for line in lines if line.startswith("MPPS ")]
    assert len(mpps) == 2 and "IN PROGRESS" in mpps[0] and "COMPLETED" in mpps[1], mpps
    assert all(accession in line for line in mpps), mpps
    studies = [line for line in lines if line.startswith("stored study")]
    # one line for the study (2 images), in the target and nowhere twice
    assert len([s for s in studies if f"accession {accession}" in s]) == 1, studies


@pytest.mark.parametrize("actor", ["ris", "ehr"])
def test_health_checks_are_answered_but_not_logged_as_refusals(actor: str, caplog) -> None:
    caplog.set_level(logging.INFO)
    with (Ris(RisConfig()) if actor == "ris" else Ehr(EhrConfig())) as running:
        host, port = running.hl7_address if actor == "ris" else running.address
        for _ in range(3):
            assert mllp_ping(host, port) in ("AA", "AE", "AR")
        quiet = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO
                 and ("refused" in r.getMessage() or "rejected" in r.getMessage())]
        assert quiet == []
        # the same query from anyone else is still a refusal worth a line
        other = probe_message().replace("PACSIM_PROBE|", "LAB_SYSTEM|", 1)
        with MllpClient(host, port, events=EventBus(), name="lab") as client:
            client.send(other)
    refusals = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO
                and ("refused" in r.getMessage() or "rejected" in r.getMessage())]
    assert len(refusals) == 1, refusals
