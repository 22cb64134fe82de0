"""Issue 13: an ACK is encoded in the character set of the message it acknowledges.

The sender declared MSH-18 ``8859/2``; it reads our ACK in that set. Before, the
listener wrote every ACK as UTF-8 (and declared no MSH-18), so a receiving facility
``PLZEŇ`` echoed into the ACK's MSH-4 arrived as ``PLZEĹ‡``. Real MLLP sockets; the
reply is read as raw bytes.
"""

from __future__ import annotations

import socket
from typing import Iterator

import pytest

from simulators.actors.ris import Ris, RisConfig
from simulators.events import EventBus
from simulators.hl7 import messages
from simulators.hl7.er7 import ack_code, read_header
from tests.integration.test_ris import make_order, with_msh_18


@pytest.fixture
def ris() -> Iterator[Ris]:
    with Ris(RisConfig(name="ris-ack-charset"), events=EventBus()) as actor:
        yield actor


def exchange(ris: Ris, payload: bytes) -> bytes:
    """One MLLP exchange; the reply payload exactly as the listener sent it."""
    with socket.create_connection(ris.hl7_address, timeout=10) as sock:
        sock.sendall(b"\x0b" + payload + b"\x1c\r")
        reply = b""
        while not reply.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {reply!r}"
            reply += chunk
    return reply[1:-2]


def with_receiving_facility(message: str, facility: str) -> str:
    first, *rest = message.split("\r")
    fields = first.split("|")
    fields[5] = facility  # fields[n - 1] is MSH-n: MSH-6
    return "\r".join(["|".join(fields), *rest])


def test_ack_is_in_the_senders_8859_2(ris: Ris) -> None:
    text = with_msh_18(messages.orm_o01(make_order(80)), "8859/2")
    text = with_receiving_facility(text, "PLZEŇ")
    raw = exchange(ris, text.encode("iso8859_2"))
    assert "PLZEŇ".encode("utf-8") not in raw, raw
    reply = raw.decode("iso8859_2")
    assert ack_code(reply) == "AA", reply
    header = read_header(reply)
    assert header.charset == "8859/2"
    assert header.sending_facility == "PLZEŇ"


def test_ack_without_msh_18_stays_in_the_listener_default(ris: Ris) -> None:
    text = with_receiving_facility(messages.orm_o01(make_order(81)), "KÖLN")
    raw = exchange(ris, text.encode("utf-8"))
    reply = raw.decode("utf-8")
    assert ack_code(reply) == "AA", reply
    assert read_header(reply).sending_facility == "KÖLN"
    assert read_header(reply).charset == ""
