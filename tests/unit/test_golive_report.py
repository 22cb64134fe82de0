"""The go-live review figures and their HTML, on a real SQLite store at explicit times.

Every run is placed at a known epoch second from a fixed Monday (2027-01-04 00:00 UTC,
ISO week 2027-W01), and every report is built over an explicit ``[start, end)``: no
test depends on the wall clock.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from html.parser import HTMLParser

import pytest

from simulators.cli import main
from simulators.kpi import golive, golive_text
from simulators.kpi.golive_html import render_html
from simulators.kpi.result import FAIL, OK, SKIPPED, TIMEOUT, ProbeResult
from simulators.kpi.runner import PROBES
from simulators.kpi.store import ResultStore

MONDAY = dt.datetime(2027, 1, 4, tzinfo=dt.timezone.utc).timestamp()
DAY, WEEK = 86_400.0, 7 * 86_400.0
T = "NEWPACS@pacs"


def run(probe: str, at: float, outcome: str = OK, seconds: float = 0.1,
        target: str = T) -> ProbeResult:
    return ProbeResult(probe, target, outcome, seconds, at, error="" if outcome == OK else "x")


def build(tmp_path, results: list[ProbeResult], *, weeks: int = 2, **kw) -> golive.GoLiveReport:
    with ResultStore(tmp_path) as store:
        store.add(results)
        return golive.build(store, start=MONDAY, end=MONDAY + weeks * WEEK, probes=PROBES, **kw)


def bench(report: golive.GoLiveReport, week: int, key: str) -> golive.BenchmarkWeek:
    return report.weeks[week].benchmarks[key]


def test_availability_counts_passed_over_measured_runs_and_pools_overall(tmp_path) -> None:
    results = [run("echo", MONDAY + i * 300) for i in range(18)]
    results += [run("echo", MONDAY + 10_000, FAIL), run("echo", MONDAY + 10_300, TIMEOUT)]
    results += [run("echo", MONDAY + 20_000 + i, SKIPPED) for i in range(5)]  # left out
    results += [run("worklist_query", MONDAY + i * 300) for i in range(10)]
    report = build(tmp_path, results)
    table = {a.probe: a for a in report.availability}
    assert (table["echo"].runs, table["echo"].passed, table["echo"].timeouts) == (20, 18, 1)
    assert table["echo"].percent == pytest.approx(90.0)
    assert table["worklist_query"].percent == pytest.approx(100.0)
    assert report.overall.runs == 30 and report.overall.percent == pytest.approx(28 / 30 * 100)
    # Outside [start, end): not counted.
    late = build(tmp_path / "late", results + [run("echo", MONDAY + 2 * WEEK, FAIL)])
    assert {a.probe: a.runs for a in late.availability}["echo"] == 20


def test_zero_run_probe_reads_not_measured_everywhere(tmp_path) -> None:
    results = [run("echo", MONDAY + i * 300) for i in range(5)]
    results += [run("order_to_report", MONDAY + i * 300, SKIPPED) for i in range(5)]
    report = build(tmp_path, results)
    table = {a.probe: a for a in report.availability}
    assert set(table) == set(PROBES)  # load_wado never ran and is still listed
    for probe in ("order_to_report", "load_wado"):
        assert table[probe].runs == 0 and table[probe].percent is None
    text = golive_text.format_text(report)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("order_to_report"))
    assert line.rstrip().endswith("not measured")
    turnaround = bench(report, 0, "report_turnaround")
    assert not turnaround.measured and golive_text.benchmark_value(turnaround) == "not measured"
    assert golive_text.change_text(bench(report, 1, "report_turnaround")) == "not measured"
    document = golive_text.as_dict(report)
    row = next(a for a in document["availability"] if a["probe"] == "load_wado")
    assert row["availability_percent"] is None and row["measured"] is False


def test_an_empty_previous_week_gives_no_baseline_and_no_regression(tmp_path) -> None:
    # Week 1: nothing at all for image loads; week 2: slow loads and repeated failures.
    results = [run("load_cmove", MONDAY + WEEK + i * 600, seconds=5.0) for i in range(20)]
    results += [run("load_cmove", MONDAY + WEEK + 50_000 + i, FAIL) for i in range(5)]
    results += [run("echo", MONDAY + WEEK + 60_000 + i, FAIL) for i in range(3)]
    report = build(tmp_path, results)
    for key in ("image_load", "uptime"):
        week2 = bench(report, 1, key)
        assert week2.measured and week2.flags == [] and week2.change is None
        assert golive_text.change_text(week2) == "no baseline"
    assert "REGRESSION" not in golive_text.format_text(report)


def test_week_over_week_change_and_regression(tmp_path) -> None:
    results = []
    for week, latency, echo_fail in ((0, 0.100, 0), (1, 0.200, 4)):
        base = MONDAY + week * WEEK
        results += [run("load_cget", base + i * 600, seconds=latency) for i in range(10)]
        results += [run("load_wado", base + 9_000 + i * 600, seconds=latency) for i in range(10)]
        results += [run("worklist_query", base + i * 600, seconds=0.05) for i in range(10)]
        results += [run("echo", base + i * 600) for i in range(96)]
        results += [run("echo", base + 80_000 + i, FAIL) for i in range(echo_fail)]
    report = build(tmp_path, results)
    first, loads = bench(report, 0, "image_load"), bench(report, 1, "image_load")
    assert first.stats.runs == 20 and first.stats.p50 == pytest.approx(0.100)
    assert loads.change["p50_seconds"] == pytest.approx(0.100)
    assert loads.change["p50_ratio"] == pytest.approx(1.0)
    assert loads.flags == ["p95 100 -> 200 ms"]
    assert "p50 +100.0 ms (+100%)" in golive_text.change_text(loads)
    worklist = bench(report, 1, "worklist_query")
    assert worklist.change["p95_seconds"] == pytest.approx(0.0) and worklist.flags == []
    uptime = bench(report, 1, "uptime")
    assert uptime.availability == pytest.approx(96 / 100 * 100)
    assert uptime.change["availability_points"] == pytest.approx(-4.0)
    assert uptime.flags == ["failures 0.0% -> 4.0%"]  # judged on failures, not echo latency
    # One day per chart slot: the loads ran on the Monday only.
    assert [d.runs for d in loads.days] == [20, 0, 0, 0, 0, 0, 0]


def test_a_week_of_only_failures_has_no_latency_change_but_a_failure_regression(tmp_path
                                                                                 ) -> None:
    results = [run("load_cmove", MONDAY + i * 600) for i in range(10)]
    results += [run("load_cmove", MONDAY + WEEK + i * 600, FAIL) for i in range(5)]
    week2 = bench(build(tmp_path, results), 1, "image_load")
    assert week2.stats.p50 is None and week2.change is None
    assert golive_text.benchmark_value(week2) == "no successful run (5 runs)"
    assert golive_text.change_text(week2) == ("no successful runs to compare; "
                                         "REGRESSION: failures 0.0% -> 100.0%")


def test_outages_merge_overlapping_probes_and_keep_an_unrecovered_one_open(tmp_path) -> None:
    t = MONDAY + 3600
    results = [
        run("echo", t), run("echo", t + 300, FAIL), run("echo", t + 600, TIMEOUT),
        run("echo", t + 900),                                   # echo failing [300, 900)
        run("worklist_query", t + 10), run("worklist_query", t + 610, FAIL),
        run("worklist_query", t + 1210),                        # [610, 1210): overlaps echo
        run("load_cget", t + 1210, FAIL), run("load_cget", t + 1500),  # touches: merges
        run("load_wado", t + 5000), run("load_wado", t + 6000, SKIPPED),
        run("load_wado", t + 7000, FAIL, seconds=2.5),          # never recovers
        run("order_to_worklist", t + 9000, FAIL, target="OTHER@pacs"),
        run("order_to_worklist", t + 9100, target="OTHER@pacs"),
    ]
    report = build(tmp_path, results)
    first, second, third = report.outages
    assert (first.start, first.end, first.ongoing) == (t + 300, t + 1500, False)
    assert first.failing == {("echo", T): 2, ("worklist_query", T): 1, ("load_cget", T): 1}
    assert first.probes == ["echo", "load_cget", "worklist_query"]
    assert (second.start, second.end, second.ongoing) == (t + 7000, t + 7002.5, True)
    assert second.probes == ["load_wado"]
    assert third.targets == ["OTHER@pacs"] and third.end == t + 9100
    document = golive_text.as_dict(report)
    assert document["outages"][0]["from"] == t + 300 and document["outages"][1]["ongoing"]
    text = golive_text.format_text(report)
    assert "echo@NEWPACS@pacs x2, load_cget@NEWPACS@pacs x1" in text  # two targets: named
    assert "order_to_worklist@OTHER@pacs x1" in text and text.count("(ongoing)") == 1
    assert "(ongoing), 2.50s: load_wado@NEWPACS@pacs x1" in text


def test_iso_weeks_and_partial_edges() -> None:
    assert golive.iso_week_label(MONDAY) == "2027-W01"
    assert golive.iso_week_label(MONDAY - 1) == "2026-W53"
    assert golive.iso_week_start(MONDAY + 3.5 * DAY) == MONDAY


def test_a_window_cut_mid_week_marks_partial_weeks(tmp_path) -> None:
    with ResultStore(tmp_path) as store:
        store.add([run("echo", MONDAY + 3 * DAY)])
        report = golive.build(store, start=MONDAY + 2 * DAY, end=MONDAY + 9 * DAY)
    assert [(w.label, w.partial) for w in report.weeks] == [("2027-W01", True),
                                                           ("2027-W02", True)]
    assert report.weeks[0].start == MONDAY + 2 * DAY
    days = report.weeks[0].benchmarks["uptime"].days
    assert [d.in_window for d in days] == [False, False, True, True, True, True, True]


def test_every_benchmark_probe_is_a_real_probe() -> None:
    assert {p for b in golive.BENCHMARKS for p in b.probes} <= set(PROBES)
    assert [b.title for b in golive.BENCHMARKS] == [
        "image load time", "worklist query speed", "system uptime", "report turnaround"]


class _Checker(HTMLParser):
    """Tag balance and what the document contains, by a real HTML parser."""

    VOID = {"meta", "br", "img", "hr", "input", "link"}
    SVG_LEAVES = {"rect", "line"}  # written as <rect ...></rect> or with children

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: dict[str, int] = {}
        self.text: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_well_formed_self_contained_escaped_and_shows_every_probe(tmp_path) -> None:
    hostile = "<script>alert(1)</script>&co"
    results = [run(p, MONDAY + WEEK + i * 900, seconds=0.05 * (i + 1))
               for p in ("echo", "load_cmove", "worklist_query") for i in range(30)]
    results += [run("echo", MONDAY + 40_000, FAIL, target=hostile)]
    report = build(tmp_path, results, weeks=3)
    page = render_html(report)
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    # only links inside the page (the outages index): nothing to fetch
    assert "script" not in checker.tags and all(u.startswith("#") for u in checker.urls)
    assert [u for u in checker.urls] == [f"#outage-{i}" for i in range(len(report.outages))]
    assert 'data-verdict="FAIL"' in page and 'data-field="command_line"' in page
    assert checker.tags["svg"] == 4 * len(report.weeks) == 12  # one per benchmark per week
    text = "".join(checker.text)
    for probe in PROBES:
        assert probe in text
    assert hostile in text and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;co" in page
    assert "not measured" in text and "no baseline" in text


def test_cli_writes_html_and_adds_golive_to_json(tmp_path, capsys) -> None:
    now = time.time()  # the CLI reads its window from the clock; runs sit well inside it
    with ResultStore(tmp_path / "store") as store:
        store.add([run("echo", now - DAY + i) for i in range(5)])
        store.add([run("echo", now - 2 * DAY, FAIL), run("echo", now - 2 * DAY + 60)])
    page = tmp_path / "out" / "golive.html"
    assert main(["probe", "report", "--since", "7d", "--store", str(tmp_path / "store"),
                 "--json", "--html", str(page)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {"window", "rule", "regressions", "probes"} <= set(document)  # unchanged keys
    overall = document["golive"]["overall"]
    assert (overall["runs"], overall["passed"]) == (7, 6)
    assert len(document["golive"]["outages"]) == 1
    assert document["header"]["target_address"] == T  # the store's target, not a guess
    assert document["header"]["started"].endswith("Z") and document["header"]["ended"]
    html = page.read_text(encoding="utf-8")
    assert page.exists() and "Availability per probe" in html
    # an outage in the window: the banner says FAIL even though nothing regressed
    assert 'data-verdict="FAIL"' in html and '<a href="#outage-0">' in html
    assert main(["probe", "report", "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "outages (1)" in out and "weekly benchmarks" in out
