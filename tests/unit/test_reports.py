"""Reports: console text, JSON round trip, JUnit XML and the self-contained HTML timeline."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from simulators.events import Exchange
from simulators.reports import (
    read_json, render_console, render_html, render_json, render_junit, write_html, write_json,
    write_junit,
)
from simulators.scenario import load_scenario, run_scenario
from simulators.scenario.results import ExpectationResult, RunResult, StepResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"
T0 = 1_700_000_000.0


@pytest.fixture
def result() -> RunResult:
    """A run with every status, a failing expectation, events and hostile text."""
    echo = Exchange(kind="dicom.c-store", actor="ct1", peer="TARGET", start=T0 + 0.2,
                    duration=0.05, outcome="failed", status="0xA700", bytes=512,
                    step="Store <images>")
    steps = [
        StepResult("Patient is admitted", "hl7.admit", started=T0, duration=0.1, expectations=[
            ExpectationResult("ack", "AA", "AA", True, "as expected")],
            events=[Exchange("hl7.send", "ehr", "ris", T0 + 0.01, 0.02, "ok", "AA", 300,
                             "Patient is admitted")]),
        StepResult("Store <images>", "modality.store", status="failed", started=T0 + 0.15,
                   duration=0.2, message="store.failed: expected 0, saw 1", expectations=[
                       ExpectationResult("store.completed", 2, 2, True, "as expected"),
                       ExpectationResult("store.failed", 0, 1, False, "expected 0, saw 1")],
                   events=[echo], notes=["name was <script>alert(1)</script> & co"]),
        StepResult("MPPS completed", "mpps.complete", status="unsupported", started=T0 + 0.4,
                   message="not supported by target: mpps"),
        StepResult("Target holds the study", "target.find", status="skipped", started=T0 + 0.4,
                   message="skipped: an earlier step did not pass"),
        StepResult("Both rooms", "parallel", status="error", started=T0 + 0.4, duration=0.3,
                   message="1 of 2 parallel steps did not pass: room 2", children=[
                       StepResult("room 1", "wait", started=T0 + 0.4, duration=0.1),
                       StepResult("room 2", "modality.perform", status="error",
                                  started=T0 + 0.4, duration=0.3,
                                  message="association rejected (peer=127.0.0.1:104)")]),
        StepResult("Collect logs", "note", phase="finally", started=T0 + 0.8, duration=0.01,
                   notes=["done"]),
    ]
    return RunResult("CT chest <scheduled>", "scenarios/ct.yaml", T0, 1.0, steps)


def test_console_report_reads_like_a_uat_sheet(result: RunResult) -> None:
    text = render_console(result)
    assert "Scenario: CT chest <scheduled>  (scenarios/ct.yaml)" in text
    assert "Result:   FAILED  (2 passed, 1 failed, 1 error, 1 unsupported, 1 skipped)  in 1.00s" \
        in text
    lines = text.splitlines()
    assert any(line.strip().startswith("PASS") and "Patient is admitted" in line for line in lines)
    assert any(line.strip().startswith("FAIL") and "Store <images>" in line for line in lines)
    assert any(line.strip().startswith("N/A") and "MPPS completed" in line for line in lines)
    assert "NOT store.failed: expected 0, seen 1" in text
    assert "ok  ack: expected AA, seen AA" in text
    assert "not supported by target: mpps" in text
    assert "Finally:" in text and "1 exchange(s)" in text
    assert any(line.strip().startswith("ERROR") and "5.2. room 2" in line for line in lines)


def test_json_round_trips(result: RunResult, tmp_path: Path) -> None:
    path = write_json(result, tmp_path / "out" / "report.json")
    document = json.loads(path.read_text())
    assert document["format"] == "pacsim-report" and document["version"] == 1
    assert document["passed"] is False
    run = document["runs"][0]
    assert sorted(run) == ["capabilities", "duration", "environment_error",
                           "events_outside_steps", "file", "interrupted", "passed", "scenario",
                           "seed", "started", "steps", "target_address", "target_kind",
                           "warnings"]
    assert run["interrupted"] is False  # true only when SIGINT/SIGTERM cut the run short
    assert document["verdict"] == "FAIL"
    assert sorted(document["header"]) == ["capabilities", "command_line", "ended", "host",
                                          "pacsim_version", "seed", "started", "supports",
                                          "target_address", "target_kind"]
    assert run["steps"][1]["events"][0]["status"] == "0xA700"
    assert read_json(path) == [result]                      # dataclass equality, all fields
    assert render_json(read_json(path)) == path.read_text()


def test_junit_has_one_testcase_per_expectation(result: RunResult, tmp_path: Path) -> None:
    root = ET.parse(write_junit([result], tmp_path / "junit.xml")).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "CT chest <scheduled>"
    cases = suite.findall("testcase")
    names = [case.get("name") for case in cases]
    assert names == ["Patient is admitted :: ack", "Store <images> :: store.completed",
                     "Store <images> :: store.failed", "MPPS completed",
                     "Target holds the study", "Both rooms / room 1", "Both rooms / room 2",
                     "Both rooms", "Collect logs"]
    assert {case.get("classname") for case in cases} == {"CT chest <scheduled>"}
    failure = cases[2].find("failure")
    assert failure is not None and failure.get("message") == "expected 0, saw 1"
    assert "expected: 0" in (failure.text or "") and "seen:     1" in (failure.text or "")
    assert cases[3].find("skipped").get("message") == "not supported by target: mpps"
    assert cases[6].find("error").get("message").startswith("association rejected")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("9", "1", "2", "2")
    assert root.get("tests") == "9"


def test_junit_survives_control_characters(result: RunResult) -> None:
    result.steps[1].expectations[1].message = "peer sent \x00\x07 garbage"
    root = ET.fromstring(render_junit(result).encode())
    assert "garbage" in root.find("testsuite").findall("testcase")[2].find("failure").get("message")


def test_html_is_self_contained_escaped_and_lists_every_step(result: RunResult,
                                                             tmp_path: Path) -> None:
    html = write_html(result, tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    for step in result.all_steps():
        assert step.name.replace("<", "&lt;").replace(">", "&gt;") in html
    assert "<script" not in html                      # the note's markup stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<svg" in html and html.count("<rect") == len(list(result.all_steps()))
    assert "dicom.c-store" in html and "0xA700" in html
    for external in ("<link", "src=", "@import", "url("):
        assert external not in html
    # links stay inside the page (failures index, scenario table): nothing to fetch
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(href.startswith("#") for href in hrefs)
    # the failing step is indexed before any step section, with a working anchor
    index = html.index('class="failures"')
    assert index < html.index('class="step"')
    anchors = re.findall(r'<nav class="failures".*?</nav>', html)[0]
    for href in re.findall(r'href="#([^"]*)"', anchors):
        assert f'id="{href}"' in html
    assert "<details><summary>" in html                # exchanges collapse


def test_environment_error_appears_in_every_report() -> None:
    broken = RunResult("unreachable", None, T0, 0.1,
                       environment_error="cannot start the environment: connection refused")
    assert broken.exit_code == 2
    assert "ENVIRONMENT ERROR" in render_console(broken)
    case = ET.fromstring(render_junit(broken)).find("testsuite/testcase")
    assert case.get("name") == "environment" and case.find("error") is not None
    assert "connection refused" in render_html(broken)


def test_reports_of_a_real_run() -> None:
    run = run_scenario(load_scenario(FIXTURES / "generic.yaml"))
    assert run.passed
    text = render_console(run)
    verdicts = [line.split()[0] for line in text.splitlines() if line.startswith("  ")
                and line.split()[0] in ("PASS", "FAIL", "ERROR", "SKIP", "N/A")]
    assert verdicts == ["PASS"] * 7                     # 5 steps + 2 nested waits
    root = ET.fromstring(render_junit(run))
    assert root.get("failures") == "0" and root.get("tests") == "6"
    assert read_json(json.loads(render_json(run))) == [run]
