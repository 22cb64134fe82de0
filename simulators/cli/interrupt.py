"""Graceful interruption, one mechanism for every command: SIGINT and SIGTERM alike.

Why: a CI timeout sends SIGTERM, a person presses Ctrl-C; both must end a command the
same way k6 and pytest do: say what finished, leave the partial report marked
INTERRUPTED, say how to resume where resuming exists, exit 130, and never print a
Python traceback. Commands keep their own partial-report logic; this module only

- turns SIGTERM into the ``KeyboardInterrupt`` SIGINT already raises, and remembers
  which signal it was (:func:`signals_as_interrupt`, :func:`received`);
- lets a command that can stop cleanly (``probe`` finishing its cycle) take the first
  signal itself and only the second as an interrupt (``on_first``);
- prints the closing lines in one shape (:func:`report_interrupted`);
- covers the moments no command is in charge of: the imports before ``main`` runs
  (:func:`install_early`) and the interpreter's shutdown after it returned
  (:func:`exit_quietly_on_signal`), where a second Ctrl-C would otherwise print a
  traceback from ``threading._shutdown``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

EXIT_INTERRUPTED = 130
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: list[str] = []


def received() -> str | None:
    """The name of the last signal that interrupted this process (None: none did)."""
    return _received[-1] if _received else None


def _remember(signum: int) -> None:
    _received.append(signal.Signals(signum).name)


def _quit(signum: int, _frame: Any) -> None:
    """Leave at once, without Python's unwinding (nothing of ours is running yet, or
    everything already finished): no traceback, exit 130."""
    _remember(signum)
    os.write(2, f"pacsim: interrupted ({signal.Signals(signum).name})\n".encode())
    os._exit(EXIT_INTERRUPTED)


def install_early() -> None:
    """Before the CLI's imports (a few seconds on a cold disk): Ctrl-C there exits 130
    quietly instead of printing the traceback of whatever module was loading."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _quit)


def exit_quietly_on_signal() -> None:
    """After an interrupted command has written its report: a further signal (or a
    hang joining a stuck thread at shutdown) ends the process quietly with 130."""
    install_early()


@contextlib.contextmanager
def signals_as_interrupt(on_first: Callable[[str], None] | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` in the main thread while inside.

    With ``on_first``, the first signal calls ``on_first(signal_name)`` instead (the
    command stops at its next safe point) and only a second one raises. Handlers are
    restored on exit, so calling ``main()`` in-process (tests) leaves no trace.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[str] = []

    def handler(signum: int, _frame: Any) -> None:
        _remember(signum)
        seen.append(signal.Signals(signum).name)
        if on_first is not None and len(seen) == 1:
            on_first(seen[0])
            return
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def report_interrupted(finished: str, *, partial: Path | str | None = None,
                       resume: str | None = None) -> int:
    """The closing lines of an interrupted command, on stderr; returns 130.

    ``finished`` says what was done before the signal; ``partial`` is the report
    marked INTERRUPTED; ``resume`` the command that continues where this one stopped.
    """
    name = received() or "SIGINT"
    lines = [f"pacsim: INTERRUPTED by {name}: {finished}"]
    if partial is not None:
        lines.append(f"pacsim: partial report (marked INTERRUPTED): {partial}")
    if resume:
        lines.append(f"pacsim: to resume where it stopped: {resume}")
    else:
        lines.append("pacsim: nothing to resume; run the command again to start over")
    print("\n".join(lines), file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def interrupted_label() -> str:
    """``INTERRUPTED (SIGTERM)``: how a partial report names why it is partial."""
    return f"INTERRUPTED ({received() or 'SIGINT'})"


__all__ = ["EXIT_INTERRUPTED", "received", "install_early", "exit_quietly_on_signal",
           "signals_as_interrupt", "report_interrupted", "interrupted_label"]
