"""Properties of the DICOM decoders the listeners run on untrusted bytes.

PDU decoding (A-ASSOCIATE-RQ/AC and the other PDU types) and DIMSE command decoding
(P-DATA-TF PDVs -> command set -> DIMSE message): valid inputs round-trip; damaged
or random inputs give a value or one of pacsim's ProtocolErrors, never another
exception (which the listener would have to guess about) and never a hang.
"""

from __future__ import annotations

from hypothesis import given, strategies as st
from pynetdicom.pdu import A_ASSOCIATE_AC

from simulators.dicom.fast import codec, dimse, raw
from simulators.dicom.fast.acceptance import (
    AcceptorPolicy, Negotiated, Rejection, SupportedContext, build_supported, negotiate,
)
from simulators.dicom.fast.negotiation import accepted_contexts, associate_rq_bytes, build_contexts
from simulators.errors import ProtocolError
from tests.property.strategies import damaged

VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MWL = "1.2.840.10008.5.1.4.31"
IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
POLICY = AcceptorPolicy("PROPTEST", (
    SupportedContext(VERIFICATION, (IMPLICIT,)),
    SupportedContext(CT_STORAGE, (EXPLICIT, IMPLICIT)),
    SupportedContext(MWL, (IMPLICIT, EXPLICIT)),
), max_pdu=16384)
SUPPORTED = build_supported(POLICY.contexts)

ae_title = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\"),
                   min_size=1, max_size=16)
abstract = st.sampled_from([VERIFICATION, CT_STORAGE, MWL, "1.2.3.4.5.6"])
syntaxes = st.lists(st.sampled_from([IMPLICIT, EXPLICIT, "1.2.840.10008.1.2.4.50"]),
                    min_size=1, max_size=3, unique=True)


@st.composite
def associate_rq(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, list[str]]]]:
    requests = draw(st.lists(st.tuples(abstract, syntaxes), min_size=1, max_size=6))
    contexts = build_contexts(requests)
    data = associate_rq_bytes(draw(ae_title), "PROPTEST", contexts,
                              draw(st.sampled_from([0, 4096, 16384, 65536])))
    return data, requests


valid_rq = associate_rq().map(lambda pair: pair[0])


@given(associate_rq())
def test_associate_rq_round_trips_through_negotiation(case) -> None:
    data, requests = case
    rq = codec.decode_pdu(codec.A_ASSOCIATE_RQ_TYPE, data)
    outcome = negotiate(rq, POLICY, SUPPORTED)
    assert isinstance(outcome, Negotiated)
    offered = {VERIFICATION: {IMPLICIT}, CT_STORAGE: {EXPLICIT, IMPLICIT}, MWL: {IMPLICIT, EXPLICIT}}
    for index, (sop, wanted) in enumerate(requests):
        accepted = outcome.contexts.get(2 * index + 1)
        acceptable = offered.get(sop, set()) & set(wanted)
        assert (accepted is not None) == bool(acceptable)
        if accepted is not None:
            assert accepted.abstract_syntax == sop and accepted.transfer_syntax in acceptable
    # the AC we answer decodes, and the requestor side reads the same contexts from it
    ac = A_ASSOCIATE_AC()
    ac.decode(outcome.ac_bytes)
    results, peer_max = accepted_contexts(build_contexts(requests), ac)
    assert peer_max == POLICY.max_pdu
    assert {r.context_id for r in results if r.accepted} == set(outcome.contexts)


@given(damaged(valid_rq))
def test_damaged_associate_rq_is_refused_cleanly(data: bytes) -> None:
    try:
        rq = codec.decode_pdu(codec.A_ASSOCIATE_RQ_TYPE, data)
        outcome = negotiate(rq, POLICY, SUPPORTED)
    except ProtocolError:
        return
    assert isinstance(outcome, (Negotiated, Rejection))


@given(st.sampled_from(sorted(codec.PDU_CLASSES)), st.binary(max_size=2048))
def test_any_pdu_type_decodes_or_raises_protocol_error(pdu_type: int, body: bytes) -> None:
    data = bytes([pdu_type, 0]) + len(body).to_bytes(4, "big") + body
    try:
        codec.decode_pdu(pdu_type, data)
    except ProtocolError:
        pass


uid = st.from_regex(r"1\.2\.[1-9][0-9]{0,5}(\.[1-9][0-9]{0,5}){0,8}", fullmatch=True)


@st.composite
def store_command(draw: st.DrawFn) -> tuple[int, str, str, bytes]:
    message_id = draw(st.integers(1, 0xFFFF))
    sop_class, sop_instance = draw(uid), draw(uid)
    return message_id, sop_class, sop_instance, dimse.c_store_rq_command(message_id, sop_class,
                                                                         sop_instance)


@given(store_command(), st.sampled_from([0, 64, 128, 16384]))
def test_c_store_command_round_trips_through_pdvs(case, max_pdu: int) -> None:
    message_id, sop_class, sop_instance, command = case
    assembler = raw.RawAssembler(1 << 20)
    done = []
    for pdu in _joined(codec.encoded_command_pdus(command, 1, max_pdu)):
        done += assembler.feed(pdu)
    for pdu in _joined(list(codec.dataset_pdus(b"\x08\x00\x18\x00", 1, max_pdu))):
        done += assembler.feed(pdu)
    assert len(done) == 1
    message = done[0]
    assert message.command_field == 0x0001
    assert message.us(raw.MESSAGE_ID) == message_id
    assert message.text(0x0002) == sop_class and message.text(0x1000) == sop_instance
    decoded = message.to_dimse()
    assert str(decoded.command_set.AffectedSOPInstanceUID) == sop_instance


def _joined(parts: list) -> list[bytes]:
    """encoded_command_pdus yields header, fragment pairs: one bytes per PDU."""
    return [bytes(parts[i]) + bytes(parts[i + 1]) for i in range(0, len(parts), 2)]


echo_pdus = st.integers(1, 0xFFFF).map(
    lambda mid: b"".join(codec.message_pdus(dimse.c_echo_rq(mid), 1, 0)))
store_pdus = store_command().map(
    lambda case: b"".join(_joined(codec.encoded_command_pdus(case[3], 1, 0))))


@given(damaged(st.one_of(echo_pdus, store_pdus)))
def test_damaged_p_data_gives_messages_or_protocol_error(data: bytes) -> None:
    """The server's assembler (pynetdicom's decode_msg) and the client's raw one."""
    for assembler in (codec.MessageAssembler(1 << 16), raw.RawAssembler(1 << 16)):
        try:
            result = assembler.feed(data)
            messages = result if isinstance(result, list) else [result] if result else []
            for message in messages:
                if isinstance(message, raw.RawMessage):
                    message.to_dimse()
        except ProtocolError:
            pass


@given(st.binary(max_size=1024))
def test_parse_command_takes_any_bytes(data: bytes) -> None:
    try:
        fields = raw.parse_command(data)
    except ProtocolError:
        return
    assert sum(len(v) + 8 for v in fields.values()) <= len(data)
