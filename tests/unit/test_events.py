"""The event bus: one event per exchange, and subscribers can never break the wire."""

from __future__ import annotations

import pytest

from simulators.events import EventBus, Exchange


def test_exchange_is_timed_and_delivered() -> None:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    with bus.exchange("dicom.c-echo", "ct1", peer="127.0.0.1:104") as event:
        event.status = "0x0000"
    assert len(seen) == 1
    assert seen[0].kind == "dicom.c-echo" and seen[0].status == "0x0000"
    assert seen[0].outcome == "ok" and seen[0].duration >= 0.0 and seen[0].start > 0


def test_exception_marks_exchange_as_error_and_propagates() -> None:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    with pytest.raises(RuntimeError):
        with bus.exchange("hl7.send", "ehr"):
            raise RuntimeError("peer closed")
    assert seen[0].outcome == "error" and "peer closed" in seen[0].detail["error"]


def test_failing_subscriber_is_isolated_and_unsubscribe_works() -> None:
    bus, seen = EventBus(), []

    def broken(_: Exchange) -> None:
        raise ValueError("bug in a report")

    bus.subscribe(broken)
    stop = bus.subscribe(seen.append)
    bus.emit(Exchange(kind="k", actor="a"))
    stop()
    bus.emit(Exchange(kind="k", actor="a"))
    assert len(seen) == 1
