"""Group commit for directory fsyncs: one fsync covers every rename made before it began.

Why: the archive makes each received object durable by fsync'ing the file, renaming
it into its series directory and fsync'ing that directory (store.py). With 8
senders storing into the same series at once, each paid its own directory fsync
(~3 ms each on this machine's ext4, a quarter of a durable C-STORE); the profile
of ``benchmarks/archive_ingest.py --senders 8`` showed the store threads waiting
in fsync for most of their time.

The guarantee is unchanged: :meth:`DirectorySync.sync` returns only after an fsync
of the directory that *started after* the call began, so the caller's rename, done
before the call, is on disk. Callers arriving while an fsync runs wait for it to
finish and then share the next one, instead of each issuing their own.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _State:
    __slots__ = ("requested", "done", "running")

    def __init__(self) -> None:
        self.requested = 0   # tickets handed out
        self.done = 0        # every ticket <= done is durable
        self.running = False


class DirectorySync:
    """Coalesces concurrent fsyncs of the same directory (see the module docstring)."""

    def __init__(self, fsync: Callable[[Path], None] = fsync_directory) -> None:
        self._fsync = fsync
        self._cond = threading.Condition()
        self._states: dict[Path, _State] = {}

    def sync(self, directory: Path) -> None:
        """Return once an fsync of ``directory`` begun after this call has completed.

        An fsync error is raised to the caller that ran it; callers that were
        waiting for that fsync are not durable either, so one of them runs the
        next fsync (and gets its own error if the disk still fails).
        """
        with self._cond:
            state = self._states.setdefault(directory, _State())
            state.requested += 1
            ticket = state.requested
            while True:
                if state.done >= ticket:
                    return
                if not state.running:
                    break
                self._cond.wait()
            state.running = True
            covered = state.requested  # every rename with a ticket <= covered is done
        error: BaseException | None = None
        try:
            self._fsync(directory)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after waking waiters
            error = exc
            raise
        finally:
            with self._cond:
                state.running = False
                if error is None:
                    state.done = max(state.done, covered)
                if state.done >= state.requested and self._states.get(directory) is state:
                    del self._states[directory]  # nobody waits: one entry per busy directory
                self._cond.notify_all()


__all__ = ["DirectorySync", "fsync_directory"]
