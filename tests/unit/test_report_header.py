"""The shared report header and banner (simulators.common.header), and the scenario
reports' summary line and plain-words values: what every report opens with."""

from __future__ import annotations

import json
import re
import socket

from simulators.common.formatting import plain
from simulators.faults import matrix
from simulators.faults.probes_assoc import context_words
from simulators.injection.catalogue import select
from simulators.injection.model import CONFORMANT, NON_CONFORMANT, NOT_SUPPORTED, Outcome
from simulators.common.header import (
    HEADER_FIELDS, RunHeader, banner_html, command_line, failures_index_html, header_html,
    iso_time, page_top, pacsim_version, supports_summary,
)
from simulators.reports.common import header_of, summary_line, verdict_of
from simulators.scenario.results import RunResult, StepResult

CAPABILITIES = {
    "storage": {"supported": True, "source": "negotiated", "detail": "", "served_by": "target"},
    "mpps": {"supported": False, "source": "negotiated", "detail": "", "served_by": "ris"},
    "hl7": {"supported": False, "source": "no-address", "detail": "", "served_by": None},
}


def test_header_defaults_describe_this_process() -> None:
    header = RunHeader(target_kind="orthanc", target_address="ORTHANC@127.0.0.1:4242")
    assert header.host == socket.gethostname()
    assert header.pacsim_version == pacsim_version() != ""
    assert header.command_line.startswith("pacsim")


def test_command_line_replaces_the_script_path_and_quotes_arguments() -> None:
    assert command_line(["/venv/bin/pacsim", "run", "a b.yaml", "--seed", "3"]) == \
        "pacsim run 'a b.yaml' --seed 3"
    assert command_line([]) == "pacsim"


def test_iso_time_is_utc_with_seconds() -> None:
    assert iso_time(0) == "" and iso_time(None) == ""
    assert iso_time(1_767_225_600.7) == "2026-01-01T00:00:00Z"


def test_supports_summary_names_target_ris_and_missing_services() -> None:
    assert supports_summary(CAPABILITIES) == \
        "target: storage; by the RIS: mpps; not supported: hl7"
    assert supports_summary(None) == ""
    header = RunHeader(capabilities=CAPABILITIES)
    assert header.supports.startswith("target: storage")


def test_as_dict_round_trips_and_has_every_field() -> None:
    header = RunHeader(target_kind="external", target_address="PACS@10.0.0.5:104", seed=7,
                       capabilities=CAPABILITIES, started="2026-01-01T00:00:00Z")
    data = header.as_dict()
    assert {key for key, _ in HEADER_FIELDS} | {"capabilities"} == set(data)
    assert RunHeader.from_dict({**data, "unknown": 1}) == header


def test_empty_values_say_why_instead_of_leaving_a_blank() -> None:
    header = RunHeader(host="h", command_line="pacsim x", pacsim_version="1")
    assert header.display("seed") == "none (this run draws no random data)"
    assert header.display("supports").startswith("not probed")
    assert header.display("target_address") == "not recorded"
    assert RunHeader(seed=0).display("seed") == "0"


def test_header_html_has_a_row_per_field_and_escapes_values() -> None:
    header = RunHeader(target_address="<b>PACS</b>", command_line="pacsim run '<x>'")
    html = header_html(header)
    assert re.findall(r'data-field="([a-z_]+)"', html) == [key for key, _ in HEADER_FIELDS]
    assert "<b>" not in html and "&lt;b&gt;PACS&lt;/b&gt;" in html


def test_banner_carries_its_verdict_and_colour() -> None:
    html = banner_html("NOT SIGNED OFF", "2 studies <lost>")
    assert 'data-verdict="NOT SIGNED OFF"' in html and "#c62828" in html
    assert "&lt;lost&gt;" in html
    assert "#2e7d32" in banner_html("PASS") and "#ef6c00" in banner_html("INTERRUPTED")


def test_failures_index_links_each_item_and_is_absent_without_failures() -> None:
    assert failures_index_html([]) == ""
    html = failures_index_html([("run1-step2", "step 2", "ack: expected AA, seen AE")])
    assert '<a href="#run1-step2">step 2</a>' in html and "(1)" in html


def test_page_top_opens_with_the_banner_then_title_and_header() -> None:
    html = page_top("T", "FAIL", "why", RunHeader())
    body = html.split("<body>", 1)[1]
    assert body.startswith('<div class="banner"')
    assert body.index("<h1>") < body.index('class="runheader"')


def _run(name: str, status: str = "passed", *, error: str | None = None,
         duration: float = 2.0) -> RunResult:
    return RunResult(scenario=name, started=1_767_225_600.0, duration=duration,
                     steps=[StepResult(name="s", do="hl7.admit", status=status)],  # type: ignore[arg-type]
                     environment_error=error, target_kind="builtin",
                     target_address="PACSIM_ARC@127.0.0.1:1", seed=42)


def test_summary_line_reads_like_pytest() -> None:
    runs = [_run("a"), _run("b", "failed"), _run("c", error="cannot start")]
    assert summary_line(runs, 41.2) == "3 scenarios: 1 passed, 1 failed, 1 error in 41s"
    assert summary_line([_run("a")]) == "1 scenario: 1 passed, 0 failed, 0 errors in 2.0s"
    assert summary_line(runs * 5, 125.0).endswith("in 2m05s")
    assert verdict_of(runs) == "ERROR" and verdict_of(runs[:2]) == "FAIL"
    assert verdict_of(runs[:1]) == "PASS"


def test_header_of_runs_spans_them_and_names_distinct_targets() -> None:
    first, second = _run("a"), _run("b", duration=5.0)
    second.started += 10
    header = header_of([first, second], command_line="pacsim run a.yaml b.yaml")
    assert header.target_kind == "builtin" and header.seed == 42
    assert header.started == "2026-01-01T00:00:00Z" and header.ended == "2026-01-01T00:00:15Z"
    second.target_kind, second.seed = "orthanc", 7
    assert header_of([first, second]).target_kind == "builtin, orthanc"
    assert header_of([first, second]).seed == "42, 7"


def test_plain_words_not_python_reprs() -> None:
    assert plain("AA") == "AA" and plain(None) == "nothing" and plain(True) == "true"
    assert plain({"ack": "AA", "count": 2}) == "ack: AA, count: 2"
    assert plain(["a", "b"]) == "a, b" and plain([]) == "(none)" and plain("") == "(empty)"


def test_fault_matrix_html_puts_the_one_bad_row_first_and_collapses_na() -> None:
    faults = select()
    bad = next(f for f in faults if f.id == "store.unsupported-ts")
    rows = [Outcome(f, NOT_SUPPORTED, "x", "-", "no MPPS") for f in faults[:37] if f is not bad]
    rows.insert(20, Outcome(bad, NON_CONFORMANT, "CT with an unknown transfer syntax",
                            context_words(3), f"expected {context_words(4)}"))
    rows.append(Outcome(faults[-1], CONFORMANT, "y", "A-ASSOCIATE-RJ 2/3/2"))
    html = matrix.render_html(rows, "ORTHANC@127.0.0.1:4242",
                              header=RunHeader(target_kind="orthanc"))
    assert html.count('class="banner"') == 1 and 'data-verdict="NOT CONFORMANT"' in html
    assert html.index("store.unsupported-ts") < html.index("<details>")   # above the N/A
    assert '<a href="#fault-store.unsupported-ts">' in html
    assert f"{len(rows) - 2} not supported by target" in html
    assert "context rejected: abstract-syntax-not-supported (3)" in html
    assert "expected context rejected: transfer-syntaxes-not-supported (4)" in html
    assert "<td>context result" not in html and "rejected with result" not in html
    assert "A-ASSOCIATE-RJ 2/3/2 (transient, local limit exceeded)" in html
    document = json.loads(matrix.render_json(rows, "ORTHANC@127.0.0.1:4242"))
    assert document["verdict"] == "NOT CONFORMANT"
    assert document["header"]["target_address"] == "ORTHANC@127.0.0.1:4242"
    assert matrix.verdict([Outcome(bad, NOT_SUPPORTED, "x", "-")])[0] == "NO DATA"
