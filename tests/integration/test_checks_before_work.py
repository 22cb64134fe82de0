"""Checks before work, nothing left behind on failure (issue 18, item 6)."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACSIM = [sys.executable, str(ROOT / "cli.py")]


@pytest.mark.parametrize("kind", ["archive", "ris", "modality"])
def test_a_refused_serve_leaves_no_temp_folder(tmp_path: Path, kind: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*PACSIM, "serve", kind, "--port", str(port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 2 and "already in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_local_base_build_checks_the_engine_before_any_debootstrap(tmp_path: Path) -> None:
    before = set(glob.glob("/tmp/pacsim-rootfs.*"))
    done = subprocess.run([*PACSIM, "images", "build", "--local-base"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TMPDIR": str(tmp_path),
                               "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Docker engine is reachable" in done.stderr
    assert "debootstrap" not in done.stdout + done.stderr  # it never started one
    assert set(glob.glob("/tmp/pacsim-rootfs.*")) == before
    assert list(tmp_path.iterdir()) == []
