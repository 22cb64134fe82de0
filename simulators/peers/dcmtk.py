"""DCMTK command-line peers (storescp, wlmscpfs, ...) as managed processes.

DCMTK honours the ``TCP_NODELAY`` environment variable; without it a C-STORE stream
into or out of DCMTK stalls on delayed ACKs (BASELINES.md: 45x slower), so every
DCMTK process started here gets ``TCP_NODELAY=1``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from simulators.peers.process import terminate, wait_for_port


def dcmtk_env() -> dict[str, str]:
    """The environment for any DCMTK process: Nagle off."""
    return {**os.environ, "TCP_NODELAY": "1"}


def run_dcmtk(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK client tool to completion, capturing its output (never raises on rc)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env=dcmtk_env(), check=False)


@contextmanager
def dcmtk_server(argv: Sequence[str], port: int, *,
                 cwd: str | Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a DCMTK server listening on ``port`` (appended to ``argv``) until the block ends."""
    process = subprocess.Popen([*argv, str(port)], cwd=cwd, env=dcmtk_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield process
    finally:
        terminate(process, grace=5)
        if process.stderr is not None:
            process.stderr.close()


__all__ = ["dcmtk_env", "run_dcmtk", "dcmtk_server"]
