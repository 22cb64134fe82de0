"""The event bus: one ``Exchange`` event per wire interaction.

Reports, load statistics and metrics only listen here; they import no protocol
code. Emitting must stay cheap (a load run emits thousands per second), so the
bus is a plain list of callables and a subscriber that raises is logged and
skipped instead of breaking the exchange that emitted the event.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Exchange:
    """One request/response (or one-way message) on the wire.

    ``kind`` is the protocol operation (``dicom.c-store``, ``hl7.send``...), ``actor``
    the simulated system that took part, ``peer`` the other side ("host:port" or an
    AE title), ``outcome`` is ``ok``/``warning``/``failed``/``error`` and ``status`` the
    protocol's own code (``0x0000``, ``AA``...).
    """

    kind: str
    actor: str
    peer: str = ""
    start: float = 0.0
    duration: float = 0.0
    outcome: str = "ok"
    status: str = ""
    bytes: int = 0
    step: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Exchange], None]


class EventBus:
    """Fan-out of exchange events to subscribers; thread-safe to subscribe and emit."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it again."""
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not subscriber]

        return unsubscribe

    def emit(self, event: Exchange) -> None:
        """Deliver ``event`` to every subscriber; a failing subscriber is only logged."""
        for subscriber in self._subscribers:  # copy-on-write list: no lock needed
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - notifications must never break the wire
                log.exception("event subscriber %r failed", subscriber)

    @contextmanager
    def exchange(self, kind: str, actor: str, peer: str = "", **detail: Any) -> Iterator[Exchange]:
        """Time a block as one exchange; the block may set ``outcome``/``status``/``bytes``.

        An exception inside the block marks the exchange ``error`` and is re-raised.
        """
        event = Exchange(kind=kind, actor=actor, peer=peer, start=time.time(), detail=detail)
        began = time.perf_counter()
        try:
            yield event
        except BaseException as exc:
            event.outcome = "error"
            event.detail.setdefault("error", str(exc))
            raise
        finally:
            event.duration = time.perf_counter() - began
            self.emit(event)


#: The process-wide default bus. Actors take a bus argument and fall back to this one.
bus = EventBus()

__all__ = ["Exchange", "EventBus", "Subscriber", "bus"]
