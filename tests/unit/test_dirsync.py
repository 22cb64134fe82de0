"""Directory fsync group commit: shared fsyncs, never one that began before the rename."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from simulators.dicom.dirsync import DirectorySync, fsync_directory


class _Disk:
    """An fsync that records each call and blocks until released."""

    def __init__(self) -> None:
        self.started: list[int] = []   # ticket count seen when each fsync began
        self.release = threading.Semaphore(0)
        self.calls = 0
        self.lock = threading.Lock()
        self.entered = threading.Event()

    def fsync(self, directory: Path) -> None:
        with self.lock:
            self.calls += 1
        self.entered.set()
        self.release.acquire()


def _wait_for(predicate, timeout: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


def test_callers_during_an_fsync_share_the_next_one_not_the_running_one(tmp_path: Path) -> None:
    disk = _Disk()
    sync = DirectorySync(disk.fsync)
    returned: list[str] = []
    first = threading.Thread(target=lambda: (sync.sync(tmp_path), returned.append("A")))
    first.start()
    assert disk.entered.wait(10)           # A's fsync is running
    late = [threading.Thread(target=lambda n=n: (sync.sync(tmp_path), returned.append(n)))
            for n in ("B", "C", "D")]
    for thread in late:
        thread.start()
    _wait_for(lambda: sync._states[tmp_path].requested == 4)
    disk.release.release()                 # A's fsync ends: it began before B-D called
    first.join(10)
    assert returned == ["A"]               # B, C, D must not count on A's fsync
    _wait_for(lambda: disk.calls == 2)     # one of them runs the next fsync for all three
    disk.release.release()
    for thread in late:
        thread.join(10)
    assert sorted(returned) == ["A", "B", "C", "D"]
    assert disk.calls == 2                 # four renames, two fsyncs
    assert tmp_path not in sync._states    # nothing kept once nobody waits


def test_a_failed_fsync_is_raised_and_the_next_caller_syncs_again(tmp_path: Path) -> None:
    calls: list[int] = []

    def failing(directory: Path) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(5, "I/O error")

    sync = DirectorySync(failing)
    with pytest.raises(OSError):
        sync.sync(tmp_path)
    sync.sync(tmp_path)
    assert len(calls) == 2


def test_the_real_fsync_runs_on_a_directory(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    fsync_directory(tmp_path)
    DirectorySync().sync(tmp_path)
