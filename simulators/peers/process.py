"""Start a peer process, wait until it listens, and always take it down again."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

#: Long enough for a cold Orthanc on a busy 2-core machine; a peer slower than this is broken.
READY_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (bind to port 0 and read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(ready: Callable[[], bool], *, process: subprocess.Popen | None = None,
               timeout: float = READY_TIMEOUT, what: str = "peer") -> None:
    """Poll ``ready()`` until true; fail early if ``process`` exits, late after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, process: subprocess.Popen | None = None,
                  timeout: float = READY_TIMEOUT, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on ``host:port`` (bounded)."""
    wait_until(lambda: port_open(port, host), process=process, timeout=timeout,
               what=f"server on {host}:{port}")


def terminate(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: no peer outlives its user."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


__all__ = ["free_port", "wait_until", "port_open", "wait_for_port", "terminate", "READY_TIMEOUT"]
