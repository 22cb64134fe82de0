"""Fixtures shared by every test; the helper functions live in tests/helpers.py."""

from __future__ import annotations

import pytest

from tests.helpers import LANES_ATTRIBUTE, RecordedEvents, free_port


def fixture_lanes(item: pytest.Item) -> set[str]:
    """The lanes of every fixture ``item`` uses, directly or through other fixtures.

    Every definition of each name is read (an overriding fixture may request the one it
    overrides): a test marked once too often only leaves the fast lane, one marked
    too rarely would break it.
    """
    info = getattr(item, "_fixtureinfo", None)
    if info is None:  # not a Python test function (no fixtures to look at)
        return set()
    lanes: set[str] = set()
    for name in info.names_closure:
        for definition in info.name2fixturedefs.get(name, ()):
            lanes |= getattr(definition.func, LANES_ATTRIBUTE, frozenset())
    return lanes


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test that uses a tool fixture (see ``tests.helpers.needs``) with the
    tool's lane, before ``-m`` deselects: ``-m "not dcmtk"`` must also drop a test that
    reaches DCMTK only through a fixture."""
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for lane in sorted(fixture_lanes(item) - present):
            item.add_marker(lane)


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


@pytest.fixture
def event_bus() -> RecordedEvents:
    """A fresh event bus for this test alone, with the list of every event it carried
    (``event_bus.bus``, ``event_bus.events``): pass the bus to the actors and servers the
    test starts instead of reading the process-wide ``simulators.events.bus``."""
    return RecordedEvents()
