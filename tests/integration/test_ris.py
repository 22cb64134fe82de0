"""The RIS on loopback: DCMTK findscu against its worklist, pynetdicom MPPS, HL7 over
real MLLP sockets, and garbage on its ports. Every assertion is on values read back
over the wire (or from the RIS after a wire exchange)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep, ModalityWorklistInformationFind, Verification,
)

from simulators.actors.ris import Ris, RisConfig
from simulators.dicom.ae import associate
from simulators.dicom.fast import codec, dimse
from simulators.events import EventBus, Exchange
from simulators.faults.raw_dicom import RawAssociation, oversized_pdata, status_of
from simulators.hl7 import messages
from simulators.hl7.er7 import ack_code, err_code, msa_field, read_header
from simulators.hl7.mllp import MllpClient
from simulators.world.models import Order, Patient, Procedure, ScheduledStep
from tests.helpers import require_tool

START = dt.datetime(2026, 1, 15, 9, 30)


def make_order(n: int, *, family: str = "DOE", given: str = "JANE", station: str = "CT01",
               modality: str = "CT", patient: Patient | None = None,
               start: dt.datetime = START) -> Order:
    birth = dt.date(1970, 1, 1) + dt.timedelta(days=n)
    patient = patient or Patient(f"PID{n}", "PACSIM", family, given, birth, "F",
                                 None if (family + given).isascii() else "ISO_IR 192")
    procedure = Procedure("29252-4", "CT CHEST W/O CONTRAST", "LN", modality, "CHEST")
    step = ScheduledStep(f"SPS{n}", station, f"{station}_ROOM", modality, start, "CT CHEST")
    return Order(f"PL{n}", f"FI{n}", f"ACC{n}", patient, procedure, f"RP{n}",
                 f"1.2.826.0.1.3680043.10.999.{n}", step)


@pytest.fixture
def events() -> EventBus:
    return EventBus()


@pytest.fixture
def ris(events: EventBus) -> Iterator[Ris]:
    config = RisConfig(name="ris-test", stations={"MR": ("MR01", "MR_ROOM")})
    with Ris(config, events=events) as actor:
        yield actor


def scu(ae_title: str = "MODALITY1") -> AE:
    ae = AE(ae_title=ae_title)
    for context in (Verification, ModalityWorklistInformationFind, ModalityPerformedProcedureStep):
        ae.add_requested_context(context)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae


def mwl_query(station: str = "", **keys: str) -> Dataset:
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    query.PatientName = keys.get("PatientName", "")
    query.PatientID = keys.get("PatientID", "")
    query.AccessionNumber = keys.get("AccessionNumber", "")
    query.StudyInstanceUID = ""
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.Modality = ""
    step.ScheduledProcedureStepStartDate = keys.get("date", "")
    step.ScheduledProcedureStepStatus = ""
    query.ScheduledProcedureStepSequence = Sequence([step])
    return query


def c_find(ris: Ris, query: Dataset) -> tuple[list[Dataset], int]:
    """All pending identifiers and the final status of one MWL C-FIND."""
    assoc = associate(scu(), *ris.dicom_address, ris.config.ae_title)
    try:
        found, final = [], -1
        for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
            assert status is not None, "no C-FIND response"
            if status.Status in (0xFF00, 0xFF01):
                found.append(identifier)
            else:
                final = int(status.Status)
        return found, final
    finally:
        assoc.release()


def accessions(ris: Ris, **keys: str) -> set[str]:
    found, final = c_find(ris, mwl_query(**keys))
    assert final == 0x0000
    return {str(ds.AccessionNumber) for ds in found}


# ------------------------------------------------------------------ DCMTK findscu
QUERY_DUMP = """\
(0008,0005) CS [ISO_IR 192]
(0008,0050) SH []
(0010,0010) PN []
(0010,0020) LO []
(0020,000d) UI []
(0040,0100) SQ (Sequence with undefined length)
  (fffe,e000) na (Item with undefined length)
    (0008,0060) CS []
    (0040,0001) AE [CT01]
    (0040,0002) DA [20260115-20260116]
    (0040,0009) SH []
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
"""


@pytest.mark.dcmtk
def test_findscu_worklist_returns_station_items_with_utf8_names(ris: Ris, tmp_path: Path,
                                                                 events: EventBus) -> None:
    tools = require_tool("findscu", "dump2dcm")
    seen: list[Exchange] = []
    events.subscribe(seen.append)
    ris.schedule(make_order(1, family="MÜLLER", given="JÖRG"))
    ris.schedule(make_order(2, family="ΝΙΚΟΛΑΟΥ", given="ΕΛΕΝΗ"))
    ris.schedule(make_order(3, station="MR01", modality="MR"))                    # other station
    ris.schedule(make_order(4, start=dt.datetime(2026, 1, 20, 8, 0)))            # outside range
    (tmp_path / "query.txt").write_text(QUERY_DUMP, encoding="utf-8")
    subprocess.run([tools["dump2dcm"], str(tmp_path / "query.txt"), str(tmp_path / "query.dcm")],
                   check=True, capture_output=True, timeout=20)
    host, port = ris.dicom_address
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run([tools["findscu"], "-W", "-aet", "MODALITY1", "-aec", "PACSIM_RIS",
                          "-X", "-od", str(out), host, str(port), str(tmp_path / "query.dcm")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    responses = [pydicom.dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]
    names = {str(ds.AccessionNumber): str(ds.PatientName) for ds in responses}
    assert names == {"ACC1": "MÜLLER^JÖRG", "ACC2": "ΝΙΚΟΛΑΟΥ^ΕΛΕΝΗ"}
    for ds in responses:
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT01"
        assert "PatientBirthDate" not in ds        # only requested keys come back
    finds = [e for e in seen if e.kind == "dicom.c-find"]
    assert finds and finds[-1].status == "0x0000" and finds[-1].detail["matches"] == 2


@pytest.mark.dcmtk
def test_findscu_wildcard_name_is_case_insensitive(ris: Ris, tmp_path: Path) -> None:
    tools = require_tool("findscu")
    ris.schedule(make_order(1, family="SMITH"))
    ris.schedule(make_order(2, family="SMYTHE"))
    ris.schedule(make_order(3, family="JONES"))
    host, port = ris.dicom_address
    run = subprocess.run([tools["findscu"], "-W", "-aec", "PACSIM_RIS", "-X", "-od", str(tmp_path),
                          "-k", "PatientName=sm?th*", "-k", "AccessionNumber",
                          "-k", "ScheduledProcedureStepSequence[0].Modality=CT",
                          host, str(port)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    found = {str(pydicom.dcmread(p).AccessionNumber) for p in tmp_path.glob("rsp*.dcm")}
    assert found == {"ACC1", "ACC2"}


# ---------------------------------------------------------------------------- MPPS
def mpps_create(order: Order, status: str = "IN PROGRESS") -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ssas = Dataset()
    ssas.StudyInstanceUID = order.study_uid
    ssas.AccessionNumber = order.accession
    ssas.RequestedProcedureID = order.requested_procedure_id
    ssas.ScheduledProcedureStepID = order.step.step_id
    ssas.ReferencedStudySequence = Sequence()
    ds.ScheduledStepAttributesSequence = Sequence([ssas])
    ds.PatientName = order.patient.dicom_name
    ds.PatientID = order.patient.patient_id
    ds.PerformedProcedureStepID = "PPS-" + order.accession
    ds.PerformedStationAETitle = order.step.station_ae
    ds.PerformedProcedureStepStartDate = "20260115"
    ds.PerformedProcedureStepStartTime = "093500"
    ds.PerformedProcedureStepStatus = status
    ds.Modality = order.step.modality
    ds.PerformedSeriesSequence = Sequence()
    return ds


def mpps_complete(series: bool = True) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = "20260115"
    ds.PerformedProcedureStepEndTime = "094500"
    item = Dataset()
    item.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.77.1"
    item.ProtocolName = "CHEST"
    item.ReferencedImageSequence = Sequence()
    ds.PerformedSeriesSequence = Sequence([item] if series else [])
    return ds


def test_mpps_statuses_over_the_wire_and_only_the_referenced_order_changes(ris: Ris) -> None:
    target, bystander = ris.schedule(make_order(1)), ris.schedule(make_order(2))
    uid = "1.2.826.0.1.3680043.10.999.500"
    assoc = associate(scu(), *ris.dicom_address, ris.config.ae_title)
    try:
        def create(ds: Dataset, instance: str = uid) -> int:
            status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, instance)
            return int(status.Status)

        def set_(ds: Dataset, instance: str = uid) -> tuple[int, str]:
            status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, instance)
            return int(status.Status), str(status.get("ErrorComment", ""))

        assert create(mpps_create(target, status="COMPLETED")) == 0x0106
        missing = mpps_create(target)
        del missing.PerformedStationAETitle
        assert create(missing) == 0x0120
        assert create(mpps_create(target)) == 0x0000
        assert ris.order("ACC1").step.status == "STARTED"
        assert create(mpps_create(target)) == 0x0111
        assert set_(mpps_complete(), "1.2.826.0.1.3680043.10.999.404")[0] == 0x0112
        hijack = Dataset()
        hijack.PatientID = bystander.patient.patient_id
        assert set_(hijack)[0] == 0x0106
        assert set_(mpps_complete(series=False))[0] == 0x0110
        assert ris.order("ACC1").step.status == "STARTED"
        assert set_(mpps_complete()) == (0x0000, "")
        assert ris.order("ACC1").step.status == "COMPLETED"
        late, comment = set_(mpps_complete())
        assert (late, comment) == (0x0110, "Performed Procedure Step Object may no longer be updated")
    finally:
        assoc.release()
    assert ris.order("ACC2") == bystander                      # untouched, field for field
    assert accessions(ris) == {"ACC2"}                          # completed step left the list
    (instance,) = ris.mpps_instances()
    assert instance.status == "COMPLETED" and instance.dataset.PatientID == "PID1"
    assert instance.scheduled is True


def test_mpps_wrong_study_or_unscheduled_touches_no_order(ris: Ris) -> None:
    order = ris.schedule(make_order(1))
    wrong_study = mpps_create(order)
    wrong_study.ScheduledStepAttributesSequence[0].StudyInstanceUID = "1.2.826.0.1.3680043.10.999.9"
    unscheduled = mpps_create(order)
    for keyword in ("AccessionNumber", "RequestedProcedureID", "ScheduledProcedureStepID"):
        setattr(unscheduled.ScheduledStepAttributesSequence[0], keyword, "")
    wrong_patient = mpps_create(order)
    wrong_patient.PatientID = "SOMEONE-ELSE"
    assoc = associate(scu(), *ris.dicom_address, ris.config.ae_title)
    try:
        for n, ds in enumerate((wrong_study, unscheduled, wrong_patient)):
            status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep,
                                            f"1.2.826.0.1.3680043.10.999.60{n}")
            assert status.Status == 0x0000
    finally:
        assoc.release()
    assert ris.order("ACC1") == order
    assert all(i.scheduled is False for i in ris.mpps_instances())
    assert len(ris.mpps_instances()) == 3


# ----------------------------------------------------------------------------- HL7
def test_hl7_order_lifecycle_on_the_worklist(ris: Ris) -> None:
    patient = Patient("PID7", "PACSIM", "MÜLLER", "ANNA", dt.date(1960, 2, 3), "F", "ISO_IR 192")
    order = make_order(7, patient=patient)
    with MllpClient(*ris.hl7_address, timeout=10) as client:
        assert ack_code(client.send(messages.adt("A01", patient))) == "AA"
        assert ack_code(client.send(messages.orm_o01(order, "NW"))) == "AA"
        found, _ = c_find(ris, mwl_query(station="CT01"))
        assert [str(ds.PatientName) for ds in found] == ["MÜLLER^ANNA"]
        assert found[0].StudyInstanceUID == order.study_uid
        renamed = patient.with_changes(family_name="MEIER")
        assert ack_code(client.send(messages.adt("A08", renamed))) == "AA"
        found, _ = c_find(ris, mwl_query(PatientID="PID7"))
        assert [str(ds.PatientName) for ds in found] == ["MEIER^ANNA"]
        assert ack_code(client.send(messages.orm_o01(order, "CA"))) == "AA"
    assert accessions(ris) == set()
    assert ris.order("ACC7").step.status == "DISCONTINUED"


def test_hl7_merge_leaves_only_the_surviving_patient(ris: Ris) -> None:
    survivor = Patient("PID-KEEP", "PACSIM", "DOE", "JANE", dt.date(1980, 1, 1), "F")
    duplicate = Patient("PID-DUP", "PACSIM", "DOE", "JANE", dt.date(1980, 1, 1), "F")
    with MllpClient(*ris.hl7_address, timeout=10) as client:
        for n, patient in ((1, survivor), (2, duplicate), (3, duplicate)):
            assert ack_code(client.send(messages.orm_o01(make_order(n, patient=patient)))) == "AA"
        assert ack_code(client.send(messages.adt("A40", survivor, merged=duplicate))) == "AA"
    found, _ = c_find(ris, mwl_query())
    assert {str(ds.PatientID) for ds in found} == {"PID-KEEP"}
    assert len(found) == 3
    assert c_find(ris, mwl_query(PatientID="PID-DUP"))[0] == []


def swap(message: str, old: str, new: str) -> str:
    """Corrupt one field of a valid message (fails loudly if the field moved)."""
    assert old in message, (old, message)
    return message.replace(old, new)


def test_hl7_errors_get_the_right_ack_and_duplicates_are_idempotent(ris: Ris) -> None:
    order = make_order(8)
    birth = order.patient.dicom_birth_date
    bad_sex = swap(messages.adt("A01", order.patient), f"|{birth}|F", f"|{birth}|Q")
    no_pid3 = swap(messages.adt("A01", order.patient), "PID|1||PID8^^^PACSIM^MR|", "PID|1|||")
    bad_control = swap(messages.orm_o01(order), "ORC|NW|", "ORC|ZZ|")
    oru = messages.oru_r01(order, "no findings")
    a99 = swap(messages.adt("A01", order.patient), "ADT^A01^ADT_A01", "ADT^A99^ADT_A01")
    nw = messages.orm_o01(order, control_id="CTRL-DUP-1")
    with MllpClient(*ris.hl7_address, timeout=10) as client:
        for message, code, err in ((bad_sex, "AE", "103"), (no_pid3, "AE", "101"),
                                   (bad_control, "AE", "103"), (oru, "AR", "200"),
                                   (a99, "AR", "201")):
            reply = client.send(message)
            assert ack_code(reply) == code, reply
            err_segment = next(s for s in reply.split("\r") if s.startswith("ERR"))
            assert f"|{err}^" in err_segment, reply
        first, second = client.send(nw), client.send(nw)
    assert ack_code(first) == "AA" and second == first
    assert [o.accession for o in ris.orders()] == ["ACC8"]


def test_rad4_forwarding_sends_procedure_scheduled(events: EventBus) -> None:
    received: list[str] = []
    from simulators.hl7.mllp import MllpServer

    def target(text: str) -> str:
        received.append(text)
        return messages.ack(text, "AA")

    with MllpServer(target, events=events, name="target") as server:
        config = RisConfig(name="ris-fwd", forward_hl7=server.address)
        with Ris(config, events=events) as ris:
            ris.schedule(make_order(5))
        # stop() waits for the forwarder, so the message has arrived by now
    assert len(received) == 1
    parsed = messages.parse(received[0])
    assert messages.order_fields(parsed)["accession"] == "ACC5"


# ---------------------------------------------------------------------- robustness
def test_garbage_and_malformed_queries_leave_the_ris_serving(ris: Ris) -> None:
    ris.schedule(make_order(1))
    host, port = ris.dicom_address
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")       # unknown PDU type -> A-ABORT
        assert sock.recv(64)[:1] == b"\x07"
    for junk in (b"\x00" * 10, b"\x04\x00\x00\x00\x00\x10abc"):   # truncated PDUs, then gone
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(junk)
    # A peer that claims a 4 GiB A-ASSOCIATE-RQ and stalls stays open while others work.
    stalled = socket.create_connection((host, port), timeout=5)
    stalled.sendall(b"\x01\x00\xff\xff\xff\xff\x00\x01")
    qr = mwl_query()
    qr.QueryRetrieveLevel = "STUDY"
    found, final = c_find(ris, qr)
    assert (found, final) == ([], 0xA900)
    assoc = associate(scu(), host, port, ris.config.ae_title)
    try:
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()
    assert accessions(ris) == {"ACC1"}
    hl7_host, hl7_port = ris.hl7_address
    with socket.create_connection((hl7_host, hl7_port), timeout=5) as sock:
        sock.sendall(b"\x0bMSH|^~\\&|half a frame")      # then vanish mid-frame
    with MllpClient(hl7_host, hl7_port, timeout=10) as client:
        assert ack_code(client.send(messages.adt("A04", make_order(9).patient))) == "AA"
    stalled.close()


# ------------------------------------------------- the asyncio acceptor under load
MWL_UID, MPPS_UID = str(ModalityWorklistInformationFind), str(ModalityPerformedProcedureStep)
EXPLICIT, DEFLATED = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"


def raw_find(raw: RawAssociation, identifier: Dataset | bytes, syntax: str = EXPLICIT) -> int:
    """Send one MWL C-FIND on an established raw association; returns its Message ID."""
    context = next(c.context_id for c in raw.contexts
                   if c.abstract_syntax == MWL_UID and c.transfer_syntax == syntax and c.accepted)
    data = identifier if isinstance(identifier, bytes) else raw.encode(identifier, context)
    message_id = raw.next_id()
    for pdu in codec.message_pdus(dimse.c_find_rq(message_id, MWL_UID, data), context,
                                  raw.peer_max_pdu):
        raw.send(pdu)
    return message_id


def read_find(raw: RawAssociation, limit: int = 2000) -> tuple[int, int | None]:
    """(pending responses read, final status or None when the association ended)."""
    pending = 0
    for _ in range(limit):
        status = status_of(raw.read_message(timeout=30))
        if status in (0xFF00, 0xFF01):
            pending += 1
            continue
        return pending, status
    return pending, None


def test_200_simultaneous_associations_are_all_answered_and_the_next_is_refused(
        events: EventBus) -> None:
    """Issue 7 item 4: 200+ associations held open at once, every one answered; one
    past the limit gets A-ASSOCIATE-RJ transient / provider / local-limit-exceeded."""
    limit = 210
    seen: list[Exchange] = []
    events.subscribe(seen.append)
    with Ris(RisConfig(name="ris-load", max_associations=limit, hl7=False), events=events) as ris:
        for n in range(20):
            ris.schedule(make_order(n, station=f"ST{n % 10}"))
        host, port = ris.dicom_address
        opened: list[RawAssociation] = []
        try:
            for n in range(limit):
                raw = RawAssociation(host, port, timeout=30)
                opened.append(raw)
                answer = raw.associate(f"MOD{n:03d}", "PACSIM_RIS", [(MWL_UID, [EXPLICIT])])
                assert answer.kind == "accepted", (n, answer.describe())
            assert ris.active_associations == limit
            with RawAssociation(host, port) as extra:
                answer = extra.associate("ONE_TOO_MANY", "PACSIM_RIS", [(MWL_UID, [EXPLICIT])])
                assert (answer.kind, answer.reject) == ("rejected", (2, 3, 2))
            for n, raw in enumerate(opened):       # every query out before any answer is read
                raw_find(raw, mwl_query(station=f"ST{n % 10}"))
            answers = [read_find(raw) for raw in opened]
            assert answers == [(2, 0x0000)] * limit  # two orders per station
        finally:
            for raw in opened:
                raw.release()
                raw.close()
    finds = [e for e in seen if e.kind == "dicom.c-find" and e.actor == "ris-load"]
    assert len(finds) == limit
    assert {(e.status, e.detail["matches"], e.detail["sop_class"]) for e in finds} == {
        ("0x0000", 2, "MWL")}


def test_the_default_limit_serves_200_modalities_with_broad_queries(events: EventBus) -> None:
    """Issue 19: 200 modalities asking at once for a broad worklist, default settings:
    none refused (the default was 50), every one gets every match and 0000."""
    with Ris(RisConfig(name="ris-default", hl7=False), events=events) as ris:
        for n in range(60):
            ris.schedule(make_order(n, station="BROAD" if n % 2 else f"ST{n}"))
        host, port = ris.dicom_address
        opened: list[RawAssociation] = []
        try:
            for n in range(200):
                raw = RawAssociation(host, port, timeout=30)
                opened.append(raw)
                answer = raw.associate(f"MOD{n:03d}", "PACSIM_RIS", [(MWL_UID, [EXPLICIT])])
                assert answer.kind == "accepted", (n, answer.describe())
            for raw in opened:
                raw_find(raw, mwl_query(station="BROAD"))
            assert [read_find(raw) for raw in opened] == [(30, 0x0000)] * 200
        finally:
            for raw in opened:
                raw.release()
                raw.close()


def test_identical_queries_reuse_answers_only_while_the_worklist_is_unchanged(
        events: EventBus) -> None:
    """Issue 19: the second identical query is answered from the memo; any order change
    (new order, cancelled order, new demographics) is seen by the very next query."""
    with Ris(RisConfig(name="ris-memo", hl7=False), events=events) as ris:
        for n in range(5):
            ris.schedule(make_order(n, station="BROAD"))
        host, port = ris.dicom_address
        with RawAssociation(host, port, timeout=30) as raw:
            raw.associate("MODALITY1", "PACSIM_RIS", [(MWL_UID, [EXPLICIT])])
            counts = []

            def ask() -> None:
                raw_find(raw, mwl_query(station="BROAD"))
                counts.append(read_find(raw))

            ask()
            ask()
            assert ris._answers.hits == 1
            ris.schedule(make_order(9, station="BROAD"))
            ask()
            ris.cancel("ACC0")
            ask()
            ask()
            raw.release()
    assert counts == [(5, 0), (5, 0), (6, 0), (5, 0), (5, 0)]
    assert ris._answers.hits == 2  # only the unchanged repeats


def test_c_cancel_while_the_query_runs_ends_it_with_fe00(events: EventBus) -> None:
    """C-CANCEL before the final response (PS3.7 9.3.2.3): FE00, nothing more after it.

    The cancel goes out 50 ms after the C-FIND, while the RIS is still matching 300
    items or sending their answers. (Waiting for the first pending answer instead
    races the kernel: loopback send buffers hold megabytes, so the RIS can finish
    writing all 300 before it reads the cancel, and then 0000 is the right answer.)
    """
    seen: list[Exchange] = []
    events.subscribe(seen.append)
    with Ris(RisConfig(name="ris-cancel", hl7=False), events=events) as ris:
        for n in range(300):
            ris.schedule(make_order(n))
        host, port = ris.dicom_address
        with RawAssociation(host, port, timeout=30) as raw:
            raw.associate("MODALITY1", "PACSIM_RIS", [(MWL_UID, [EXPLICIT])])
            everything = Dataset()        # every key of an item, universal: ~1 KB answers
            for element in ris.worklist_items()[0]:
                everything.add_new(element.tag, element.VR,
                                   Sequence() if element.VR == "SQ" else None)
            message_id = raw_find(raw, everything)
            time.sleep(0.05)
            raw.send_message(dimse.c_cancel_rq(message_id), raw.context_id(MWL_UID))
            pending, final = read_find(raw)
            assert final == 0xFE00 and pending < 300
            raw_find(raw, mwl_query(AccessionNumber="ACC7"))   # the association still works
            assert read_find(raw) == (1, 0x0000)
            raw.release()
    cancelled = next(e for e in seen if e.kind == "dicom.c-find" and e.status == "0xFE00")
    assert cancelled.outcome == "cancelled" and cancelled.detail["matches"] == pending


def test_undecodable_identifier_is_c000_and_acse_policy_is_enforced() -> None:
    config = RisConfig(name="ris-policy", hl7=False, allowed_calling=frozenset({"MODALITY1"}))
    with Ris(config, events=EventBus()) as ris:
        ris.schedule(make_order(1))
        host, port = ris.dicom_address
        with RawAssociation(host, port) as raw:
            assert raw.associate("STRANGER", "PACSIM_RIS", [(MWL_UID, [EXPLICIT])]).reject \
                == (1, 1, 3)
        with RawAssociation(host, port) as raw:
            assert raw.associate("MODALITY1", "NOT_THE_RIS", [(MWL_UID, [EXPLICIT])]).reject \
                == (1, 1, 7)
        with RawAssociation(host, port) as raw:
            raw.associate("MODALITY1", "PACSIM_RIS", [(MWL_UID, [DEFLATED])])
            raw_find(raw, b"not deflated at all", syntax=DEFLATED)
            assert read_find(raw) == (0, 0xC000)
            raw.send(oversized_pdata(raw.context_id(MWL_UID), ris.settings.max_pdu + 1))
            assert raw.read_message(timeout=10) == "aborted"        # A-ABORT, PS3.8 D.1
        assert accessions(ris) == {"ACC1"}                         # still serving


def test_change_order_for_an_unknown_order_is_refused_like_a_cancel(ris: Ris) -> None:
    """Issue 13 #5: XO for an order the RIS never had must not create one.

    A change request names an existing order; accepting it as new would book an exam
    nobody ordered. The answer is the cancel path's: AE, ERR 204 at ORC-2."""
    order = make_order(50)
    with MllpClient(*ris.hl7_address, timeout=10) as client:
        change = client.send(messages.orm_o01(order, "XO"))
        cancel = client.send(messages.orm_o01(make_order(51), "CA"))
    for reply in (change, cancel):
        assert ack_code(reply) == "AE", reply
        assert err_code(reply) == 204, reply
    err_segment = next(s for s in change.split("\r") if s.startswith("ERR"))
    assert "ORC^1^2" in err_segment, change
    assert ris.orders() == []
    assert accessions(ris) == set()


def test_change_order_for_a_known_order_still_replaces_it(ris: Ris) -> None:
    order = make_order(52)
    moved = order.with_changes(step=replace(order.step, station_ae="CT02"))
    with MllpClient(*ris.hl7_address, timeout=10) as client:
        assert ack_code(client.send(messages.orm_o01(order, "NW"))) == "AA"
        assert ack_code(client.send(messages.orm_o01(moved, "XO"))) == "AA"
    assert [o.step.station_ae for o in ris.orders()] == ["CT02"]


def test_reused_control_id_on_a_different_message_is_rejected_not_replayed(ris: Ris) -> None:
    """Issue 13 #6: a *different* order under an already used MSH-10 was dropped while
    the first ACK (AA) was replayed, so the sender believed it booked. A true
    retransmission (same content, even restamped MSH-7) still gets the same ACK."""
    first = messages.orm_o01(make_order(60), control_id="CTRL-REUSED")
    other = messages.orm_o01(make_order(61), control_id="CTRL-REUSED")
    msh = first.split("\r")[0].split("|")
    msh[6] = "20990101000000"  # MSH-7: a sender's retry may restamp it
    restamped = "\r".join(["|".join(msh), *first.split("\r")[1:]])
    assert restamped != first and read_header(restamped).control_id == "CTRL-REUSED"
    with MllpClient(*ris.hl7_address, timeout=10) as client:
        accepted = client.send(first)
        retry = client.send(restamped)
        clash = client.send(other)
        again = client.send(first)
    assert ack_code(accepted) == "AA" and retry == accepted and again == accepted
    assert ack_code(clash) == "AR", clash
    assert err_code(clash) == 205, clash
    assert msa_field(clash, 2) == "CTRL-REUSED"
    err_segment = next(s for s in clash.split("\r") if s.startswith("ERR"))
    assert "MSH^1^10" in err_segment, clash
    assert [o.accession for o in ris.orders()] == ["ACC60"]


def send_raw(ris: Ris, payload: bytes) -> str:
    """One MLLP exchange with bytes exactly as given (no re-encoding by a client)."""
    with socket.create_connection(ris.hl7_address, timeout=10) as sock:
        sock.sendall(b"\x0b" + payload + b"\x1c\r")
        reply = b""
        while not reply.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {reply!r}"
            reply += chunk
    return reply[1:-2].decode("utf-8")


def with_msh_18(message: str, charset: str) -> str:
    """``message`` with MSH-18 (character set, table 0211) set to ``charset``."""
    first, *rest = message.split("\r")
    fields = first.split("|") + [""] * 18
    fields = fields[:max(18, len(first.split("|")))]
    fields[17] = charset  # fields[n - 1] is MSH-n
    return "\r".join(["|".join(fields), *rest])


def test_order_in_iso_8859_2_is_decoded_by_msh_18(ris: Ris) -> None:
    """Issue 13 #4: MSH-18 ``8859/2`` was ignored and the frame read as latin-1, so the
    worklist said ``Dvoøák``. The RIS keeps names as ISO_IR 192 (UTF-8) whatever the
    HL7 character set, so the worklist item carries ISO_IR 192 and the right name."""
    patient = Patient("PID70", "PACSIM", "Dvořák", "Antonín", dt.date(1941, 9, 8), "M",
                      "ISO_IR 192")
    text = with_msh_18(messages.orm_o01(make_order(70, patient=patient)), "8859/2")
    assert "Dvořák^Antonín" in text
    reply = send_raw(ris, text.replace("\n", "\r").encode("iso8859_2"))
    assert ack_code(reply) == "AA", reply
    found, _ = c_find(ris, mwl_query(PatientID="PID70"))
    assert [str(ds.PatientName) for ds in found] == ["Dvořák^Antonín"]
    assert found[0].SpecificCharacterSet == "ISO_IR 192"


def test_unknown_msh_18_is_refused_not_guessed(ris: Ris) -> None:
    text = with_msh_18(messages.orm_o01(make_order(71)), "KLINGON-1")
    reply = send_raw(ris, text.encode("ascii"))
    assert ack_code(reply) == "AE", reply
    assert err_code(reply) == 103, reply
    assert "MSH^1^18" in next(s for s in reply.split("\r") if s.startswith("ERR")), reply
    assert ris.orders() == []
