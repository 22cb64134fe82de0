"""Statistics from events: exact percentiles, counts, reasons, concurrency; the reports."""

from __future__ import annotations

import json
import statistics

import pytest

from simulators.events import Exchange
from simulators.load import LoadProfile, LoadStatistics, check_thresholds, percentile
from simulators.load.engine import LoadRun
from simulators.load.report import load_dict, render_html, write_load_reports
from simulators.load.shape import Shape
from simulators.load.stats import error_reason
from simulators.dicom.address import AeAddress
from simulators.load.target import LoadTarget, check_target, is_loopback
from simulators.errors import ConfigError

T0 = 1_700_000_000.0


def event(kind: str, start: float, duration: float, outcome: str = "ok", status: str = "",
          error: str = "", rejection: str = "") -> Exchange:
    """An exchange as the load engine records it: an AssociationRejected also leaves
    its reason in words in ``detail["rejection"]`` (operations.py, association.py)."""
    detail = {"error": error} if error else {}
    if rejection:
        detail["rejection"] = rejection
    return Exchange(kind=kind, actor="LDCT001", start=T0 + start, duration=duration,
                    outcome=outcome, status=status, detail=detail)


def test_percentile_matches_linear_interpolation() -> None:
    values = sorted([0.3, 0.1, 0.2, 0.4, 1.0])
    assert percentile(values, 50) == 0.3
    assert percentile(values, 100) == 1.0 and percentile(values, 0) == 0.1
    assert percentile(values, 95) == pytest.approx(0.4 + 0.6 * 0.8)
    data = sorted(float(i) for i in range(1, 101))
    assert percentile(data, 50) == pytest.approx(statistics.quantiles(data, n=100,
                                                                      method="inclusive")[49])


def test_counts_errors_reasons_and_stages() -> None:
    profile = LoadProfile.model_validate({
        "modalities": {"count": 2}, "every_modality": [{"do": "echo", "think": 0}],
        "stages": [{"duration": "2s", "target": 1, "name": "low"},
                   {"duration": "2s", "target": 2, "name": "high"}]})
    stats = LoadStatistics(started=T0, stages=Shape(profile.stages).windows)
    for i in range(90):
        stats.record(event("load.mwl.query", 0.01 * i, 0.010 + 0.001 * (i % 10)))
    for i in range(10):
        stats.record(event("load.mwl.query", 2.5, 0.5, "error", error=(
            "association rejected: transient, local limit exceeded (peer=127.0.0.1:1)"),
            rejection="transient, local limit exceeded"))
    stats.record(event("dicom.c-find", 3.0, 0.2, "failed", "0xC000"))
    stats.record(event("load.mwl.query", 3.9, 5.0, "cancelled"))  # run ended: not counted
    ops = stats.operations(4.0)
    query = ops["mwl.query"]
    assert (query["count"], query["errors"]) == (100, 10)
    assert query["errors_by_reason"] == {"rejected: transient, local limit exceeded": 10}
    assert query["max_ms"] == 500.0 and query["p50_ms"] == pytest.approx(15.0)
    assert query["throughput_per_s"] == 25.0
    assert ops["dicom.c-find"]["errors_by_reason"] == {"0xC000": 1}
    assert list(ops) == ["mwl.query", "dicom.c-find"]  # operations first
    stages = {s["name"]: s["operations"] for s in stats.stage_summaries()}
    assert stages["low"]["mwl.query"]["count"] == 90
    assert stages["high"]["mwl.query"]["errors"] == 10
    timeline = stats.timeline(4)
    assert timeline["operations"]["mwl.query"]["count"][:3] == [90, 0, 10]
    # 10 operations of 0.5 s from t=2.5: 5 operation-seconds in second 2, none after.
    assert timeline["concurrency"][2] == pytest.approx(5.0 + 0.0, abs=0.01)


def test_error_reason_prefers_reject_reason_then_status() -> None:
    assert error_reason(event("x", 0, 0, "error", error="association rejected: permanent, "
                              "called AE title not recognised (peer=a)",
                              rejection="permanent, called AE title not recognised")) == \
        "rejected: permanent, called AE title not recognised"
    assert error_reason(event("x", 0, 0, "failed", "0xA700")) == "0xA700"
    assert error_reason(event("x", 0, 0, "error", error="timed out waiting (peer=x)")) == \
        "timed out waiting"


def test_thresholds_fail_without_samples_and_over_limits() -> None:
    profile = LoadProfile.model_validate({
        "modalities": {"count": 1}, "stages": [{"duration": 1, "target": 1}],
        "every_modality": [{"do": "echo", "think": 0}],
        "thresholds": {"mwl.query": {"p95": "100ms", "errors": "5%"},
                       "store": {"p99": "1s"}}})
    ops = {"mwl.query": {"count": 20, "errors": 2, "p95_ms": 90.0,
                         "errors_by_reason": {"0xC000": 2}}}
    results = {r.name: r for r in check_thresholds(profile.thresholds, ops)}
    assert results["mwl.query p95"].passed
    assert not results["mwl.query errors"].passed
    assert "0xC000: 2" in results["mwl.query errors"].message
    assert not results["store p99"].passed and results["store p99"].seen == "no samples"


def test_reports_have_the_contract_keys_and_escape_peer_text(tmp_path) -> None:
    profile = LoadProfile.model_validate({
        "name": "<b>peak</b>", "modalities": {"count": 1},
        "stages": [{"duration": 2, "target": 1}, {"duration": 2, "target": 1}],
        "every_modality": [{"do": "echo", "think": 0}],
        "thresholds": {"echo": {"p95": "1s"}}})
    shape = Shape(profile.stages)
    stats = LoadStatistics(started=T0, stages=shape.windows)
    stats.record(event("load.echo", 0.1, 0.02))
    stats.record(event("load.echo", 2.1, 0.03, "error", error="<script>x</script>"))
    run = LoadRun(profile, stats, shape, T0, duration=4.0, planned=[1, 1, 1, 1])
    report = load_dict(run, target="builtin")
    echo = report["operations"]["echo"]
    assert {"count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms"} <= set(echo)
    assert (echo["count"], echo["errors"]) == (2, 1) and report["passed"] is True
    json_path, html_path = write_load_reports(report, tmp_path)
    assert json.loads(json_path.read_text())["operations"]["echo"]["max_ms"] == 30.0
    html = html_path.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<svg" in html
    assert "&lt;b&gt;peak&lt;/b&gt;" in html and "Stages compared" in render_html(report)


def test_only_loopback_targets_are_allowed() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("192.0.2.1") and not is_loopback("no-such-host.invalid")
    check_target(LoadTarget(store=AeAddress(ae_title="A", host="127.0.0.2", port=104)),
                 allow_external=False)
    with pytest.raises(ConfigError, match="not on loopback"):
        check_target(LoadTarget(hl7=("198.51.100.7", 2575)), allow_external=False)
    check_target(LoadTarget(hl7=("198.51.100.7", 2575)), allow_external=True)
