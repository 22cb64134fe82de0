"""A one-line progress display: studies done/total, rate and ETA, on a text stream.

Plain text, no dependency: on a terminal the line rewrites itself (``\\r``); in a
log file or CI (not a TTY) it prints a full line at most every few seconds so logs
stay readable. Updates are throttled, so calling it per study costs nothing.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Thread-safe progress line; ``stream`` None disables it."""

    def __init__(self, total: int, stream: TextIO | None, *, label: str = "migrate",
                 already: int = 0) -> None:
        self.total, self.stream, self.label = total, stream, label
        self.done = already
        self._base = already
        self._started = time.monotonic()
        self._last_print = 0.0
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._interval = 0.2 if self._tty else 5.0
        self._lock = threading.Lock()
        self._printed_done = -1

    def rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return (self.done - self._base) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        remaining = (self.total - self.done) / rate if rate > 0 else None
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.label}: {self.done}/{self.total} studies ({percent:.0f}%), "
                f"{rate:.1f} studies/s, ETA {format_eta(remaining)}")

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if self.stream is None or (now - self._last_print < self._interval
                                       and self.done < self.total):
                return
            self._last_print = now
            self._write(self.line())

    def finish(self, note: str = "") -> None:
        if self.stream is None:
            return
        with self._lock:
            if not note and not self._tty and self._printed_done == self.done:
                return  # the final count is already on the log
            self._write(self.line() + (f" - {note}" if note else ""))
            if self._tty:
                self.stream.write("\n")
            self.stream.flush()

    def _write(self, text: str) -> None:
        assert self.stream is not None
        self._printed_done = self.done
        if self._tty:
            self.stream.write("\r" + text.ljust(79))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


__all__ = ["Progress", "format_eta"]
