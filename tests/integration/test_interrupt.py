"""Ctrl-C and SIGTERM end `run`, a load run, `migrate` and `probe` gracefully (issue 18).

Each test starts the real command as a process, waits for a sign that it has done
some work (a line it printed, a study validated in the checkpoint), sends SIGINT or
SIGTERM, and checks the contract: exit 130, no Python traceback, a partial report
that says INTERRUPTED, and for `migrate` the command that resumes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.integration.test_migration import _validated, build_legacy

ROOT = Path(__file__).resolve().parents[2]
PACSIM = [sys.executable, str(ROOT / "cli.py")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Command:
    """A pacsim process whose stdout is drained by a thread (a verbose run must never
    block on a full pipe) so the test can wait for a line."""

    def __init__(self, args: list[str], cwd: Path, **env: str) -> None:
        self.process = subprocess.Popen([*PACSIM, *args], cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**ENV, **env})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, wanted: Callable[[str], bool], limit: float = 120) -> None:
        deadline = time.monotonic() + limit
        while not any(wanted(line) for line in list(self.lines)):
            assert self.process.poll() is None, (self.process.returncode, "".join(self.lines),
                                                 self.process.stderr.read())  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "".join(self.lines[-50:])
            time.sleep(0.1)

    def stop(self, signum: int) -> tuple[str, str]:
        """Send ``signum``; check exit 130, no traceback, INTERRUPTED on stderr."""
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"still running 90 s after signal {signum}") from None
        self._reader.join(10)
        err = self.process.stderr.read()  # type: ignore[union-attr]
        out = "".join(self.lines)
        assert "Traceback" not in out + err, out[-3000:] + err
        assert self.process.returncode == 130, (self.process.returncode, out[-3000:], err)
        assert "INTERRUPTED" in err, err
        return out, err


SLOW_SCENARIO = """\
pacsim: 1
name: Slow on purpose
include: [{site}]
steps:
  - name: Patient is admitted
    do: hl7.admit
    patient: $maria
    expect: {{ack: AA}}
  - name: An order reaches the RIS
    do: hl7.order
    patient: $maria
    for: cr1
    procedure: XR CHEST 2 VIEWS
    expect: {{ack: AA}}
  - name: A long pause the signal lands in
    do: wait
    duration: 10m
  - name: Never reached
    do: note
    message: not reached
finally:
  - name: Clean-up still runs
    do: note
    message: cleaned up
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_interrupted_writes_a_partial_report(tmp_path: Path, signum: int) -> None:
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(SLOW_SCENARIO.format(
        site=ROOT / "scenarios" / "sites" / "general-hospital.yaml"), encoding="utf-8")
    command = Command(["-v", "run", str(scenario), "--report-dir", "out"], tmp_path)
    # the RIS's INFO line for the accepted order: two steps have finished
    command.wait_for(lambda line: "accepted order" in line)
    time.sleep(0.5)  # into the wait step
    out, err = command.stop(signum)
    name = signal.Signals(signum).name
    assert f"INTERRUPTED by {name}" in err and "out/report.html" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    run = report["runs"][0]
    assert run["interrupted"] is True and run["passed"] is False
    statuses = [(s["name"], s["status"]) for s in run["steps"]]
    assert statuses[:2] == [("Patient is admitted", "passed"),
                            ("An order reaches the RIS", "passed")]
    assert statuses[3] == ("Never reached", "skipped")
    assert statuses[4] == ("Clean-up still runs", "passed")
    assert any(f"INTERRUPTED ({name})" in w for w in run["warnings"])
    assert "INTERRUPTED" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_load_run_interrupted_writes_a_partial_load_report(tmp_path: Path) -> None:
    command = Command(["-v", "run", str(ROOT / "scenarios" / "load" / "morning-peak.yaml"),
                       "--var", "ramp=2s", "--var", "hold=10m", "--var", "poll_every=15s",
                       "--var", "images_per_study=2", "--report-dir", "out"], tmp_path,
                      PACSIM_LOAD_REPORT_DIR=str(tmp_path / "load"))
    # the load phase prepares one order per modality through the RIS (the RIS logs
    # each): once all 200 are accepted the stages begin; 6 s is the ramp and a few
    # seconds at peak
    deadline = time.monotonic() + 240
    while sum("accepted order" in line for line in list(command.lines)) < 200:
        assert command.process.poll() is None and time.monotonic() < deadline, \
            "".join(command.lines[-20:])
        time.sleep(0.2)
    time.sleep(6)
    command.stop(signal.SIGTERM)
    reports = list((tmp_path / "load").glob("**/load.json"))
    assert len(reports) == 1, list((tmp_path / "load").glob("**/*"))
    load = json.loads(reports[0].read_text(encoding="utf-8"))
    assert load["stopped_early"].startswith("INTERRUPTED") and load["passed"] is False
    assert load["operations"]["mwl.query"]["count"] > 0  # the figures up to the signal
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    run = report["runs"][0]
    assert run["interrupted"] is True
    assert run["steps"][-1]["do"] == "load.run"


def test_migrate_interrupted_reports_and_resumes(tmp_path: Path) -> None:
    counts = build_legacy(tmp_path / "legacy", 30, seed=5)
    command = ["migrate", "--source", str(tmp_path / "legacy"), "--target", "builtin",
               "--batch", "2", "--report", str(tmp_path / "report")]
    process = Command(command, tmp_path)
    checkpoint = tmp_path / "report" / "checkpoint.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _validated(checkpoint) < 4:
        assert process.process.poll() is None, process.process.communicate()
        time.sleep(0.05)
    out, err = process.stop(signal.SIGINT)
    assert "to resume where it stopped: pacsim migrate --source" in err, err
    report = json.loads((tmp_path / "report" / "validation.json").read_text(encoding="utf-8"))
    assert report["stopped"] == "interrupted" and not report["signed_off"]
    assert "INTERRUPTED" in report["stop_reason"]
    assert 4 <= report["totals"]["validated"] < len(counts)
    assert "INTERRUPTED" in (tmp_path / "report" / "validation.html").read_text(
        encoding="utf-8")


def test_probe_interrupted_writes_its_run_summary(tmp_path: Path) -> None:
    command = Command(["probe", "--target", "builtin", "--count", "100", "--every", "1s",
                       "--probes", "echo,store_to_queryable", "--store", "store"], tmp_path)
    command.wait_for(lambda line: line.startswith("cycle 2:"))
    out, err = command.stop(signal.SIGTERM)
    assert "of 100 cycle(s) finished" in err
    summary = json.loads((tmp_path / "store" / "probe-run.json").read_text(encoding="utf-8"))
    assert summary["status"] == "INTERRUPTED" and summary["signal"] == "SIGTERM"
    assert 2 <= summary["cycles_finished"] < 100


def test_interrupt_during_start_up_prints_no_traceback(tmp_path: Path) -> None:
    """The signal lands while Python is still importing pacsim's modules."""
    process = subprocess.Popen([*PACSIM, "probe", "--target", "builtin", "--once",
                                "--store", "s"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert "Traceback" not in out + err, err
    assert process.returncode == 130, (process.returncode, err)
