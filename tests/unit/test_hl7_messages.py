"""HL7 framing, builders, parsing and ACKs without sockets.

Builders are checked by reading their output back (pacsim's parser and hl7apy's
group-aware parser and validator), so a field written to the wrong place fails.
``sample_patient``/``sample_order`` are imported by the HL7 integration tests.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hl7apy.parser import parse_message

from simulators.errors import ConfigError, ProtocolError
from simulators.hl7.ack import ack
from simulators.hl7.er7 import (
    Hl7Error, ack_code, err_code, escape, msa_field, msa_text, new_control_id, read_header,
    segments, unescape,
)
from simulators.hl7.framing import FrameDecoder, decode_frame, encode_frame, normalize_segments
from simulators.hl7.messages import (
    adt, merged_patient_id, omg_o19, order_fields, order_from_message, orm_o01, oru_r01, parse,
    patient_from_message,
)
from simulators.hl7.parsing import field, report_text
from simulators.world.models import Order, Patient, Procedure, ScheduledStep


def sample_patient(patient_id: str = "PACSIM0001", family: str = "Testperson",
                   given: str = "Alma") -> Patient:
    charset = None if (family + given).isascii() else "ISO_IR 192"
    return Patient(patient_id, "PACSIM", family, given, dt.date(1961, 7, 14), "F", charset)


def sample_order(patient: Patient | None = None, accession: str = "ACC0001",
                 priority: str = "HIGH") -> Order:
    step = ScheduledStep("SPS0001", "CT_ROOM1", "CT Room 1", "CT",
                         dt.datetime(2024, 5, 6, 8, 30, 0), "CT chest without contrast",
                         "Tech^Tara")
    return Order(placer_number=f"PL{accession}", filler_number=f"FI{accession}",
                 accession=accession, patient=patient or sample_patient(),
                 procedure=Procedure("24627-2", "CT Chest", "LN", "CT", "CHEST"),
                 requested_procedure_id="RP0001", study_uid="1.2.826.0.1.3680043.10.999.1.1",
                 step=step, priority=priority, referring_physician="Referrer^Rolf",
                 reason="persistent cough")


def frame(text: str) -> bytes:
    return encode_frame(text)


# -- framing --------------------------------------------------------------------
def test_frame_split_byte_by_byte_is_reassembled() -> None:
    decoder = FrameDecoder()
    data = frame("MSH|^~\\&|A\rPID|1")
    frames = []
    for byte in data:
        frames += decoder.feed(bytes([byte])).frames
    assert frames == [b"MSH|^~\\&|A\rPID|1"]
    assert not decoder.in_frame


def test_several_frames_in_one_read_come_out_in_order() -> None:
    result = FrameDecoder().feed(frame("MSH|1") + frame("MSH|2") + frame("MSH|3"))
    assert result.frames == [b"MSH|1", b"MSH|2", b"MSH|3"]
    assert result.discarded == 0


def test_bytes_outside_frames_are_discarded_and_counted() -> None:
    result = FrameDecoder().feed(b"junk" + frame("MSH|1") + b"\n\nmore" + frame("MSH|2") + b"x")
    assert result.frames == [b"MSH|1", b"MSH|2"]
    assert result.discarded == len(b"junk") + len(b"\n\nmore") + 1


def test_missing_cr_after_fs_is_tolerated_and_late_cr_swallowed() -> None:
    decoder = FrameDecoder()
    first = decoder.feed(b"\x0bMSH|1\x1c")
    second = decoder.feed(b"\r\x0bMSH|2\x1c\x0bMSH|3\x1c\r")
    assert first.frames == [b"MSH|1"]
    assert second.frames == [b"MSH|2", b"MSH|3"]
    assert second.discarded == 0


def test_new_start_block_inside_frame_drops_the_truncated_frame() -> None:
    result = FrameDecoder().feed(b"\x0bMSH|cut off" + frame("MSH|whole"))
    assert result.frames == [b"MSH|whole"]
    assert result.truncated == 1


def test_oversize_frame_is_flagged_without_buffering_it() -> None:
    decoder = FrameDecoder(max_frame=100)
    result = decoder.feed(b"\x0b" + b"x" * 80)
    assert not result.oversize and decoder.pending == 80
    result = decoder.feed(b"x" * 80)
    assert result.oversize and decoder.pending == 0
    # the rest of the oversize frame is skipped, later frames still decode
    result = decoder.feed(b"y" * 5000 + b"\x1c\r" + frame("MSH|next"))
    assert result.frames == [b"MSH|next"]
    assert decoder.pending == 0


def test_lf_and_crlf_separators_become_cr() -> None:
    assert normalize_segments("MSH|1\r\nPID|1\nPV1|1\n") == "MSH|1\rPID|1\rPV1|1"
    assert decode_frame(b"MSH|1\nPID|1") == "MSH|1\rPID|1"
    assert encode_frame("MSH|1\nPID|1\n") == b"\x0bMSH|1\rPID|1\x1c\r"


def test_frame_in_latin1_is_read_not_dropped() -> None:
    assert decode_frame("MSH|^~\\&|A\rPID|1||1||Müller".encode("latin-1")).endswith("Müller")


# -- builders round trip ---------------------------------------------------------
@pytest.mark.parametrize("version", ["2.3.1", "2.5.1"])
def test_orm_o01_rebuilds_the_same_order(version: str) -> None:
    order = sample_order()
    text = orm_o01(order, "NW", version=version)
    assert read_header(text).version == version
    assert order_from_message(parse(text)) == order
    grouped = parse_message(text, find_groups=True)
    assert [c.name for c in grouped.children] == ["MSH", "ORM_O01_PATIENT", "ORM_O01_ORDER"]


def test_orm_o01_places_ihe_fields_where_ihe_expects_them() -> None:
    order = sample_order()
    msg = parse(orm_o01(order, "CA"))
    assert field(msg, "ORC", 1) == "CA"
    assert field(msg, "OBR", 18) == order.accession
    assert field(msg, "OBR", 19) == order.requested_procedure_id
    assert field(msg, "OBR", 20) == order.step.step_id
    assert field(msg, "OBR", 24) == "CT"
    assert field(msg, "ZDS", 1) == order.study_uid
    assert field(msg, "ZDS", 1, 4) == "DICOM"
    assert field(msg, "OBR", 27, 4) == "20240506083000"
    assert field(msg, "OBR", 27, 6) == "A"  # HIGH -> ASAP (table 0027)


def test_omg_o19_round_trips_and_validates_in_hl7apy() -> None:
    order = sample_order(priority="STAT")
    text = omg_o19(order, "NW")
    assert order_from_message(parse(text)) == order
    assert field(parse(text), "TQ1", 9) == "S"
    assert parse_message(text, find_groups=True).validate() is True


def test_order_without_zps_falls_back_to_ihe_fields() -> None:
    order = sample_order(priority="STAT")
    text = "\r".join(s for s in segments(omg_o19(order)) if not s.startswith("ZPS"))
    fields = order_fields(parse(text))
    assert fields["priority"] == "STAT"
    assert fields["scheduled_start"] == order.step.start
    assert fields["station_ae"] == order.step.station_ae
    assert fields["modality"] == "CT"
    assert fields["station_name"] == ""


def test_omg_needs_v25() -> None:
    with pytest.raises(ConfigError):
        omg_o19(sample_order(), version="2.3.1")


def test_unknown_order_control_is_refused_by_builder() -> None:
    with pytest.raises(ConfigError):
        orm_o01(sample_order(), "ZZ")


@pytest.mark.parametrize("event", ["A01", "A04", "A08"])
@pytest.mark.parametrize("version", ["2.3.1", "2.5.1"])
def test_adt_carries_the_patient(event: str, version: str) -> None:
    patient = sample_patient()
    text = adt(event, patient, version=version)
    header = read_header(text)
    assert (header.message_type, header.trigger_event, header.structure) == \
        ("ADT", event, "ADT_A01")
    assert patient_from_message(parse(text)) == patient
    assert parse_message(text, find_groups=True).validate() is True


def test_adt_a40_names_surviving_and_merged_patients() -> None:
    surviving = sample_patient("PACSIM0001")
    merged = sample_patient("PACSIM0099", given="Alma Maria")
    text = adt("A40", surviving, merged=merged)
    msg = parse(text)
    assert read_header(text).structure == "ADT_A39"
    assert patient_from_message(msg) == surviving
    assert merged_patient_id(msg) == "PACSIM0099"
    assert field(msg, "MRG", 1, 4) == "PACSIM"
    assert parse_message(text, find_groups=True).validate() is True
    with pytest.raises(ConfigError):
        adt("A40", surviving)


def test_non_ascii_names_set_msh18_utf8_and_survive() -> None:
    patient = sample_patient(family="Müller-Łukasiewicz", given="Zoë")
    text = adt("A01", patient)
    assert read_header(text).charset == "UNICODE UTF-8"
    back = patient_from_message(parse(text))
    assert (back.family_name, back.given_name, back.charset) == \
        ("Müller-Łukasiewicz", "Zoë", "ISO_IR 192")
    assert read_header(adt("A01", sample_patient())).charset == ""


def test_delimiters_in_values_are_escaped_and_restored() -> None:
    nasty = "A^B&C|D~E\\F"
    assert unescape(escape(nasty)) == nasty
    patient = sample_patient(family=nasty, given="G^H")
    back = patient_from_message(parse(adt("A08", patient)))
    assert (back.family_name, back.given_name) == (nasty, "G^H")


def test_control_ids_are_unique_and_fit_msh10() -> None:
    ids = {new_control_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert max(len(i) for i in ids) <= 20
    texts = [adt("A01", sample_patient()) for _ in range(20)]
    assert len({read_header(t).control_id for t in texts}) == 20


def test_oru_r01_carries_report_lines() -> None:
    order = sample_order()
    report = "FINDINGS: clear lungs | no effusion\nIMPRESSION: normal"
    text = oru_r01(order, report)
    msg = parse(text)
    assert report_text(msg) == report
    assert field(msg, "OBR", 18) == order.accession
    assert field(msg, "OBR", 2, 2) == "PACSIM_EHR"  # placer namespace stays the EHR
    assert field(msg, "OBR", 25) == "F"
    assert parse_message(text, find_groups=True).validate() is True


# -- ACK and parse errors --------------------------------------------------------
def test_ack_aa_echoes_control_id_and_swaps_applications() -> None:
    incoming = adt("A01", sample_patient())
    header = read_header(incoming)
    reply = ack(incoming, "AA")
    reply_header = read_header(reply)
    assert ack_code(reply) == "AA"
    assert msa_field(reply, 2) == header.control_id
    assert (reply_header.sending_application, reply_header.receiving_application) == \
        (header.receiving_application, header.sending_application)
    assert reply_header.message_type == "ACK" and reply_header.trigger_event == "A01"
    assert parse_message(reply, find_groups=True).validate() is True


def test_ack_ae_has_err_with_location_code_and_severity_v251() -> None:
    reply = ack(adt("A01", sample_patient()), "AE", error_code=101,
                error_text="PID-3 missing", error_location="PID.3")
    err = next(s for s in segments(reply) if s.startswith("ERR")).split("|")
    assert err[2] == "PID^1^3"
    assert err[3] == "101^Required field missing^HL70357"
    assert err[4] == "E"
    assert err_code(reply) == 101 and msa_text(reply) == "PID-3 missing"
    assert parse_message(reply, find_groups=True).validate() is True


def test_ack_in_v231_uses_err1_eld() -> None:
    reply = ack(adt("A01", sample_patient(), version="2.3.1"), "AR", error_code=201,
                error_location="MSH^1^9")
    assert read_header(reply).version == "2.3.1"
    err = next(s for s in segments(reply) if s.startswith("ERR"))
    assert err == "ERR|MSH^1^9^201&Unsupported event code&HL70357"
    assert err_code(reply) == 201


def test_ack_for_unreadable_input_is_still_a_valid_ack() -> None:
    reply = ack("this is not HL7", "AR", error_code=100)
    assert ack_code(reply) == "AR" and msa_field(reply, 2) == ""
    assert err_code(reply) == 100


@pytest.mark.parametrize(("text", "code", "ack_kind"), [
    ("garbage", 100, "AE"),
    ("MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|9.9\rPID|1||X", 203, "AR"),
    ("MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1\rPID|1||X\rFOO|1", 100, "AE"),
])
def test_parse_errors_carry_the_ack_to_send(text: str, code: int, ack_kind: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse(text)
    assert caught.value.hl7_code == code
    assert caught.value.ack_code == ack_kind
    assert isinstance(caught.value, ProtocolError)


def test_extractors_report_missing_and_bad_fields_with_locations() -> None:
    base = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5.1\r"
    with pytest.raises(Hl7Error) as missing:
        patient_from_message(parse(base + "PID|1||||Doe^J||19800101|F"))
    assert (missing.value.hl7_code, missing.value.location) == (101, "PID^1^3")
    with pytest.raises(Hl7Error) as bad_date:
        patient_from_message(parse(base + "PID|1||X1||Doe^J||1980-01-01|F"))
    assert (bad_date.value.hl7_code, bad_date.value.location) == (102, "PID^1^7")
    with pytest.raises(Hl7Error) as bad_sex:
        patient_from_message(parse(base + "PID|1||X1||Doe^J||19800101|Q"))
    assert bad_sex.value.hl7_code == 103
    order_text = orm_o01(sample_order()).replace("ORC|NW|", "ORC|ZZ|")
    with pytest.raises(Hl7Error) as control:
        order_fields(parse(order_text))
    assert (control.value.hl7_code, control.value.location) == (103, "ORC^1^1")


def test_parse_accepts_lf_separated_text() -> None:
    text = adt("A04", sample_patient()).replace("\r", "\n")
    assert patient_from_message(parse(text)) == sample_patient()


def test_msh_18_values_map_to_codecs_and_unknown_ones_are_refused() -> None:
    from simulators.hl7.charsets import codec_for, decode_message

    assert codec_for("8859/2") == "iso8859_2" and codec_for("8859/15") == "iso8859_15"
    assert codec_for("UNICODE UTF-8") == codec_for("UNICODE/UTF-8") == "utf-8"
    assert codec_for("UNICODE") == "utf-8" and codec_for("") is None
    with pytest.raises(Hl7Error) as unknown:
        codec_for("UNICODE UTF-16")  # cannot travel in a plain MLLP frame
    assert (unknown.value.hl7_code, unknown.value.location) == (103, "MSH^1^18")
    declared_ascii = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5.1||||||ASCII\rPID|1||1||Müller"
    with pytest.raises(Hl7Error) as wrong_bytes:
        decode_message(declared_ascii.encode("latin-1"))
    assert wrong_bytes.value.hl7_code == 102


@pytest.mark.parametrize(("version", "charset"), [("2.3.1", "UNICODE"), ("2.4", "UNICODE"),
                                                  ("2.5.1", "UNICODE UTF-8")])
def test_msh_18_is_a_table_0211_value_of_the_message_version(version: str, charset: str) -> None:
    """Issue 13 #8: ``UNICODE UTF-8`` is a v2.5 value; a v2.3.1 receiver validating MSH-18
    against its own table 0211 rejects it. v2.3.1/2.4 only have ``UNICODE``."""
    from hl7apy import load_library

    order = sample_order(sample_patient(family="Dvořák", given="Antonín"))
    for text in (adt("A01", order.patient, version=version), orm_o01(order, version=version)):
        header = read_header(text)
        assert (header.version, header.charset) == (version, charset)
        assert charset in load_library(version).TABLES["HL70211"][1]


def test_omg_o19_is_refused_before_v2_5() -> None:
    """OMG^O19 does not exist in v2.3.1, and pacsim's carries TQ1, which is v2.5+."""
    for version in ("2.3.1", "2.4"):
        with pytest.raises(ConfigError, match="OMG"):
            omg_o19(sample_order(), version=version)
