"""Probes for HL7 v2 content and MLLP framing faults (HL7 v2.5.1 chapter 2, Appendix C).

Messages are built by pacsim's HL7 builders for synthetic patients and then broken
by the same mutations an EHR fault profile applies. Content faults are sent with the
project's MLLP client and judged on MSA-1 and ERR-3; framing faults are written by
the raw MLLP injector, and "the server keeps serving" is a good message answered AA
on a fresh connection afterwards.
"""

from __future__ import annotations

import datetime as dt
import itertools

from simulators.injection import mutations
from simulators.hl7 import raw_mllp
from simulators.injection.model import Observation
from simulators.faults.probing import ProbeRun, probe
from simulators.faults.scu import find_mwl, universal_mwl_identifier
from simulators.faults.target import STATION_AE, STATION_NAME, Target
from simulators.hl7 import messages
from simulators.hl7.er7 import ack_code, err_code, msa_field, read_header
from simulators.hl7.mllp import MllpClient
from simulators.world.models import Patient

_INDEX = itertools.count(30_000)
ENDPOINTS = messages.Endpoints("PACSIM_FAULTS", "PACSIM", "PACSIM_RIS", "PACSIM")


def _patient(run: ProbeRun) -> Patient:
    return run.world.patient(next(_INDEX))


def admit(run: ProbeRun) -> str:
    return messages.adt("A01", _patient(run), endpoints=ENDPOINTS)


def new_order(run: ProbeRun, patient: Patient | None = None) -> str:
    index = next(_INDEX)
    order = run.world.order(patient or run.world.patient(index), "CT", station_ae=STATION_AE,
                            station_name=STATION_NAME, index=index,
                            start=dt.datetime.now().replace(microsecond=0))
    return messages.orm_o01(order, "NW", endpoints=ENDPOINTS)


def _no_hl7(sent: str) -> Observation:
    return Observation(sent=sent, unsupported="target has no HL7 address (use --hl7 HOST:PORT)")


def send(target: Target, message: str) -> str:
    assert target.hl7 is not None
    client = MllpClient(*target.hl7, timeout=5.0, name="pacsim-faults")
    try:
        return client.send(message)
    finally:
        client.close()


def serving(target: Target, run: ProbeRun) -> bool:
    """A good ADT^A01 on a fresh connection is answered AA."""
    try:
        return ack_code(send(target, admit(run))) == "AA"
    except Exception:  # noqa: BLE001 - any failure means "not serving"
        return False


def _content(fault_id: str, build, sent: str):  # type: ignore[no-untyped-def]
    def run_probe(target: Target, run: ProbeRun) -> Observation:
        if target.hl7 is None:
            return _no_hl7(sent)
        reply = send(target, mutations.HL7[fault_id](build(run)))
        return Observation(sent=sent, ack_code=ack_code(reply), err_code=err_code(reply))
    return run_probe


probe("hl7.required-missing")(_content("hl7.required-missing", admit, "ADT^A01, empty PID-3"))
probe("hl7.unsupported-event")(_content("hl7.unsupported-event", admit, "ADT^A99"))
probe("hl7.unsupported-message-type")(_content("hl7.unsupported-message-type", admit,
                                               "ZZZ^Z01"))
probe("hl7.bad-table-value")(_content("hl7.bad-table-value", admit, "ADT^A01, PID-8 'Q'"))
probe("hl7.bad-order-control")(_content("hl7.bad-order-control", new_order,
                                        "ORM^O01, ORC-1 'ZZ'"))
probe("hl7.bad-date")(_content("hl7.bad-date", admit, "ADT^A01, PID-7 '19991399'"))


@probe("mllp.lf-separators")
def lf_separators(target: Target, run: ProbeRun) -> Observation:
    if target.hl7 is None:
        return _no_hl7("LF-separated ADT^A01")
    message = admit(run)
    answer = raw_mllp.exchange(*target.hl7, [b"\x0b" + mutations.lf_separators(message)
                                             .encode() + b"\x1c\r"], expect=1)
    reply = answer.replies[0] if answer.replies else ""
    obs = Observation(sent="ADT^A01 with LF separators", ack_code=ack_code(reply) if reply else "",
                      answered=(ack_code(reply) if reply else "no ACK"))
    obs.checks["acknowledged (AA, AE or AR)"] = bool(reply) and ack_code(reply) in ("AA", "AE", "AR")
    obs.checks["ACK names our control ID"] = bool(reply) and \
        msa_field(reply, 2) == read_header(message).control_id
    obs.checks["still serving afterwards"] = serving(target, run)
    return obs


def _framing(fault_id: str, sent: str):  # type: ignore[no-untyped-def]
    def run_probe(target: Target, run: ProbeRun) -> Observation:
        if target.hl7 is None:
            return _no_hl7(sent)
        broken, good = admit(run), admit(run)
        writes = raw_mllp.broken_frame(fault_id, broken)
        if fault_id == "mllp.no-end-block":
            writes.append(raw_mllp.broken_frame("", good)[0])  # a good frame right after
        answer = raw_mllp.exchange(*target.hl7, writes, expect=2 if fault_id ==
                                   "mllp.no-end-block" else 1, wait=2.0)
        broken_id = read_header(broken).control_id
        acked = [msa_field(reply, 2) for reply in answer.replies]
        obs = Observation(sent=sent, closed=answer.closed,
                          answered=(", ".join(f"ACK {ack_code(r)}" for r in answer.replies)
                                    or ("connection closed" if answer.closed else "no ACK")))
        if fault_id == "mllp.oversize":
            if any(ack_code(r) == "AA" for r in answer.replies):
                obs.open_reason = "accepted a 2 MiB frame (limit above that)"
        else:
            obs.checks["no ACK for the broken frame"] = broken_id not in acked
        if fault_id == "mllp.no-end-block":
            obs.checks["the next good frame is answered"] = read_header(good).control_id in acked
        obs.checks["still serving afterwards"] = serving(target, run)
        return obs
    return run_probe


probe("mllp.no-start-block")(_framing("mllp.no-start-block", "message without <VT>"))
probe("mllp.no-end-block")(_framing("mllp.no-end-block", "<VT>message, no <FS><CR>, "
                                    "then a good frame"))
probe("mllp.oversize")(_framing("mllp.oversize", "a 2 MiB frame"))


@probe("mllp.stall")
def stall(target: Target, run: ProbeRun) -> Observation:
    if target.hl7 is None:
        return _no_hl7("half a frame")
    frame = raw_mllp.broken_frame("", admit(run))[0]
    still_open = raw_mllp.stays_open(*target.hl7, frame[: len(frame) // 2], target.stall_wait)
    obs = Observation(sent="<VT> and half a message, then silence",
                      answered="still open" if still_open else "connection closed",
                      closed=not still_open)
    if still_open:
        obs.open_reason = f"still open after {target.stall_wait:.0f} s (timeout longer)"
    obs.checks["still serving afterwards"] = serving(target, run)
    return obs


@probe("mllp.split")
def split(target: Target, run: ProbeRun) -> Observation:
    if target.hl7 is None:
        return _no_hl7("split frames")
    first, second, third = admit(run), admit(run), admit(run)
    writes = raw_mllp.broken_frame("mllp.split", first)
    writes.append(raw_mllp.broken_frame("", second)[0] + raw_mllp.broken_frame("", third)[0])
    answer = raw_mllp.exchange(*target.hl7, writes, expect=3, wait=3.0)
    wanted = [read_header(m).control_id for m in (first, second, third)]
    got = [msa_field(reply, 2) for reply in answer.replies]
    obs = Observation(sent="1 frame in 3 writes, then 2 frames in 1 write",
                      answered=", ".join(f"ACK {ack_code(r)}" for r in answer.replies) or "no ACK")
    obs.checks["three ACKs, in order, all AA"] = got == wanted and all(
        ack_code(r) == "AA" for r in answer.replies)
    return obs


@probe("hl7.duplicate-control-id")
def duplicate_control_id(target: Target, run: ProbeRun) -> Observation:
    if target.hl7 is None:
        return _no_hl7("ORM^O01 twice")
    message = new_order(run)
    before = len(target.ris.orders()) if target.ris is not None else 0
    first, second = send(target, message), send(target, message)
    obs = Observation(sent="the same ORM^O01 (one MSH-10) twice",
                      answered=f"{ack_code(first)} then {ack_code(second)}")
    obs.checks["first accepted"] = ack_code(first) == "AA"
    obs.checks["same acknowledgment both times"] = (
        (ack_code(first), msa_field(first, 2)) == (ack_code(second), msa_field(second, 2)))
    if target.ris is not None:
        obs.checks["exactly one new order in the RIS"] = len(target.ris.orders()) == before + 1
    return obs


@probe("hl7.out-of-order")
def out_of_order(target: Target, run: ProbeRun) -> Observation:
    if target.hl7 is None:
        return _no_hl7("A08 first, cancel first")
    update = messages.adt("A08", _patient(run), endpoints=ENDPOINTS)
    cancel = mutations.set_field(new_order(run), "ORC", 1, "CA")
    answers = [ack_code(send(target, update)), ack_code(send(target, cancel))]
    text = f"A08 unknown patient: {answers[0]}; CA unknown order: {answers[1]}"
    return Observation(sent="A08 before A01; CA before NW", answered=text, open_reason=text)


@probe("hl7.merge")
def merge(target: Target, run: ProbeRun) -> Observation:
    if target.hl7 is None or target.dicom is None:
        return _no_hl7("ADT^A40")
    survivor, merged = _patient(run), _patient(run)
    placed = ack_code(send(target, new_order(run, merged)))
    reply = send(target, messages.adt("A40", survivor, merged=merged, endpoints=ENDPOINTS))
    _, of_merged = find_mwl(target.dicom, target.calling_ae,
                            universal_mwl_identifier(PatientID=merged.patient_id))
    _, of_survivor = find_mwl(target.dicom, target.calling_ae,
                              universal_mwl_identifier(PatientID=survivor.patient_id))
    run.allowed.update(str(item.get("AccessionNumber", "")) for item in of_survivor)
    obs = Observation(sent="order for B, then ADT^A40 merging B into A",
                      answered=f"ACK {ack_code(reply)}; worklist: {len(of_merged)} for B, "
                               f"{len(of_survivor)} for A")
    obs.checks["order for B accepted"] = placed == "AA"
    obs.checks["merge accepted"] = ack_code(reply) == "AA"
    obs.checks["worklist shows only the surviving patient"] = not of_merged and len(of_survivor) == 1
    return obs


__all__ = ["admit", "new_order", "send"]
