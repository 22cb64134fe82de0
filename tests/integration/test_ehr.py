"""The EHR actor against a recording MLLP peer, and its ORU^R01 listener, on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from simulators.errors import ConfigError, MllpError
from simulators.events import EventBus, Exchange
from simulators.actors.ehr import Ehr, EhrConfig
from simulators.hl7.ack import ack
from simulators.hl7.er7 import Hl7Error, ack_code, err_code, read_header
from simulators.hl7.messages import (
    adt, merged_patient_id, order_fields, order_from_message, oru_r01, parse,
    patient_from_message,
)
from simulators.hl7.mllp import MllpClient, MllpServer
from tests.unit.test_hl7_messages import sample_order, sample_patient


class FakeRis:
    """Records what arrives and ACKs it: AA, or AE 204 for cancels of unknown orders."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.placed: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, text: str) -> str:
        with self.lock:
            self.messages.append(text)
        header = read_header(text)
        if header.message_type in {"ORM", "OMG"}:
            fields = order_fields(parse(text))
            if fields["control"] == "NW":
                self.placed.add(fields["placer"])
            elif fields["placer"] not in self.placed:
                raise Hl7Error("no such order", hl7_code=204, location="ORC^1^2")
        return ack(text, "AA")


@pytest.fixture
def ris() -> Iterator[tuple[FakeRis, MllpServer]]:
    fake = FakeRis()
    with MllpServer(fake, name="fake-ris") as server:
        yield fake, server


@pytest.fixture
def events() -> tuple[EventBus, list[Exchange]]:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    return bus, seen


@pytest.fixture
def ehr(ris: tuple[FakeRis, MllpServer], events: tuple[EventBus, list[Exchange]]) -> Iterator[Ehr]:
    host, port = ris[1].address
    config = EhrConfig(name="ehr-test", ris_host=host, ris_port=port, timeout=5.0,
                       sending_facility="GENERAL")
    with Ehr(config, events=events[0]) as actor:
        yield actor


def test_adt_messages_reach_the_ris_with_the_patient(ehr: Ehr, ris: tuple[FakeRis, MllpServer]) -> None:
    patient = sample_patient()
    updated = patient.with_changes(family_name="Renamed")
    old = sample_patient("PACSIM0077")
    results = [ehr.admit(patient), ehr.register(patient), ehr.update(updated),
               ehr.merge(patient, old)]
    assert [r.code for r in results] == ["AA"] * 4
    assert [r.message_type for r in results] == ["ADT^A01", "ADT^A04", "ADT^A08", "ADT^A40"]
    assert ehr.acks == results
    assert len({r.control_id for r in results}) == 4
    received = [parse(text) for text in ris[0].messages]
    assert [read_header(t).trigger_event for t in ris[0].messages] == ["A01", "A04", "A08", "A40"]
    assert patient_from_message(received[0]) == patient
    assert patient_from_message(received[2]).family_name == "Renamed"
    assert merged_patient_id(received[3]) == "PACSIM0077"
    assert read_header(ris[0].messages[0]).sending_facility == "GENERAL"


@pytest.mark.parametrize("style", ["ORM", "OMG"])
def test_place_and_cancel_order(ehr: Ehr, ris: tuple[FakeRis, MllpServer], style: str) -> None:
    order = sample_order(accession=f"ACC-{style}")
    placed = ehr.place_order(order, style=style)
    cancelled = ehr.cancel_order(order, style=style)
    assert (placed.code, cancelled.code) == ("AA", "AA")
    expected_type = "ORM^O01" if style == "ORM" else "OMG^O19"
    assert placed.message_type == cancelled.message_type == expected_type
    placed_msg, cancel_msg = (parse(t) for t in ris[0].messages)
    assert order_from_message(placed_msg) == order  # the RIS can rebuild the same order
    assert order_fields(cancel_msg)["control"] == "CA"


def test_rejected_cancel_is_recorded_with_error_code(ehr: Ehr) -> None:
    result = ehr.cancel_order(sample_order(accession="NEVER-PLACED"))
    assert (result.code, result.error_code, result.accepted) == ("AE", 204, False)
    assert result.text == "no such order"
    assert ehr.acks[-1] == result


def test_one_connection_carries_all_messages(ehr: Ehr, events: tuple[EventBus, list[Exchange]]) -> None:
    for _ in range(10):
        ehr.admit(sample_patient())
    sends = [e for e in events[1] if e.kind == "hl7.send"]
    assert len(sends) == 10 and {e.status for e in sends} == {"AA"}
    assert {e.actor for e in sends} == {"ehr-test"}


def test_ehr_receives_oru_results(ehr: Ehr) -> None:
    order = sample_order()
    report = "FINDINGS: normal chest\nIMPRESSION: no acute disease"
    with MllpClient(*ehr.address, timeout=5.0) as client:
        reply = client.send(oru_r01(order, report))
        rejected = client.send(adt("A01", sample_patient()))
    assert ack_code(reply) == "AA"
    assert (ack_code(rejected), err_code(rejected)) == ("AR", 200)
    assert len(ehr.results) == 1
    result = ehr.results[0]
    assert (result.accession, result.patient_id, result.status, result.text) == \
        (order.accession, order.patient.patient_id, "F", report)
    assert result.placer == order.placer_number


def test_ris_down_raises_mllp_error(port: int) -> None:
    with Ehr(EhrConfig(ris_port=port, timeout=1.0)) as ehr:
        with pytest.raises(MllpError):
            ehr.admit(sample_patient())
    assert ehr.acks == []


def test_lifecycle_is_idempotent_and_needs_a_ris_port() -> None:
    ehr = Ehr(EhrConfig())
    ehr.start()
    ehr.start()
    assert ehr.address[1] > 0
    with pytest.raises(ConfigError, match="no RIS port"):
        ehr.admit(sample_patient())
    ehr.stop()
    ehr.stop()
    assert not ehr.running
    with pytest.raises(ConfigError, match="order style"):
        ehr.place_order(sample_order(), style="XML")


def test_configured_version_is_what_goes_on_the_wire(ris: tuple[FakeRis, MllpServer]) -> None:
    """Issue 13 #8: with ``hl7_version: 2.3.1`` every message the EHR builds says 2.3.1
    (with a 2.3.1 MSH-18), and OMG^O19, which 2.3.1 does not have, is refused with a
    ConfigError instead of silently going out as 2.5.1."""
    host, port = ris[1].address
    config = EhrConfig(name="ehr-231", ris_host=host, ris_port=port, timeout=5.0,
                       hl7_version="2.3.1")
    order = sample_order(sample_patient(family="Dvořák", given="Antonín"), accession="ACC-231")
    with Ehr(config) as ehr:
        assert ehr.admit(order.patient).code == "AA"
        assert ehr.place_order(order, style="ORM").code == "AA"
        with pytest.raises(ConfigError, match="OMG"):
            ehr.place_order(order, style="OMG")
    headers = [read_header(text) for text in ris[0].messages]
    assert [(h.message_type, h.version, h.charset) for h in headers] == [
        ("ADT", "2.3.1", "UNICODE"), ("ORM", "2.3.1", "UNICODE")]
    assert patient_from_message(parse(ris[0].messages[1])).family_name == "Dvořák"


def test_omg_follows_the_configured_version(ris: tuple[FakeRis, MllpServer]) -> None:
    host, port = ris[1].address
    config = EhrConfig(name="ehr-26", ris_host=host, ris_port=port, timeout=5.0,
                       hl7_version="2.6")
    with Ehr(config) as ehr:
        assert ehr.place_order(sample_order(accession="ACC-26"), style="OMG").code == "AA"
    assert read_header(ris[0].messages[0]).version == "2.6"
