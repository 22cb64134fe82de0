"""The live console view: one status line per second while a load run is going.

On a terminal the line is rewritten in place; in a CI log (not a TTY) a line is
printed every ``log_every`` seconds so the log stays readable. The figures come from
the statistics (which read only events), or from worker processes' progress messages
when the run is spread over several processes.
"""

from __future__ import annotations

from typing import Mapping, TextIO


def format_live(elapsed: float, active: int, totals: Mapping[str, tuple[int, int]],
                recent_p95_ms: Mapping[str, float] | None = None) -> str:
    """``t=  12s active= 200  mwl.query n=431 err=0 p95(1s)=35ms ...``"""
    parts = [f"t={elapsed:5.0f}s", f"active={active:4d}"]
    for name in sorted(totals):
        count, errors = totals[name]
        text = f"{name} n={count} err={errors}"
        if recent_p95_ms is not None:
            p95 = recent_p95_ms.get(name)
            text += f" p95(1s)={p95:.0f}ms" if p95 is not None else " p95(1s)=-"
        parts.append(text)
    return "  ".join(parts)


class LiveView:
    """Writes status lines to ``stream`` (see the module docstring)."""

    def __init__(self, stream: TextIO, log_every: float = 10.0) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.log_every = log_every
        self._last_logged = -log_every

    def show(self, elapsed: float, line: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + line[:200])
        elif elapsed - self._last_logged >= self.log_every:
            self._last_logged = elapsed
            self.stream.write("load: " + line + "\n")
        else:
            return
        self.stream.flush()

    def finish(self, line: str) -> None:
        self.stream.write(("\r\x1b[2K" if self.tty else "") + "load: done " + line + "\n")
        self.stream.flush()


__all__ = ["LiveView", "format_live"]
