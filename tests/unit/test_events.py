"""The event bus: one event per exchange, and subscribers can never break the wire."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from simulators.events import EventBus, Exchange
from tests.helpers import RecordedEvents


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


# ---------------------------------------------------------------- tests own their bus
ROOT = Path(__file__).resolve().parents[2]
SELF = Path(__file__).resolve()


def global_bus_readers(tests: Path) -> list[str]:
    """Where a test module touches the process-wide ``simulators.events.bus`` (but this
    one, which emits on it to show the ``event_bus`` fixture does not hear it)."""
    found = []
    for path in sorted(p for p in tests.rglob("*.py") if p.resolve() != SELF):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in ("simulators",
                                                                    "simulators.events"):
                if any(alias.name == "bus" for alias in node.names):
                    found.append(f"{path}:{node.lineno}")
            elif isinstance(node, ast.Attribute) and node.attr == "bus" and \
                    ast.unparse(node.value) in ("simulators", "simulators.events"):
                found.append(f"{path}:{node.lineno}")
    return found


def test_no_test_reads_the_process_wide_bus(tmp_path: Path) -> None:
    """Why: the process-wide bus carries the events of every server any test started,
    so a test reading it would have to filter by time. Tests take the ``event_bus``
    fixture (or an EventBus of their own) and pass it to what they start."""
    assert global_bus_readers(ROOT / "tests") == []
    (tmp_path / "test_a.py").write_text("from simulators.events import EventBus, bus\n")
    (tmp_path / "test_b.py").write_text("import simulators.events\nsimulators.events.bus.emit\n")
    assert global_bus_readers(tmp_path) == [f"{tmp_path / 'test_a.py'}:1",
                                            f"{tmp_path / 'test_b.py'}:2"]


def test_event_bus_fixture_is_a_fresh_bus_that_records(event_bus: RecordedEvents) -> None:
    from simulators.events import bus as process_wide

    assert event_bus.bus is not process_wide and event_bus.events == []
    with event_bus.bus.exchange("dicom.c-echo", "ct1"):
        pass
    process_wide.emit(Exchange(kind="elsewhere", actor="other"))
    assert event_bus.kinds() == ["dicom.c-echo"]
