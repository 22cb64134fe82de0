"""What every actor shares: a lifecycle that is safe to use in ``with`` and ExitStack.

An actor is a plain object (config dataclass in, operations out) that does not
know whether it runs in-process, as ``pacsim serve`` or in a container. Settings are
read at construction; ``start()`` binds sockets and reports the real port (port 0
picks a free one, so tests never collide); ``stop()`` is idempotent.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Self

from simulators.events import EventBus, bus as default_bus


class Actor:
    """Base class: lifecycle, logging and the event bus; subclasses do the protocols."""

    #: Short kind name used by ``pacsim serve KIND`` and scenario files.
    kind: str = "actor"

    def __init__(self, name: str | None = None, events: EventBus | None = None) -> None:
        self.name = name or self.kind
        self.events = events or default_bus
        self.log = logging.getLogger(f"pacsim.{self.kind}.{self.name}")
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> Self:
        """Open listeners and background work. Calling it twice is a no-op."""
        if not self._running:
            self._start()
            self._running = True
            self.log.info("%s started: %s", self.kind, self.describe())
        return self

    def stop(self) -> None:
        """Close everything the actor opened. Safe to call more than once."""
        if self._running:
            self._running = False
            self._stop()
            self.log.info("%s stopped", self.kind)

    def describe(self) -> str:
        """One line for logs: where the actor listens and as whom."""
        return self.name

    # Subclasses implement these two.
    def _start(self) -> None:  # pragma: no cover - trivial default
        pass

    def _stop(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["Actor"]
