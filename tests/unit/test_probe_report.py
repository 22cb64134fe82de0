"""The weekly comparison: windows, percentiles and the regression rule, on a real store.

Results are written into a SQLite store at known times (the store only knows epoch
seconds) and the report reads them back, through the module and through the CLI.
"""

from __future__ import annotations

import json

import pytest

from simulators.cli import main
from simulators.errors import ConfigError
from simulators.kpi.report import RegressionRule, WindowStats, compare, judge, parse_window
from simulators.kpi.result import FAIL, OK, SKIPPED, TIMEOUT, ProbeResult
from simulators.kpi.store import ResultStore

NOW = 1_800_000_000.0
DAY = 86_400.0


def fill(store: ResultStore, probe: str, *, days_ago: float, latencies: list[float],
         failures: int = 0, timeouts: int = 0, skipped: int = 0) -> None:
    start = NOW - days_ago * DAY
    results = [ProbeResult(probe, "builtin", OK, s, start + i) for i, s in enumerate(latencies)]
    results += [ProbeResult(probe, "builtin", FAIL, 0.01, start + 500 + i, error="refused")
                for i in range(failures)]
    results += [ProbeResult(probe, "builtin", TIMEOUT, 10.0, start + 600 + i)
                for i in range(timeouts)]
    results += [ProbeResult(probe, "builtin", SKIPPED, 0.0, start + 700 + i)
                for i in range(skipped)]
    store.add(results)


def by_probe(store: ResultStore) -> dict:
    return {row.probe: row for row in compare(store, since=7 * DAY, baseline=7 * DAY, now=NOW)}


def test_windows_and_percentiles_come_from_the_stored_rows(tmp_path) -> None:
    with ResultStore(tmp_path) as store:
        fill(store, "echo", days_ago=3, latencies=[0.010 * k for k in range(1, 21)], failures=5)
        fill(store, "echo", days_ago=10, latencies=[0.5] * 10)
        fill(store, "echo", days_ago=20, latencies=[99.0] * 10)  # outside both windows
        row = by_probe(store)["echo"]
    assert row.current.runs == 25 and row.current.failures == 5
    assert row.current.p50 == pytest.approx(0.105)          # median of 10..200 ms
    assert row.current.p95 == pytest.approx(0.1905)         # numpy-style interpolation
    assert row.baseline.runs == 10 and row.baseline.p95 == pytest.approx(0.5)
    assert row.current.failure_rate == pytest.approx(0.2)


def test_p95_regression_needs_ratio_and_absolute_floor(tmp_path) -> None:
    with ResultStore(tmp_path) as store:
        fill(store, "load_cmove", days_ago=2, latencies=[1.0] * 20)       # 0.8 s -> 1.0 s
        fill(store, "load_cmove", days_ago=9, latencies=[0.8] * 20)
        fill(store, "echo", days_ago=2, latencies=[0.006] * 20)           # +50% but +2 ms
        fill(store, "echo", days_ago=9, latencies=[0.004] * 20)
        fill(store, "worklist_query", days_ago=2, latencies=[0.110] * 20)  # +10%: within
        fill(store, "worklist_query", days_ago=9, latencies=[0.100] * 20)
        rows = by_probe(store)
    assert rows["load_cmove"].regressed and "p95 800 -> 1000 ms" in rows["load_cmove"].flags
    assert not rows["echo"].regressed
    assert not rows["worklist_query"].regressed


def test_failure_rate_regression_and_its_minimum(tmp_path) -> None:
    with ResultStore(tmp_path) as store:
        fill(store, "echo", days_ago=1, latencies=[0.01] * 50, timeouts=3)
        fill(store, "echo", days_ago=8, latencies=[0.01] * 50)
        fill(store, "load_cget", days_ago=1, latencies=[0.01] * 50, failures=1)  # one flake
        fill(store, "load_cget", days_ago=8, latencies=[0.01] * 50)
        fill(store, "order_to_report", days_ago=1, latencies=[], skipped=9)  # not measured
        fill(store, "order_to_report", days_ago=8, latencies=[], skipped=9)
        rows = by_probe(store)
    assert rows["echo"].flags == ["failures 0.0% -> 5.7%"]
    assert not rows["load_cget"].regressed
    assert rows["order_to_report"].current.runs == 0 and not rows["order_to_report"].regressed


def test_too_few_samples_never_flag_latency() -> None:
    rule = RegressionRule()
    few = WindowStats(runs=3, failures=0, p50=5.0, p95=5.0)
    many = WindowStats(runs=30, failures=0, p50=0.1, p95=0.1)
    assert judge(few, many, rule) == []
    assert judge(WindowStats(30, 0, 5.0, 5.0), many, rule) == ["p95 100 -> 5000 ms"]


def test_cli_report_exit_code_table_and_json(tmp_path, capsys) -> None:
    with ResultStore(tmp_path) as store:
        import time
        now = time.time()
        store.add([ProbeResult("echo", "builtin", OK, 2.0, now - DAY + i) for i in range(10)])
        store.add([ProbeResult("echo", "builtin", OK, 0.01, now - 8 * DAY + i)
                   for i in range(10)])
    assert main(["probe", "report", "--since", "7d", "--store", str(tmp_path)]) == 1
    table = capsys.readouterr().out
    assert "REGRESSION: p95 10 -> 2000 ms" in table and "rule: p95 worse by >20%" in table
    assert main(["probe", "--store", str(tmp_path), "report", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["regressions"] == 1 and document["probes"][0]["current"]["runs"] == 10
    # A window that holds the regression only as baseline: nothing is flagged.
    assert main(["probe", "report", "--since", "1h", "--baseline", "30d",
                 "--store", str(tmp_path)]) == 0


def test_windows_parse_days_and_weeks() -> None:
    assert parse_window("7d") == 7 * DAY
    assert parse_window("2w") == 14 * DAY
    assert parse_window("90m") == 5400
    with pytest.raises(ConfigError):
        parse_window("soon")


def test_no_regression_is_claimed_against_a_baseline_with_zero_runs(tmp_path, capsys) -> None:
    """Failures this week, nothing at all the week before: there is nothing to regress from."""
    with ResultStore(tmp_path) as store:
        fill(store, "echo", days_ago=1, latencies=[0.01] * 20, failures=4)
        fill(store, "load_cget", days_ago=1, latencies=[0.01] * 10)
        fill(store, "load_cget", days_ago=8, latencies=[], skipped=5)  # only "not measured"
        fill(store, "load_cget", days_ago=1.5, latencies=[], failures=3)
        rows = by_probe(store)
    assert rows["echo"].baseline.runs == 0 and not rows["echo"].regressed
    assert rows["load_cget"].baseline.runs == 0 and not rows["load_cget"].regressed
    assert rows["echo"].verdict == "no baseline"
    assert judge(WindowStats(20, 5, 0.01, 0.02), WindowStats(0, 0, None, None),
                 RegressionRule()) == []


def test_cli_shows_not_measured_for_a_probe_with_zero_runs(tmp_path, capsys) -> None:
    import time
    now = time.time()
    with ResultStore(tmp_path) as store:
        store.add([ProbeResult("order_to_report", "builtin", SKIPPED, 0.0, now - DAY + i)
                   for i in range(5)])
        store.add([ProbeResult("echo", "builtin", OK, 0.01, now - DAY + i) for i in range(5)])
        store.add([ProbeResult("echo", "builtin", OK, 0.01, now - 8 * DAY + i)
                   for i in range(5)])
    assert main(["probe", "report", "--store", str(tmp_path)]) == 0
    table = capsys.readouterr().out.split("\n\n")[0]  # the comparison, before go-live
    lines = {line.split()[0]: line for line in table.splitlines() if line.strip()}
    assert lines["order_to_report"].rstrip().endswith("not measured")
    assert lines["echo"].rstrip().endswith("ok")
    # A probe that never ran at all is listed too, not left out of the table.
    assert lines["load_wado"].split()[1:3] == ["builtin", "0"]
    assert lines["load_wado"].rstrip().endswith("not measured")


def test_report_on_a_missing_or_empty_store_exits_2(tmp_path, capsys) -> None:
    """Issue 18: "(no probe results)" with exit 0 was a false green in CI."""
    assert main(["probe", "report", "--store", str(tmp_path / "nowhere")]) == 2
    assert "no probe results there" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()  # asking did not create a store
    with ResultStore(tmp_path / "empty"):
        pass
    assert main(["probe", "report", "--store", str(tmp_path / "empty")]) == 2
    assert "holds no results" in capsys.readouterr().err
