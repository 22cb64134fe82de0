"""A real Prometheus scrapes a real `pacsim probe --metrics` process and answers a query.

Both processes are bounded in time (Prometheus' query is polled for at most 40 s)
and stopped with SIGTERM; the probe must exit 0 on it. The metrics endpoint is
also read directly once to check names, units and the bounded label set.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port, require_tool

ROOT = Path(__file__).resolve().parents[2]
PACSIM = [sys.executable, str(ROOT / "cli.py")]


def _metrics_address(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The ``host:port`` the probe printed for its metrics endpoint."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("metrics on http://"):
            return line.split("http://", 1)[1].split("/", 1)[0]
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"pacsim probe did not start: {proc.stdout.read()}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode()


def _query(prometheus: str, expression: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(expression)}"
    try:
        document = json.loads(_get(url))
    except OSError:
        return []
    return document.get("data", {}).get("result", []) if document.get("status") == "success" \
        else []


@pytest.mark.prometheus
def test_prometheus_scrapes_probe_runs(tmp_path: Path) -> None:
    tools = require_tool("prometheus")
    probe = subprocess.Popen(
        [*PACSIM, "probe", "--target", "builtin", "--every", "1s", "--timeout", "5s",
         "--probes", "echo,worklist_query,store_to_queryable,load_cget",
         "--metrics", "127.0.0.1:0", "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    prometheus = None
    try:
        address = _metrics_address(probe)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: pacsim-probe\n"
            f"    static_configs:\n      - targets: ['{address}']\n")
        web = f"127.0.0.1:{free_port()}"
        prometheus = subprocess.Popen(
            [tools["prometheus"], f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={web}"],
            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
        deadline = time.monotonic() + 40
        answer: list[dict] = []
        while time.monotonic() < deadline and prometheus.poll() is None:
            answer = [r for r in _query(f"http://{web}", "pacsim_probe_runs_total")
                      if float(r["value"][1]) > 0]
            if answer:
                break
            time.sleep(0.5)
        assert answer, (tmp_path / "prometheus.log").read_text()[-2000:]
        exposition = _get(f"http://{address}/metrics")  # after a cycle: series exist
        assert "# TYPE pacsim_probe_duration_seconds histogram" in exposition
        assert 'le="0.005"' in exposition and 'le="60.0"' in exposition
        assert "# TYPE pacsim_probe_runs_total counter" in exposition
        assert 'pacsim_probe_up{probe="echo",target="builtin"} 1.0' in exposition
        labels = {(r["metric"]["probe"], r["metric"]["outcome"]) for r in answer}
        assert ("echo", "ok") in labels
        for series in answer:  # only the bounded labels (plus Prometheus' job/instance)
            assert set(series["metric"]) <= {"__name__", "probe", "target", "outcome",
                                             "job", "instance"}
            assert series["metric"]["target"] == "builtin"
            assert series["metric"]["job"] == "pacsim-probe"
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=20)
        probe.send_signal(signal.SIGTERM)
        out, _ = probe.communicate(timeout=30)
    assert probe.returncode == 0, out
    assert "cycle 1: echo ok" in out
