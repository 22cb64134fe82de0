"""`pacsim serve ACTOR` as a process: reachable by DCMTK and HL7 peers, clean on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.hl7.mllp import MllpClient
from tests.helpers import free_port, require_tool

ROOT = Path(__file__).resolve().parents[2]
PACSIM = [sys.executable, str(ROOT / "cli.py")]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*PACSIM, "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def _wait_for_banner(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("pacsim serve"):
            return line
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"pacsim serve did not start: {proc.stdout.read()}")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    return proc.returncode, out


@pytest.mark.dcmtk
def test_serve_archive_answers_dcmtk_echo_and_stops_on_sigterm() -> None:
    tools = require_tool("echoscu")
    port = free_port()
    proc = _start("archive", "--port", str(port), "--ae-title", "SERVED_ARC")
    try:
        banner = _wait_for_banner(proc)
        assert f"127.0.0.1:{port}" in banner
        echo = subprocess.run([tools["echoscu"], "-aec", "SERVED_ARC", "127.0.0.1", str(port)],
                              capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stderr
    finally:
        code, out = _stop(proc)
    assert code == 0, out
    assert "stopped" in out


def test_serve_ris_accepts_hl7_on_its_configured_port(tmp_path: Path) -> None:
    hl7_port = free_port()
    config = tmp_path / "ris.yaml"
    config.write_text(f"hl7_port: {hl7_port}\nae_title: SITE_RIS\n")
    proc = _start("ris", "--config", str(config), "--port", "0")
    try:
        banner = _wait_for_banner(proc)
        assert "SITE_RIS" in banner and f"HL7 127.0.0.1:{hl7_port}" in banner
        from simulators.hl7 import messages
        from simulators.world import World
        world = World(seed=3)
        with MllpClient("127.0.0.1", hl7_port) as client:
            ack = client.send(messages.adt("A01", world.patient(1)))
        assert "MSA|AA|" in ack
    finally:
        code, out = _stop(proc)
    assert code == 0, out


def test_serve_with_a_typo_in_the_config_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "archive.yaml"
    config.write_text("ae_title: ARC\nstorage_dri: /tmp/x\n")
    run = subprocess.run([*PACSIM, "serve", "archive", "--config", str(config)],
                         capture_output=True, text=True, timeout=30, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 2
    assert f"{config}:2: storage_dri: unknown setting" in run.stderr


def test_ae_title_flag_is_refused_for_the_hl7_only_ehr() -> None:
    run = subprocess.run([*PACSIM, "serve", "ehr", "--ae-title", "X"], capture_output=True,
                         text=True, timeout=30, cwd=ROOT)
    assert run.returncode == 2 and "no DICOM AE title" in run.stderr


def test_serve_modality_unattended_performs_scheduled_items(tmp_path: Path) -> None:
    """A served modality polls the RIS and sends each new exam to the archive by itself."""
    import datetime as dt

    from simulators.actors.archive import Archive, ArchiveConfig
    from simulators.actors.ris import Ris, RisConfig
    from simulators.world import World

    world = World(seed=11)
    order = world.order(world.patient(4), "MR", station_ae="MR_AUTO", station_name="MR9",
                        index=4, start=dt.datetime.now())
    with Ris(RisConfig(ae_title="AUTO_RIS")) as ris, \
            Archive(ArchiveConfig(ae_title="AUTO_ARC")) as archive:
        ris.schedule(order)
        ris_host, ris_port = ris.dicom_address
        config = tmp_path / "mr.yaml"
        config.write_text(
            f"ae_title: MR_AUTO\nmodality: MR\nstation_name: MR9\nauto_interval: 0.5\n"
            f"worklist: [{ris_host}, {ris_port}, AUTO_RIS]\nmpps: [{ris_host}, {ris_port}, AUTO_RIS]\n"
            f"store: [127.0.0.1, {archive.port}, AUTO_ARC]\n")
        proc = _start("modality", "--config", str(config))
        try:
            _wait_for_banner(proc)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not archive.find_studies(
                    AccessionNumber=order.accession):
                time.sleep(0.2)
            studies = archive.find_studies(AccessionNumber=order.accession)
            state = ris.order(order.accession)
        finally:
            code, out = _stop(proc)
    assert code == 0, out
    assert len(studies) == 1 and studies[0]["PatientID"] == order.patient.patient_id, out
    assert state is not None and state.step.status == "COMPLETED", out
