"""`pacsim logs -f` streams new lines as they are written and Ctrl-C ends it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from simulators.runtime.engine import ACTOR_LABEL, DEFAULT_PACSIM_IMAGE, RUN_LABEL, remove_by_label

ROOT = Path(__file__).resolve().parents[2]


def test_logs_follow_streams_new_lines_and_stops_on_ctrl_c(docker: Any) -> None:
    run_id = f"dockertest-logs-{os.getpid()}"
    docker.containers.run(DEFAULT_PACSIM_IMAGE, ["sh", "-c", "echo first; sleep 3; "
                                                 "echo later-line; sleep 300"],
                          entrypoint=[], detach=True, name=run_id,
                          labels={RUN_LABEL: run_id, ACTOR_LABEL: "ris"})
    try:
        process = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "logs", "-f",
                                    "--run", run_id], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not any("later-line" in line for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        reader.join(5)
        assert "Traceback" not in process.stderr.read()
        assert lines[0].startswith("ris") and lines[0].rstrip().endswith("| first"), lines
        assert lines[1].rstrip().endswith("| later-line"), lines  # arrived while following
    finally:
        remove_by_label(docker, run_id)
