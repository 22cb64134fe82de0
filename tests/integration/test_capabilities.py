"""Capabilities probed, not assumed (pacsim issue 17), on real associations.

* the probe records which presentation contexts a real SCP accepts;
* ``pacsim run --target AE@HOST:PORT`` runs against an external system and sends MPPS
  to the RIS when that system does not accept MPPS (to it when it does);
* the UAT scenarios against Orthanc show N/A only for services Orthanc lacks, as an
  independent association (pynetdicom, not pacsim's probe) shows, and that the RIS
  cannot serve instead;
* the sandbox's MPPS pathways and MPPS faults work with Orthanc.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.cli import main
from simulators.dicom.address import AeAddress
from simulators.events import EventBus
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.reports.json_report import read_json
from simulators.sandbox.sandbox import Sandbox
from simulators.scenario import load_scenario
from simulators.scenario.environment import SITE_KEY, run_in_environment
from simulators.scenario.runner import run_scenario
from simulators.scenario.validate import load_environment
from simulators.runtime.sites import open_site
from simulators.peers.process import free_port
from simulators.site.capabilities import DICOM_SERVICES, probe_dicom, probe_dicomweb, probe_hl7
from simulators.site.site import QUERY_AE, patient_resolver
from tests.helpers import RecordedEvents, needs, require_tool, eventually
from tests.integration.test_scenarios import ROOT, explain

GOLDEN_CT = ROOT / "scenarios" / "golden-path-ct.yaml"
UAT = sorted((ROOT / "scenarios").glob("uat-*.yaml"))
#: What the simulated RIS serves in any site: the worklist and MPPS (PPS manager).
SERVED_BY_THE_RIS = {"mwl", "mpps"}




# ---------------------------------------------------------------------- the probe
def test_the_probe_records_what_a_real_scp_accepts() -> None:
    with Archive(ArchiveConfig(name="ext", ae_title="EXT_PACS")) as archive, \
            Ris(RisConfig(name="ris", ae_title="EXT_RIS")) as ris:
        pacs = probe_dicom(AeAddress(ae_title="EXT_PACS", host="127.0.0.1", port=archive.port),
                           calling_ae=QUERY_AE)
        host, port = ris.dicom_address
        order_filler = probe_dicom(AeAddress(ae_title="EXT_RIS", host=host, port=port),
                                   calling_ae=QUERY_AE)
    assert {s for s, c in pacs.items() if c.supported} == {"storage_commitment", "query",
                                                           "move", "get"}
    assert not pacs["mpps"].supported and pacs["mpps"].source == "negotiated"
    assert "rejected Modality Performed Procedure Step" in pacs["mpps"].detail
    assert order_filler["mpps"].supported and order_filler["mwl"].supported
    assert not order_filler["query"].supported


def test_dicomweb_and_hl7_are_asked_on_the_wire() -> None:
    closed = free_port()
    with Archive(ArchiveConfig(name="web", dicomweb_port=0)) as archive, \
            Ris(RisConfig(name="ris")) as ris:
        web = probe_dicomweb(archive.dicomweb_url)
        mllp = probe_hl7(ris.hl7_address)
    assert (web.supported, web.source) == (True, "http") and "HTTP 200" in web.detail
    assert (mllp.supported, mllp.source) == (True, "hl7")
    assert not probe_dicomweb(f"http://127.0.0.1:{closed}/dicom-web").supported
    assert not probe_hl7(("127.0.0.1", closed)).supported
    assert probe_hl7(None).source == probe_dicomweb(None).source == "no-address"


# ---------------------------------------------------------------------- --target AE@HOST:PORT
def _run_cli(tmp_path: Path, *args: str) -> tuple[int, Any]:
    report = tmp_path / "report.json"
    code = main(["run", str(GOLDEN_CT), "--json", str(report), *args])
    [result] = read_json(report)
    return code, result


@pytest.mark.parametrize("archive_mpps", [False, True])
def test_run_against_an_external_ae_sends_mpps_where_it_is_accepted(
        tmp_path: Path, archive_mpps: bool, event_bus: RecordedEvents) -> None:
    """Main refused ``--target AE@HOST:PORT`` and sent MPPS to any external target."""
    with Archive(ArchiveConfig(name="ext", ae_title="EXT_PACS", mpps=archive_mpps),
                 events=event_bus.bus) as archive:
        code, result = _run_cli(tmp_path, "--target", f"EXT_PACS@127.0.0.1:{archive.port}",
                                "--supports", "storage_commitment=no")
    assert code == 0, explain(result)
    by_type = {step.do: step for step in result.steps}
    assert by_type["mpps.start"].status == by_type["mpps.complete"].status == "passed"
    assert by_type["target.find"].status == "passed"  # the study is on the external AE
    by_ris = [e for step in result.steps for e in step.events
              if e.kind == "dicom.n-create" and e.actor == "ris"]
    by_external = [e for e in event_bus.events if e.kind == "dicom.n-create"]
    assert (len(by_external), len(by_ris)) == ((1, 0) if archive_mpps else (0, 1))
    commitment = by_type["commitment.request"]
    assert commitment.status == "unsupported"
    assert "storage_commitment: declared not supported" in commitment.message


def test_run_target_option_refuses_a_malformed_address(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    with pytest.raises(SystemExit) as refused:  # refused while parsing, before any start
        main(["run", str(GOLDEN_CT), "--target", "EXT_PACS@127.0.0.1"])
    assert refused.value.code == 2
    assert "--target: expected AE@HOST:PORT" in capsys.readouterr().err


# ---------------------------------------------------------------------- UAT on Orthanc
def _negotiated_by_orthanc() -> dict[str, bool]:
    """Which service SOP classes an Orthanc like the site's accepts, asked with
    pynetdicom (not pacsim's probe): one association proposing every one of them."""
    settings = OrthancSettings(modalities={QUERY_AE: ("127.0.0.1", 104)}, dicomweb=True)
    with OrthancProcess(settings) as orthanc:
        ae = AE(ae_title=QUERY_AE)
        for uid, _ in DICOM_SERVICES.values():
            ae.add_requested_context(uid)
        assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title="ORTHANC")
        assert assoc.is_established
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        assoc.release()
        ae.shutdown()
    return {service: uid in accepted for service, (uid, _) in DICOM_SERVICES.items()}


@pytest.fixture(scope="module")
@needs("Orthanc")
def orthanc_accepts() -> dict[str, bool]:
    require_tool("Orthanc")
    return _negotiated_by_orthanc()


@pytest.mark.orthanc
@pytest.mark.parametrize("path", UAT, ids=[p.stem for p in UAT])
def test_uat_scenarios_against_orthanc_show_na_only_for_services_orthanc_lacks(
        path: Path, orthanc_accepts: dict[str, bool]) -> None:
    """The issue's "done when": every N/A names a service Orthanc lacks (and the RIS
    cannot serve instead), learned by negotiation, and the site learned what an
    independent association sees."""
    sites: list[Any] = []

    def factory(environment: Any, events: EventBus) -> dict[str, Any]:
        sites.append(open_site(environment, events))
        return {SITE_KEY: sites[0]}

    scenario = load_scenario(path).with_environment(target="orthanc")
    result = run_scenario(scenario, actors_factory=factory, step_timeout=60,
                          resolver=patient_resolver(scenario.environment))
    assert result.environment_error is None, result.environment_error
    assert result.exit_code == 0, explain(result)
    capabilities = sites[0].capabilities
    for service, accepted in orthanc_accepts.items():
        learned = capabilities.capability(service)
        assert (learned.supported, learned.source) == (accepted, "negotiated"), service
    lacking = {s for s, accepted in orthanc_accepts.items() if not accepted}
    assert "mpps" in lacking  # Orthanc 1.10 has no MPPS SCP: the RIS takes it
    only_orthanc_could = lacking - SERVED_BY_THE_RIS
    for step in result.all_steps():
        if step.status != "unsupported":
            continue
        named = {s for s in DICOM_SERVICES if f"lacks {s}:" in step.message}
        assert named and named <= only_orthanc_could, (step.name, step.message)
        assert "association negotiation" in step.message, step.message
    # MPPS reached the RIS whenever a step sent it
    sent = [e for step in result.all_steps() for e in step.events
            if e.kind == "dicom.n-create" and e.actor not in ("ris",)]
    received = [e for step in result.all_steps() for e in step.events
                if e.kind == "dicom.n-create" and e.actor == "ris"]
    assert len(received) == len(sent)


@pytest.mark.orthanc
def test_a_step_is_na_on_orthanc_only_when_the_ris_cannot_stand_in(tmp_path: Path) -> None:
    """With a RIS that takes no MPPS, Orthanc's missing MPPS SCP (learned by
    negotiation) makes the MPPS steps N/A, and the message says so."""
    require_tool("Orthanc")
    path = tmp_path / "no-mpps.yaml"
    path.write_text(
        "pacsim: 1\nname: no MPPS anywhere\nenvironment:\n  target: orthanc\n"
        "  actors:\n    ris: {kind: ris, mpps: false}\n"
        "    ct1: {kind: modality, modality: CT, ae_title: CT1}\n"
        "steps:\n  - {do: hl7.order, patient: $patient0, for: ct1, save: {accession: $acc}}\n"
        "  - {name: start, do: mpps.start, by: ct1, accession: $acc}\n"
        "  - {name: images, do: store.study, by: ct1, exam: $acc, expect: {stored: 2}}\n",
        encoding="utf-8")
    result = run_in_environment(load_scenario(path), step_timeout=60)
    assert result.exit_code == 0, explain(result)
    start = next(s for s in result.steps if s.name == "start")
    assert start.status == "unsupported"
    assert start.message.startswith("not supported by target: target ORTHANC@127.0.0.1:")
    assert "lacks mpps:" in start.message and "association negotiation" in start.message
    assert "the RIS takes no MPPS" in start.message
    assert next(s for s in result.steps if s.name == "images").status == "passed"


# ---------------------------------------------------------------------- sandbox on Orthanc
ORTHANC_SITE = """
environment:
  seed: 5
  target: orthanc
  actors:
    ehr: {kind: ehr}
    ris: {kind: ris, ae_title: SBX_RIS}
    ct1: {kind: modality, modality: CT, ae_title: SBX_CT1, station: CT1}
"""


@pytest.mark.orthanc
def test_sandbox_mpps_pathways_and_faults_work_with_orthanc(
        tmp_path: Path, event_bus: RecordedEvents) -> None:
    """Main sent no MPPS with an Orthanc target: RIS orders never completed and the
    MPPS fault example did nothing."""
    require_tool("Orthanc")
    site = tmp_path / "site.yaml"
    site.write_text(ORTHANC_SITE, encoding="utf-8")
    with Sandbox(load_environment(site), pace=600, seed=3, events=event_bus.bus) as box:
        box.set_rate(0)  # only the pathways this test starts
        started = box.start_pathway("routine", modality="CT")
        done = eventually(lambda: next((r for r in box.recent if r["id"] == started["id"]), None),
                      90, "the routine pathway")
        assert done["state"] == "completed", done.get("error")
        assert done["outcome"]["mpps"] == "COMPLETED: success"
        assert box.site.ris.order(done["accession"]).step.status == "COMPLETED"
        assert box.status()["target"]["capabilities"]["mpps"]["served_by"] == "ris"

        mark = len(event_bus.events)
        box.inject_fault("CT1", "mpps.create-not-in-progress")
        faulted = box.start_pathway("routine", modality="CT")
        done = eventually(lambda: next((r for r in box.recent if r["id"] == faulted["id"]), None),
                      90, "the faulted pathway")
        assert done["state"] == "failed" and "MPPS" in done["error"], done
        answered = [e for e in event_bus.events[mark:]
                    if e.kind == "dicom.n-create" and e.actor == "ct1"]
        assert answered and answered[-1].status not in ("", "0x0000"), answered
        assert box.modality_actor("ct1").faults.fired[-1][1] == "mpps.create-not-in-progress"


def test_the_json_report_names_how_a_service_was_learned(tmp_path: Path) -> None:
    """An N/A in the report says which service and how it was learned, in words."""
    with Archive(ArchiveConfig(name="ext", ae_title="EXT_PACS")) as archive:
        code, result = _run_cli(tmp_path, "--target", f"EXT_PACS@127.0.0.1:{archive.port}",
                                "--supports", "storage_commitment=no")
    assert code == 0
    data = json.loads((tmp_path / "report.json").read_text())
    messages = [s["message"] for s in data["runs"][0]["steps"] if s["status"] == "unsupported"]
    assert messages == [f"not supported by target: target EXT_PACS@127.0.0.1:{archive.port} "
                        "lacks storage_commitment: declared not supported "
                        "(supports: storage_commitment)"]
