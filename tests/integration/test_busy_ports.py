"""A port another process holds: the CLI says so in one line and exits 2.

The port is taken by a real listening socket first, as another program would take it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = """
environment:
  seed: 5
  target: builtin
  actors:
    ehr: {kind: ehr}
    ris: {kind: ris, ae_title: BUSY_RIS}
"""


def _pacsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _one_clear_line(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port} is already in use" in lines[0]


def test_serve_with_a_taken_control_port_exits_2(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _pacsim("serve", "ehr", "--port", "0", "--control-port", str(port),
                         cwd=tmp_path)
    _one_clear_line(result, port)
    assert "control API" in result.stderr


def test_sandbox_up_with_a_taken_api_port_exits_2(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    state = tmp_path / "sandbox.json"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _pacsim("sandbox", "up", str(site), "--api-port", str(port),
                         "--state", str(state), cwd=tmp_path)
    _one_clear_line(result, port)
    assert "trainer API" in result.stderr
    assert not state.exists()  # nothing started, nothing to find later
