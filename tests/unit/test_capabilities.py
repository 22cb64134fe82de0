"""Capabilities: one decision for where MPPS goes and when a step is N/A.

Regression tests for pacsim issue 17: with a target that has no MPPS the in-process
site sent no MPPS at all while ``pacsim up`` sent it to the RIS, and a RIS check was
reported N/A although only the target lacks MPPS. The probe itself is tested on real
associations in tests/integration/test_capabilities.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulators.cli.targets import declared_supports, target_override
from simulators.dicom.address import AeAddress
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.runtime.remote_site import check_plan
from simulators.runtime.topology import plan
from simulators.scenario import StepBase, StepOutcome, default_registry, load_scenario, \
    run_scenario
from simulators.site.capabilities import (
    DICOM_SERVICES, Capabilities, Capability, assumed, learn, not_applicable,
)
from simulators.site.models import Environment
from simulators.site.site import modality_peers

REGISTRY = default_registry.copy()
TARGET = AeAddress(ae_title="PACS", host="pacs.example", port=104)
RIS = AeAddress(ae_title="RIS", host="ris.example", port=11112)


@REGISTRY.step("cap.mpps")
class NeedsMppsStep(StepBase):
    requires = ("mpps",)

    def run(self, ctx: Any) -> StepOutcome:
        return StepOutcome(message="ran")


def negotiated(*rejected: str, ris_mpps: bool = True, declarations: dict[str, bool] | None
               = None) -> Capabilities:
    """Capabilities as a probe that saw ``rejected`` refused would learn them."""
    probed = {s: Capability(s, s not in rejected, "negotiated",
                            f"{TARGET} {'rejected' if s in rejected else 'accepted'} "
                            f"{DICOM_SERVICES[s][1]} in association negotiation")
              for s in DICOM_SERVICES}
    probed["dicomweb"] = Capability("dicomweb", False, "no-address", "no DICOMweb URL")
    probed["hl7"] = Capability("hl7", False, "no-address", "no HL7 address")
    return learn(str(TARGET), probed, declarations or {}, ris_mpps=ris_mpps)


def test_mpps_goes_to_the_ris_when_the_target_rejects_it() -> None:
    capabilities = negotiated("mpps", "mwl")
    route = capabilities.route("mpps")
    assert route.to == "ris"
    assert "rejected Modality Performed Procedure Step" in route.reason
    peers = modality_peers(capabilities, target=TARGET, ris=RIS)
    assert peers == {"worklist": RIS, "mpps": RIS, "store": TARGET, "commitment": TARGET}


def test_mpps_goes_to_the_target_that_accepts_it() -> None:
    peers = modality_peers(negotiated(), target=TARGET, ris=RIS)
    assert peers["mpps"] == TARGET and peers["commitment"] == TARGET


def test_mpps_is_na_only_when_neither_target_nor_ris_takes_it() -> None:
    capabilities = negotiated("mpps", ris_mpps=False)
    [route] = capabilities.unsupported(["mpps"])
    message = not_applicable([route])
    assert message.startswith("not supported by target: target PACS@pacs.example:104 lacks mpps")
    assert "association negotiation" in message and "the RIS takes no MPPS" in message
    assert negotiated("mpps").unsupported(["mpps"]) == []


def test_a_declaration_wins_over_the_probe() -> None:
    capabilities = negotiated(declarations={"storage_commitment": False})
    found = capabilities.capability("storage_commitment")
    assert (found.supported, found.source) == (False, "declared")
    assert capabilities.route("storage_commitment").to is None
    assert "declared not supported" in capabilities.route("storage_commitment").reason


def test_the_container_plan_wires_modalities_as_the_local_site_does() -> None:
    """``pacsim up`` and ``--runtime docker`` use :func:`modality_peers` too."""
    environment = Environment.model_validate({
        "target": {"external": {"dicom": "PACS@pacs.example:104"}},
        "actors": {"ct1": {"kind": "modality", "modality": "CT", "ae_title": "CT1"}}})
    for capabilities in (negotiated("mpps"), negotiated()):
        files = plan(environment, capabilities=capabilities).service("ct1").files
        settings = yaml.safe_load(next(iter(files.values())))
        wanted = modality_peers(capabilities, target=TARGET,
                                ris=AeAddress(ae_title="RIS", host="ris", port=11112))
        for role in ("mpps", "commitment", "worklist", "store"):
            assert AeAddress.from_config(settings[role]) == wanted[role], role


def test_a_plan_for_orthanc_routes_mpps_to_the_ris() -> None:
    topology = plan(Environment(target="orthanc"))
    assert topology.capabilities is not None
    assert topology.capabilities.route("mpps").to == "ris"
    assert topology.capabilities.capability("mpps").source == "assumed"


def test_docker_refuses_a_running_target_that_routes_differently_from_the_plan() -> None:
    planned = assumed("ORTHANC@orthanc:4242", "orthanc", {}, dicomweb=None, hl7=None)
    check_plan(planned, negotiated("mpps", "mwl"))  # same routes: fine
    with pytest.raises(ConfigError, match="wired for mpps -> ris"):
        check_plan(planned, negotiated())


class SiteStandIn:
    """An actor carrying a site's learned capabilities (what the runner reads)."""

    def __init__(self, capabilities: Capabilities) -> None:
        self.capabilities = capabilities

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _run(tmp_path: Path, capabilities: Capabilities) -> Any:
    scenario = load_scenario(tmp_path / "s.yaml", registry=REGISTRY, text=(
        "pacsim: 1\nname: caps\nenvironment: {target: orthanc}\n"
        "steps:\n  - {name: needs mpps, do: cap.mpps}\n"))
    return run_scenario(scenario, actors_factory=lambda env, bus: {
        "@site": SiteStandIn(capabilities)}, events=EventBus())


def test_a_step_needing_mpps_runs_when_the_ris_takes_it(tmp_path: Path) -> None:
    """Main reported it N/A on an Orthanc target although the RIS takes MPPS."""
    result = _run(tmp_path, negotiated("mpps"))
    assert result.steps[0].status == "passed", result.steps[0].message


def test_a_step_is_na_with_the_service_and_how_it_was_learned(tmp_path: Path) -> None:
    step = _run(tmp_path, negotiated("mpps", ris_mpps=False)).steps[0]
    assert step.status == "unsupported"
    assert "lacks mpps" in step.message and "association negotiation" in step.message


def test_cli_target_takes_an_ae_address_and_external_endpoints() -> None:
    args = argparse.Namespace(target="PACS@10.0.0.5:104", hl7="10.0.0.5:2575",
                              dicomweb="http://10.0.0.5:8080/dicom-web",
                              supports=["mpps=no", "dicomweb=yes"])
    assert target_override(args) == {"external": {
        "dicom": "PACS@10.0.0.5:104", "hl7": "10.0.0.5:2575",
        "dicomweb": "http://10.0.0.5:8080/dicom-web"}}
    assert declared_supports(args) == {"mpps": False, "dicomweb": True}
    with pytest.raises(ConfigError, match="--target"):
        target_override(argparse.Namespace(target="PACS@host", hl7=None, dicomweb=None))
    with pytest.raises(ConfigError, match="--supports"):
        declared_supports(argparse.Namespace(supports=["mppps=no"]))
    with pytest.raises(ConfigError, match="external target"):
        target_override(argparse.Namespace(target="orthanc", hl7="h:1", dicomweb=None))
