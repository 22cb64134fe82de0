"""DCMTK command-line peers (storescp, wlmscpfs, ...) as managed processes.

DCMTK honours the ``TCP_NODELAY`` environment variable; without it a C-STORE stream
into or out of DCMTK stalls on delayed ACKs (BASELINES.md: 45x slower), so every
DCMTK process started here gets ``TCP_NODELAY=1``.

Tools are started by absolute path, never by bare name: inside the venv pynetdicom's
console scripts ``storescu``, ``findscu``, ``movescu``, ``storescp``... shadow DCMTK's
on ``PATH``, so a "DCMTK peer" called by name may be pynetdicom measuring against
itself. :func:`dcmtk_tool` looks in ``$PACSIM_DCMTK_BIN``, ``/usr/bin``,
``/usr/local/bin``, then ``PATH``, and takes the first whose ``--version`` names
DCMTK or OFFIS.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulators.errors import ConfigError
from simulators.peers.process import terminate, wait_for_port

#: Where DCMTK's packages install their tools, searched before ``PATH``.
DCMTK_DIRS = ("/usr/bin", "/usr/local/bin")
#: Words a DCMTK tool's ``--version`` output contains (pynetdicom's apps print neither).
_DCMTK_MARKS = ("dcmtk", "offis")


def is_dcmtk(path: str) -> bool:
    """True when the executable at ``path`` says it is DCMTK's (``--version``)."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    text = (done.stdout + done.stderr).lower()
    return any(mark in text for mark in _DCMTK_MARKS)


@functools.lru_cache(maxsize=None)
def find_dcmtk_tool(name: str) -> str | None:
    """The absolute path of DCMTK's ``name`` tool, or None when DCMTK has none here.

    Cached: the answer does not change while a process runs, and each check starts
    the tool once.
    """
    if os.sep in name:
        return name if is_dcmtk(name) else None
    folders = [os.environ.get("PACSIM_DCMTK_BIN", ""), *DCMTK_DIRS]
    candidates = [os.path.join(folder, name) for folder in folders if folder]
    candidates += [os.path.join(folder, name)
                   for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    seen: set[str] = set()
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if real in seen or not (os.path.isfile(real) and os.access(real, os.X_OK)):
            continue
        seen.add(real)
        if is_dcmtk(candidate):
            return os.path.abspath(candidate)
    return None


def dcmtk_tool(name: str) -> str:
    """:func:`find_dcmtk_tool`, raising :class:`ConfigError` naming the tool if absent."""
    path = find_dcmtk_tool(name)
    if path is None:
        shadow = shutil.which(name)
        raise ConfigError("DCMTK tool not found (install dcmtk or set PACSIM_DCMTK_BIN)",
                          tool=name, on_path=shadow or "nothing")
    return path


def dcmtk_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with its program resolved to DCMTK's absolute path."""
    return [dcmtk_tool(argv[0]), *argv[1:]]


def dcmtk_env() -> dict[str, str]:
    """The environment for any DCMTK process: Nagle off."""
    return {**os.environ, "TCP_NODELAY": "1"}


def run_dcmtk(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK client tool to completion, capturing its output (never raises on rc).

    ``args[0]`` may be a bare name: it is resolved to DCMTK's tool (:func:`dcmtk_tool`).
    """
    return subprocess.run(dcmtk_argv(args), capture_output=True, text=True, timeout=timeout,
                          env=dcmtk_env(), check=False)


@dataclass(frozen=True, slots=True)
class Burst:
    """N DCMTK client processes started at once (:func:`run_dcmtk_burst`).

    Timing includes process start on every figure: ``wall`` is first process
    started to last exited, ``latencies`` each process's start to its exit.
    """

    wall: float
    latencies: tuple[float, ...]
    failed: int
    #: The first failing process's stderr tail, for the report.
    first_error: str


def run_dcmtk_burst(argvs: Sequence[Sequence[str]], *, timeout: float = 600.0) -> Burst:
    """Start one DCMTK process per argv at once; each exit is seen when it happens.

    Why not ``communicate()`` in a loop: reading 200 output pipes one process at a
    time leaves the others blocked on full pipes, which slowed DCMTK's side of
    benchmarks/worklist_load.py from 16-20 s to 36 s. Here stdout is discarded,
    stderr goes to a file (never blocks), and one waiter thread per process
    stamps its exit. A process that fails (rc != 0 or an ``E:`` line) counts once.
    """
    argvs = [dcmtk_argv(argv) for argv in argvs]
    with tempfile.TemporaryDirectory(prefix="dcmtk-burst-") as folder:
        logs = [open(os.path.join(folder, f"{i}.err"), "w+b") for i in range(len(argvs))]
        ended = [0.0] * len(argvs)
        try:
            began = time.perf_counter()
            starts: list[float] = []
            processes = []
            for argv, log in zip(argvs, logs):
                starts.append(time.perf_counter())
                processes.append(subprocess.Popen(argv, env=dcmtk_env(),
                                                  stdout=subprocess.DEVNULL, stderr=log))

            def wait(index: int) -> None:
                try:
                    processes[index].wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    processes[index].kill()
                    processes[index].wait()
                ended[index] = time.perf_counter()

            waiters = [threading.Thread(target=wait, args=(i,), daemon=True)
                       for i in range(len(processes))]
            for waiter in waiters:
                waiter.start()
            for waiter in waiters:
                waiter.join()
            wall = max(ended) - began if ended else 0.0
            failed, first_error = 0, ""
            for process, log in zip(processes, logs):
                log.seek(0)
                err = log.read()
                if process.returncode != 0 or b"E: " in err:
                    failed += 1
                    first_error = first_error or err.decode(errors="replace")[-300:]
        finally:
            for log in logs:
                log.close()
    return Burst(wall, tuple(e - s for s, e in zip(starts, ended)), failed, first_error)


@contextmanager
def dcmtk_server(argv: Sequence[str], port: int, *,
                 cwd: str | Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a DCMTK server listening on ``port`` (appended to ``argv``) until the block ends."""
    process = subprocess.Popen([*dcmtk_argv(argv), str(port)], cwd=cwd, env=dcmtk_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield process
    finally:
        terminate(process, grace=5)
        if process.stderr is not None:
            process.stderr.close()


__all__ = ["Burst", "run_dcmtk_burst", "DCMTK_DIRS", "dcmtk_argv", "dcmtk_env", "dcmtk_server", "dcmtk_tool",
           "find_dcmtk_tool", "is_dcmtk", "run_dcmtk"]
