"""The fast client's codec: framing, fragmentation within the peer's max PDU, partial reads.

Fragments written by ``dataset_pdus`` are compared byte for byte with pynetdicom's own
``encode_msg`` + ``P_DATA_TF`` encoding, so the hand-written hot path cannot drift from
the reference codec.
"""

from __future__ import annotations

import asyncio
import os
import struct
from io import BytesIO

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF

from simulators.dicom.fast import codec, dimse, raw
from simulators.dicom.fast.files import encode_dataset, read_part10
from simulators.dicom.fast.negotiation import associate_rq_bytes, build_contexts
from simulators.errors import ConfigError, ProtocolError, StoreError

SOP_INSTANCE = "1.2.826.0.1.3680043.8.498.1"
QUERY = b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY "


def reference_dataset_pdus(data: bytes, context_id: int, max_pdu: int) -> list[bytes]:
    """pynetdicom's encoding of the dataset part of a C-STORE-RQ."""
    primitive = C_STORE()
    primitive.MessageID = 7
    primitive.AffectedSOPClassUID = CTImageStorage
    primitive.AffectedSOPInstanceUID = SOP_INSTANCE
    primitive.DataSet = BytesIO(data)
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    pdus = [P_DATA_TF(p).encode() for p in message.encode_msg(context_id, max_pdu)]
    return [pdu for pdu in pdus if pdu[11] & 0x01 == 0]  # drop command fragments


def joined(parts: list[bytes | memoryview]) -> list[bytes]:
    """Pair up header + fragment as whole PDUs."""
    return [bytes(parts[i]) + bytes(parts[i + 1]) for i in range(0, len(parts), 2)]


@pytest.mark.parametrize("size", [1, 16378, 16379, 3 * 16378, 100_001])
def test_dataset_fragments_match_pynetdicom_byte_for_byte(size: int) -> None:
    data = os.urandom(size)
    ours = joined(list(codec.dataset_pdus(data, 3, 16384)))
    assert ours == reference_dataset_pdus(data, 3, 16384)


def test_fragments_respect_the_peer_max_pdu_and_flag_only_the_last() -> None:
    data = os.urandom(70_000)
    pdus = joined(list(codec.dataset_pdus(data, 1, 4096)))
    lengths = [struct.unpack(">I", pdu[2:6])[0] for pdu in pdus]
    assert max(lengths) <= 4096
    assert [pdu[11] for pdu in pdus] == [0x00] * (len(pdus) - 1) + [0x02]
    assert b"".join(pdu[12:] for pdu in pdus) == data


def test_unlimited_peer_pdu_sends_one_fragment() -> None:
    data = os.urandom(50_000)
    assert joined(list(codec.dataset_pdus(data, 1, 0))) == reference_dataset_pdus(data, 1, 0)


def test_command_pdus_carry_only_the_command_set() -> None:
    message = dimse.c_store_rq(5, CTImageStorage, SOP_INSTANCE)
    pdus = codec.command_pdus(message, 1, 16384)
    assert all(pdu[11] & 0x01 for pdu in pdus)
    assert pdus[-1][11] == 0x03
    assert message.command_set.CommandDataSetType == 0x0001  # a dataset follows


async def feed_in_pieces(reader: asyncio.StreamReader, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        reader.feed_data(data[start:start + piece])
        await asyncio.sleep(0)


def test_read_pdu_reassembles_partial_reads() -> None:
    pdus = joined(list(codec.dataset_pdus(os.urandom(40_000), 1, 16384)))

    async def scenario() -> list[tuple[int, bytes]]:
        reader = asyncio.StreamReader()
        feeder = asyncio.create_task(feed_in_pieces(reader, b"".join(pdus), 7))
        got = [await codec.read_pdu(reader, 16384, 5.0) for _ in pdus]
        await feeder
        return got

    got = asyncio.run(scenario())
    assert [raw for _, raw in got] == pdus
    assert {pdu_type for pdu_type, _ in got} == {codec.P_DATA_TYPE}


def test_claimed_length_over_the_limit_is_refused_before_reading() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(struct.pack(">BxI", codec.P_DATA_TYPE, 2_000_000_000))
        await codec.read_pdu(reader, 16384, 1.0)

    with pytest.raises(codec.PduTooLarge) as info:
        asyncio.run(scenario())
    assert info.value.context["length"] == 2_000_000_000
    assert info.value.context["limit"] == 16384


def test_read_pdu_times_out_on_a_stalled_peer() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(struct.pack(">BxI", codec.P_DATA_TYPE, 100) + b"\x00" * 10)
        await codec.read_pdu(reader, 16384, 0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(scenario())


def test_assembler_rebuilds_a_message_from_fragments() -> None:
    identifier = Dataset()
    identifier.PatientID = "PSM0001"
    identifier.PatientName = "DOE^JANE"
    encoded = encode_dataset(identifier, ExplicitVRLittleEndian)
    message = dimse.c_find_rq(9, dimse.FIND_MODELS["worklist"], encoded)
    assembler = codec.MessageAssembler(1 << 20)
    results = [assembler.feed(pdu) for pdu in codec.message_pdus(message, 1, 4096)]
    done = results[-1]
    assert results[:-1] == [None] * (len(results) - 1)
    assert done is not None and done.command_set.MessageID == 9
    assert done.data_set.getvalue() == encoded


def test_assembler_bounds_the_message_size() -> None:
    assembler = codec.MessageAssembler(50_000)
    pdus = joined(list(codec.dataset_pdus(os.urandom(200_000), 1, 16384)))
    with pytest.raises(codec.PduTooLarge):
        for pdu in pdus:
            assembler.feed(pdu)


def test_associate_rq_decodes_with_pynetdicom() -> None:
    contexts = build_contexts([(CTImageStorage, [ExplicitVRLittleEndian]),
                               ("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])])
    rq = A_ASSOCIATE_RQ()
    rq.decode(associate_rq_bytes("MODALITY1", "ARCHIVE", contexts, 65536))
    primitive = rq.to_primitive()
    assert (primitive.calling_ae_title, primitive.called_ae_title) == ("MODALITY1", "ARCHIVE")
    assert primitive.maximum_length_received == 65536
    assert [(cx.context_id, cx.abstract_syntax) for cx in primitive.presentation_context_definition_list] == [
        (1, CTImageStorage), (3, "1.2.840.10008.1.1")]


def test_build_contexts_rejects_nonsense() -> None:
    with pytest.raises(ConfigError):
        build_contexts([])
    with pytest.raises(ConfigError):
        build_contexts([(CTImageStorage, [])])


def test_read_part10_keeps_the_dataset_bytes(tmp_path) -> None:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.PatientID = "PSM0002"
    ds.BitsAllocated = 8
    ds.PixelData = os.urandom(2048)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "one.dcm"
    ds.save_as(path, enforce_file_format=True)
    instance = read_part10(path)
    assert (instance.sop_class, instance.sop_instance) == (CTImageStorage, ds.SOPInstanceUID)
    assert instance.transfer_syntax == ExplicitVRLittleEndian
    assert path.read_bytes().endswith(instance.data)
    assert instance.data == encode_dataset(ds, ExplicitVRLittleEndian)


def test_read_part10_refuses_a_file_without_the_dicm_prefix(tmp_path) -> None:
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"\x00" * 300)
    with pytest.raises(StoreError, match="not a DICOM Part 10 file"):
        read_part10(path)


# ------------------------------------------------------------- acceptor-side codec
def _received(message: object, context_id: int = 1) -> object:
    """A request as the acceptor sees it: encoded by pynetdicom, decoded again."""
    assembler = codec.MessageAssembler(1 << 20)
    decoded = None
    for pdu in codec.message_pdus(message, context_id, 16384):  # type: ignore[arg-type]
        decoded = assembler.feed(pdu)
    assert decoded is not None
    return decoded


@pytest.mark.parametrize("request_message, status, fields, has_dataset", [
    (dimse.c_echo_rq(3), 0x0000, {}, False),
    (dimse.c_store_rq(9, CTImageStorage, SOP_INSTANCE), 0xA900,
     {"ErrorComment": "SOP Class UID differs"}, False),
    (dimse.c_find_rq(4, dimse.FIND_MODELS["study"], b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY "),
     0xFF00, {}, True),
    (dimse.n_action_rq(5, "1.2.840.10008.1.20.1", "1.2.840.10008.1.20.1.1", 1, b""),
     0x0120, {"ErrorID": 7}, False),
    (dimse.n_set_rq(6, "1.2.840.10008.3.1.2.3.3", "1.2.3", b"\x08\x00\x52\x00\x00\x00\x00\x00"),
     0x0106, {"AttributeIdentifierList": [0x00400252]}, False),
])
def test_fast_response_command_matches_pynetdicom(request_message, status, fields,
                                                  has_dataset) -> None:
    """``response_command`` (hand-built) == pynetdicom's primitive + encoder, byte for byte."""
    from pynetdicom.dsutils import encode

    request = _received(request_message)
    dataset = b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY " if has_dataset else None
    reference = dimse.response_to(request, status, dataset, **fields)
    assert dimse.response_command(request, status, has_dataset, **fields) == encode(
        reference.command_set, True, True)


def test_move_counters_and_unknown_fields() -> None:
    from pynetdicom.dsutils import encode

    from pynetdicom.dimse_messages import C_MOVE_RQ
    from pynetdicom.dimse_primitives import C_MOVE

    primitive = C_MOVE()
    primitive.MessageID, primitive.Priority, primitive.MoveDestination = 2, 0, "DEST"
    primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    primitive.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    message = C_MOVE_RQ()
    message.primitive_to_message(primitive)
    move = _received(message)
    counts = {"NumberOfRemainingSuboperations": 3, "NumberOfCompletedSuboperations": 1,
              "NumberOfFailedSuboperations": 0, "NumberOfWarningSuboperations": 0}
    reference = encode(dimse.response_to(move, 0xFF00, None, **counts).command_set, True, True)
    assert dimse.response_command(move, 0xFF00, False, **counts) == reference
    with pytest.raises(ValueError):
        dimse.response_command(move, 0, False, EventTypeID=1)  # not a C-MOVE-RSP element


def test_encoded_command_pdus_flag_command_fragments() -> None:
    command = bytes(range(100))
    [header, body] = codec.encoded_command_pdus(command, 5, 0)
    assert struct.unpack(">BxIIBB", header) == (0x04, 106, 102, 5, 0x03) and bytes(body) == command
    parts = codec.encoded_command_pdus(command, 5, 56)  # 50-byte fragments
    assert [bytes(parts[i])[-1] for i in range(0, len(parts), 2)] == [0x01, 0x03]


# ---------------------------------------------------------------- acceptor policy
def _policy(**overrides: object):
    from simulators.dicom.fast.acceptance import AcceptorPolicy, SupportedContext

    settings = {"ae_title": "ARC", "max_pdu": 65536, "contexts": (
        SupportedContext("1.2.840.10008.1.1", ("1.2.840.10008.1.2",)),
        SupportedContext(CTImageStorage, (ExplicitVRLittleEndian,), True, True))}
    settings.update(overrides)
    return AcceptorPolicy(**settings)  # type: ignore[arg-type]


def _negotiate(policy, calling: str = "MOD", called: str = "ARC", rq_bytes: bytes | None = None):
    from simulators.dicom.fast.acceptance import build_supported, negotiate

    raw = rq_bytes or associate_rq_bytes(calling, called, build_contexts(
        [(CTImageStorage, [ExplicitVRLittleEndian]), ("1.2.840.10008.1.1", ["1.2.840.10008.1.2.1"])]),
        16384)
    rq = A_ASSOCIATE_RQ()
    rq.decode(raw)
    return negotiate(rq, policy, build_supported(policy.contexts))


def test_policy_rejections_carry_the_ps38_result_source_reason() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_RJ

    from simulators.dicom.fast.acceptance import Rejection

    cases = [(_negotiate(_policy(), called="OTHER"), (1, 1, 7)),
             (_negotiate(_policy(allowed_calling=frozenset({"CT1"}))), (1, 1, 3))]
    raw = bytearray(associate_rq_bytes("MOD", "ARC", build_contexts([(CTImageStorage, [ExplicitVRLittleEndian])]), 0))
    raw[6:8] = b"\x00\x02"  # protocol version without bit 0
    cases.append((_negotiate(_policy(), rq_bytes=bytes(raw)), (1, 2, 2)))
    for outcome, expected in cases:
        assert isinstance(outcome, Rejection)
        rj = A_ASSOCIATE_RJ()
        rj.decode(outcome.rj_bytes)
        assert (rj.result, rj.source, rj.reason_diagnostic) == expected


def test_accepted_contexts_and_announced_max_pdu() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_AC

    from simulators.dicom.fast.acceptance import Negotiated

    outcome = _negotiate(_policy())
    assert isinstance(outcome, Negotiated)
    assert [(c.abstract_syntax, c.transfer_syntax) for c in outcome.contexts.values()] == [
        (CTImageStorage, ExplicitVRLittleEndian)]  # Verification: syntax not supported
    assert outcome.peer_max_pdu == 16384 and outcome.calling_ae == "MOD"
    ac = A_ASSOCIATE_AC()
    ac.decode(outcome.ac_bytes)
    primitive = ac.to_primitive()
    assert primitive.maximum_length_received == 65536
    assert sorted(cx.result for cx in primitive.presentation_context_definition_results_list) == [0, 4]


# ------------------------------------------------------------- requestor lean path
@pytest.mark.parametrize("message_id, priority, sop_instance", [
    (1, 2, SOP_INSTANCE), (65535, 0, SOP_INSTANCE + "1"), (300, 1, "1.2.3")])
def test_c_store_command_matches_pynetdicom(message_id: int, priority: int,
                                            sop_instance: str) -> None:
    reference = dimse.c_store_rq(message_id, CTImageStorage, sop_instance, priority)
    ours = dimse.c_store_rq_command(message_id, CTImageStorage, sop_instance, priority)
    assert joined(codec.encoded_command_pdus(ours, 3, 16384)) == \
        codec.command_pdus(reference, 3, 16384)


@pytest.mark.parametrize("sizes, max_pdu", [
    ((1000, 524_300), 16384), ((16378, 16378), 16384), ((5, 1, 70_000), 4096),
    ((0, 30_000), 16384), ((40_000, 3), 0)])
def test_dataset_in_pieces_gives_the_same_pdus(sizes: tuple[int, ...], max_pdu: int) -> None:
    pieces = [os.urandom(size) for size in sizes]
    whole = b"".join(pieces)
    in_pieces = b"".join(bytes(part) for part in codec.dataset_pdus(pieces, 7, max_pdu))
    assert in_pieces == b"".join(joined(list(codec.dataset_pdus(whole, 7, max_pdu))))
    assert in_pieces == b"".join(reference_dataset_pdus(whole, 7, max_pdu))


def _find_responses(count: int) -> tuple[list[bytes], list[bytes]]:
    """pynetdicom-encoded C-FIND-RSPs: ``count`` pending with identifiers, then Success."""
    request = _received(dimse.c_find_rq(4, dimse.FIND_MODELS["worklist"], QUERY))
    identifiers, pdus = [], []
    for index in range(count):
        identifier = Dataset()
        identifier.PatientID = f"PSM{index:04d}"
        identifiers.append(encode_dataset(identifier, ExplicitVRLittleEndian))
        pdus += codec.message_pdus(dimse.response_to(request, 0xFF00, identifiers[-1]), 1, 16384)
    pdus += codec.message_pdus(dimse.response_to(request, 0x0000), 1, 16384)
    return pdus, identifiers


def test_raw_assembler_reads_status_and_identifiers_without_pydicom() -> None:
    pdus, identifiers = _find_responses(3)
    assembler = raw.RawAssembler(1 << 20)
    messages = [message for pdu in pdus for message in assembler.feed(pdu)]
    assert [m.status for m in messages] == [0xFF00] * 3 + [0x0000]
    assert {m.responded_to for m in messages} == {4}
    assert [m.command_field for m in messages] == [0x8020] * 4
    assert [m.data for m in messages] == [*identifiers, None]
    reference = codec.MessageAssembler(1 << 20)
    decoded = [reference.feed(pdu) for pdu in pdus]
    assert [m.to_dimse().command_set for m in messages] == \
        [d.command_set for d in decoded if d is not None]


def test_raw_assembler_splits_a_pdu_holding_two_messages() -> None:
    pdus, _ = _find_responses(0)
    echo = codec.message_pdus(dimse.response_to(_received(dimse.c_echo_rq(8)), 0x0000), 3, 0)
    both = pdus + echo  # two single-PDV PDUs, merged into one PDU with two PDVs
    body = b"".join(pdu[6:] for pdu in both)
    merged = struct.pack(">BxI", codec.P_DATA_TYPE, len(body)) + body
    messages = raw.RawAssembler(1 << 20).feed(merged)
    assert [(m.context_id, m.responded_to, m.status) for m in messages] == [
        (1, 4, 0x0000), (3, 8, 0x0000)]


@pytest.mark.parametrize("pdu", [
    struct.pack(">BxIIBB", 4, 6, 100, 1, 0x03),  # PDV claims more than its PDU
    struct.pack(">BxIIBB", 4, 8, 4, 1, 0x02) + b"\x00\x00",  # data set before a command
    struct.pack(">BxIIBB", 4, 10, 6, 1, 0x03) + struct.pack("<HHI", 0, 0x0900, 99)[:4],
    struct.pack(">BxIIBB", 4, 14, 10, 1, 0x03) + struct.pack("<HHI", 8, 0x10, 0),  # group 8
])
def test_raw_assembler_refuses_malformed_messages(pdu: bytes) -> None:
    with pytest.raises(ProtocolError):
        raw.RawAssembler(1 << 20).feed(pdu)


def test_raw_assembler_bounds_the_message_size() -> None:
    assembler = raw.RawAssembler(50_000)
    command = codec.encoded_command_pdus(dimse.c_store_rq_command(1, CTImageStorage, "1.2"),
                                         1, 16384)
    assembler.feed(b"".join(bytes(p) for p in command))
    with pytest.raises(codec.PduTooLarge):
        for pdu in joined(list(codec.dataset_pdus(os.urandom(200_000), 1, 16384))):
            assembler.feed(pdu)


def test_buffered_pdu_is_read_without_waiting() -> None:
    """A PDU already in the buffer is returned even with a zero timeout (no timer)."""
    pdu = joined(list(codec.dataset_pdus(os.urandom(100), 1, 16384)))[0]

    async def scenario() -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(pdu)
        return await codec.read_pdu(reader, 16384, 0)

    assert asyncio.run(scenario()) == (codec.P_DATA_TYPE, pdu)


@pytest.mark.parametrize("max_pdu", [16384, 40, 0])
def test_c_find_request_matches_pynetdicom(max_pdu: int) -> None:
    """Hand-built command + identifier PDUs == pynetdicom's C-FIND-RQ, byte for byte."""
    model = dimse.FIND_MODELS["worklist"]
    ours = codec.encoded_command_pdus(dimse.c_find_rq_command(77, model, 1), 1, max_pdu)
    ours.extend(codec.dataset_pdus(QUERY, 1, max_pdu))
    reference = codec.message_pdus(dimse.c_find_rq(77, model, QUERY, 1), 1, max_pdu)
    assert b"".join(bytes(part) for part in ours) == b"".join(reference)
