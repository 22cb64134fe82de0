"""Properties of the HL7 v2 side's parsers: MLLP framing, ER7, MSH-18 decoding, and
the RIS's whole message handler.

Valid inputs round-trip (frames through any chunking, escape/unescape); damaged or
random inputs give a value or pacsim's Hl7Error (which becomes a NAK), never another
exception, and the framing decoder never holds more than its frame limit.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, strategies as st

from simulators.actors.ris import Ris, RisConfig
from simulators.errors import Hl7Error
from simulators.events import EventBus
from simulators.hl7 import messages
from simulators.hl7.ack import ack
from simulators.hl7.charsets import decode_message, encode_reply
from simulators.hl7.er7 import ack_code, escape, read_header, unescape
from simulators.hl7.framing import END_BLOCK, START_BLOCK, FrameDecoder, encode_frame
from simulators.hl7.parsing import parse
from simulators.world.models import Order, Patient, Procedure, ScheduledStep
from tests.property.strategies import damaged

payload = st.binary(max_size=600).filter(lambda b: START_BLOCK not in b and END_BLOCK not in b)


@given(st.lists(payload, max_size=6), st.data())
def test_frames_survive_any_chunking(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(START_BLOCK + f + END_BLOCK + b"\r" for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder, got = FrameDecoder(max_frame=4096), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        got += decoder.feed(stream[start:end]).frames
    assert got == frames
    assert not decoder.in_frame


@given(st.binary(max_size=4096), st.integers(1, 512))
def test_framing_takes_any_bytes_within_its_limit(data: bytes, limit: int) -> None:
    decoder = FrameDecoder(max_frame=limit)
    for start in range(0, len(data), 97):
        result = decoder.feed(data[start:start + 97])
        assert all(len(frame) <= limit for frame in result.frames)
        assert decoder.pending <= limit


def _order(family: str, given_name: str, n: int = 1) -> Order:
    patient = Patient(f"PID{n}", "PACSIM", family, given_name, dt.date(1960, 5, 4), "F",
                      "ISO_IR 192")
    procedure = Procedure("29252-4", "CT CHEST", "LN", "CT", "CHEST")
    step = ScheduledStep(f"SPS{n}", "CT01", "CT_ROOM", "CT", dt.datetime(2026, 1, 15, 9, 0), "CT")
    return Order(f"PL{n}", f"FI{n}", f"ACC{n}", patient, procedure, f"RP{n}",
                 f"1.2.826.0.1.3680043.10.999.{n}", step)


name = st.text(st.characters(codec="latin-1", exclude_characters="|^~\\&\r\n"),
               min_size=1, max_size=20).filter(str.strip)
orm = st.builds(lambda f, g: messages.orm_o01(_order(f.strip(), g.strip())), name, name)
orm_bytes = orm.map(lambda text: text.encode("utf-8"))


@given(st.one_of(orm, st.text(max_size=600)))
def test_read_header_gives_a_header_or_hl7_error(text: str) -> None:
    try:
        header = read_header(text)
    except Hl7Error as exc:
        assert exc.hl7_code == 100
        return
    assert isinstance(header.control_id, str)


@given(damaged(orm_bytes))
def test_msh_18_decoding_gives_text_or_hl7_error(data: bytes) -> None:
    try:
        text = decode_message(data)
    except Hl7Error as exc:
        assert exc.hl7_code in (102, 103)
        return
    assert isinstance(text, str)


@given(damaged(orm_bytes))
def test_er7_parse_gives_a_message_or_hl7_error(data: bytes) -> None:
    text = data.decode("latin-1")
    try:
        parse(text)
    except Hl7Error:
        pass


@given(st.text(max_size=200))
def test_escape_round_trips(value: str) -> None:
    escaped = escape(value)
    assert not any(ch in escaped for ch in "|^~&")
    assert unescape(escaped) == value


_RIS = Ris(RisConfig(name="ris-property", hl7=False, mwl=False, mpps=False), events=EventBus())


@given(damaged(orm_bytes))
def test_ris_handler_answers_every_message_or_raises_hl7_error(data: bytes) -> None:
    """What the MLLP listener calls per frame: an ACK, or an Hl7Error it turns into a NAK."""
    text = data.decode("latin-1")
    try:
        reply = _RIS.hl7_handler(text)
    except Hl7Error as exc:
        reply = ack(text, exc.ack_code, error_code=exc.hl7_code, error_text=exc.message)
    assert ack_code(reply) in {"AA", "AE", "AR", "CA", "CE", "CR"}


@given(orm, st.sampled_from(["8859/1", "8859/2", "UNICODE UTF-8", "ASCII", ""]))
def test_ack_is_encodable_in_the_senders_set(text: str, charset: str) -> None:
    first, *rest = text.split("\r")
    fields = (first.split("|") + [""] * 18)[:max(18, len(first.split("|")))]
    fields[17] = charset
    incoming = "\r".join(["|".join(fields), *rest])
    reply = ack(incoming, "AA")
    assert read_header(reply).charset == charset
    frame = encode_frame(reply, "utf-8")
    assert frame.startswith(START_BLOCK)
    assert encode_reply(reply, incoming)  # never raises, whatever the set lacks
