"""The control API runs declared operations only: a real, public, but undeclared
method of the served actor is refused over a real socket with a clear error."""

from __future__ import annotations

from typing import Iterator

import pytest

from simulators.actors.operations import declared_operations
from simulators.actors.ris import Ris, RisConfig
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.runtime.control import ControlServer
from simulators.runtime.remote import ControlClient, RemoteRis


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Ris, ControlServer]]:
    ris = Ris(RisConfig(ae_title="DECL_RIS"), events=EventBus())
    with ris, ControlServer(ris) as server:
        yield ris, server


@pytest.mark.parametrize("name", ["mpps_instances", "mpps_link", "active_associations",
                                  "stop", "_stop", "book", "config"])
def test_an_undeclared_attribute_is_refused_by_name(served, name: str) -> None:
    ris, server = served
    assert hasattr(ris, name)  # it exists on the actor: only the declaration says no
    reply = ControlClient(*server.address, name="ris").call(name, {}, timeout=5)
    assert isinstance(reply.error, ConfigError)
    assert reply.error.message == f"ris has no operation {name!r}"
    assert set(reply.error.context["operations"].split(",")) == \
        {"describe", *declared_operations("ris")}
    assert ris.running


def test_declared_operations_still_run_through_the_proxy(served) -> None:
    ris, server = served
    proxy = RemoteRis("ris", ControlClient(*server.address, name="ris"),
                      dicom_address=ris.dicom_address, hl7_address=ris.hl7_address,
                      events=EventBus()).start()
    assert proxy.orders() == ris.orders()
    assert proxy.order("NO-SUCH-ACCESSION") is None
    with pytest.raises(AttributeError, match="no operation 'mpps_instances'"):
        proxy.mpps_instances()  # type: ignore[attr-defined]
