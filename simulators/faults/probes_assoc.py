"""Probes for association-level and worklist faults (PS3.8, PS3.4 Annex K / C.2.2.2).

Association faults go through the raw injector (:mod:`simulators.faults.raw_dicom`);
"the peer keeps serving others" is always checked with a C-ECHO on a fresh
association afterwards. Worklist probes use plain C-FINDs, and ``mwl.matching`` uses
pacsim's own PS3.4 matching engine as the oracle over the items the target returned
to a universal query, so it works on any target's data.
"""

from __future__ import annotations

import time

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import Verification

from simulators.dicom.address import AeAddress
from simulators.dicom.fast import dimse
from simulators.dicom.fast.negotiation import CONTEXT_RESULTS
from simulators.dicom.matching import match_dataset
from simulators.faults import invariants
from simulators.injection.model import Observation
from simulators.faults.probes_mpps import base_create
from simulators.faults.probing import ProbeRun, probe
from simulators.faults.raw_dicom import (
    EXPLICIT_LE, IMPLICIT_LE, RawAssociation, oversized_pdata, status_of,
)
from simulators.faults.scu import MPPS_CLASS, MWL_CLASS, find_mwl, serving, \
    supports, universal_mwl_identifier
from simulators.faults.target import Target

VERIFICATION = str(Verification)
SYNTAXES = [EXPLICIT_LE, IMPLICIT_LE]
#: How many associations the over-limit probe opens at most before giving up.
MAX_PROBE_ASSOCIATIONS = 24


def _endpoint(target: Target) -> AeAddress | None:
    return target.dicom or target.store


def _no_dicom() -> Observation:
    return Observation(sent="A-ASSOCIATE-RQ", unsupported="target has no DICOM address")


@probe("assoc.over-limit")
def over_limit(target: Target, run: ProbeRun) -> Observation:
    endpoint = _endpoint(target)
    if endpoint is None:
        return _no_dicom()
    opened: list[RawAssociation] = []
    try:
        for count in range(1, MAX_PROBE_ASSOCIATIONS + 1):
            raw = RawAssociation(endpoint.host, endpoint.port, tls=endpoint.tls)
            opened.append(raw)
            answer = raw.associate(target.calling_ae, endpoint.ae_title,
                                   [(VERIFICATION, SYNTAXES)])
            if answer.kind != "accepted":
                obs = Observation(sent=f"{count} simultaneous associations",
                                  reject=answer.reject, answered=f"#{count}: {answer.describe()}")
                obs.aborted, obs.closed = answer.kind == "aborted", answer.kind == "closed"
                break
        else:
            obs = Observation(sent=f"{MAX_PROBE_ASSOCIATIONS} simultaneous associations",
                              answered=f"all {MAX_PROBE_ASSOCIATIONS} accepted",
                              open_reason=f"limit above {MAX_PROBE_ASSOCIATIONS}: not reached")
    finally:
        for raw in opened:
            raw.abort()
            raw.close()
    obs.checks["still serving afterwards"] = serving(endpoint, target.calling_ae)
    return obs


def _ae_probe(calling: str | None, called: str | None, sent: str):  # type: ignore[no-untyped-def]
    def run_probe(target: Target, run: ProbeRun) -> Observation:
        endpoint = _endpoint(target)
        if endpoint is None:
            return _no_dicom()
        with RawAssociation(endpoint.host, endpoint.port, tls=endpoint.tls) as raw:
            answer = raw.associate(calling or target.calling_ae, called or endpoint.ae_title,
                                   [(VERIFICATION, SYNTAXES)])
            if answer.kind == "accepted":
                raw.release()
        obs = Observation(sent=sent, reject=answer.reject, answered=answer.describe(),
                          aborted=answer.kind == "aborted", closed=answer.kind == "closed")
        if answer.kind == "accepted":
            obs.open_reason = "accepted: the target does not restrict this AE title"
        return obs
    return run_probe


probe("assoc.unknown-calling-ae")(_ae_probe("UNKNOWN_SCU", None, "calling AE UNKNOWN_SCU"))
probe("assoc.unknown-called-ae")(_ae_probe(None, "NOT_THIS_AE", "called AE NOT_THIS_AE"))


@probe("assoc.abort-mid-transfer")
def abort_mid_transfer(target: Target, run: ProbeRun) -> Observation:
    endpoint = _endpoint(target)
    if endpoint is None:
        return _no_dicom()
    uid = generate_uid()
    with RawAssociation(endpoint.host, endpoint.port, tls=endpoint.tls) as raw:
        answer = raw.associate(target.calling_ae, endpoint.ae_title,
                               [(MPPS_CLASS, SYNTAXES), (MWL_CLASS, SYNTAXES)])
        accepted = {c.abstract_syntax for c in raw.contexts if c.accepted}
        if answer.kind != "accepted" or not accepted:
            return Observation(sent="request then A-ABORT",
                               unsupported=f"neither MPPS nor MWL accepted ({answer.describe()})")
        if MPPS_CLASS in accepted:
            context_id, what = raw.context_id(MPPS_CLASS), "N-CREATE"
            dataset = raw.encode(base_create(run, run.fresh_item(), target.calling_ae), context_id)
            message = dimse.n_create_rq(raw.next_id(), MPPS_CLASS, uid, dataset)
        else:
            context_id, what = raw.context_id(MWL_CLASS), "C-FIND"
            message = dimse.c_find_rq(raw.next_id(), MWL_CLASS,
                                      raw.encode(universal_mwl_identifier(), context_id))
        pdus = raw.message_pdus(message, context_id)
        for pdu in pdus[:-1]:  # everything but the last fragment
            raw.send(pdu)
        raw.send(pdus[-1][: max(12, len(pdus[-1]) // 2)])  # half of the last one
        raw.abort()
    obs = Observation(sent=f"{what} command + half its data, then A-ABORT",
                      answered="(aborted by us)")
    obs.checks["still serving afterwards"] = serving(endpoint, target.calling_ae)
    if target.ris is not None:
        obs.checks["partial N-CREATE had no effect"] = target.ris.mpps.get(uid) is None
    return obs


@probe("assoc.pdu-too-large")
def pdu_too_large(target: Target, run: ProbeRun) -> Observation:
    endpoint = _endpoint(target)
    if endpoint is None:
        return _no_dicom()
    with RawAssociation(endpoint.host, endpoint.port, tls=endpoint.tls) as raw:
        answer = raw.associate(target.calling_ae, endpoint.ae_title, [(VERIFICATION, SYNTAXES)])
        if answer.kind != "accepted":
            return Observation(sent="oversized P-DATA", unsupported=answer.describe())
        limit = raw.peer_max_pdu
        if not limit:
            return Observation(sent="oversized P-DATA",
                               unsupported="peer announced no maximum length (unlimited)")
        size = limit + 65_536
        try:
            raw.send(oversized_pdata(raw.context_id(VERIFICATION), size))
        except OSError:
            pass
        ending = raw.wait_closed(target.idle_wait)
    obs = Observation(sent=f"P-DATA of {size} bytes (peer maximum {limit})", answered=ending,
                      aborted=ending == "aborted", closed=ending == "closed")
    obs.checks["association ended (A-ABORT or close)"] = ending in ("aborted", "closed")
    obs.checks["still serving afterwards"] = serving(endpoint, target.calling_ae)
    return obs


@probe("assoc.idle")
def idle(target: Target, run: ProbeRun) -> Observation:
    endpoint = _endpoint(target)
    if endpoint is None:
        return _no_dicom()
    started = time.monotonic()
    with RawAssociation(endpoint.host, endpoint.port, tls=endpoint.tls) as raw:
        answer = raw.associate(target.calling_ae, endpoint.ae_title, [(VERIFICATION, SYNTAXES)])
        if answer.kind != "accepted":
            return Observation(sent="idle association", unsupported=answer.describe())
        ending = raw.wait_closed(target.idle_wait)
        if ending == "released":
            raw.send(b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # A-RELEASE-RP
    waited = time.monotonic() - started
    obs = Observation(sent=f"association left idle (waited up to {target.idle_wait:.0f} s)",
                      answered=f"{ending} after {waited:.1f} s",
                      aborted=ending == "aborted", closed=ending == "closed")
    if ending == "open":
        obs.open_reason = f"still open after {target.idle_wait:.0f} s (timeout longer)"
    return obs


def context_words(result: int) -> str:
    """A presentation context result as PS3.8 9.3.3.2 names it, with its number:
    ``context rejected: abstract-syntax-not-supported (3)``, never a bare number."""
    if result == 0:
        return "context accepted (0)"
    return f"context rejected: {CONTEXT_RESULTS.get(result, 'unknown result')} ({result})"


def _context_probe(abstract: str, syntaxes: list[str], expected: int, sent: str):  # type: ignore[no-untyped-def]
    def run_probe(target: Target, run: ProbeRun) -> Observation:
        endpoint = target.store if "store" in sent else _endpoint(target)
        if endpoint is None:
            return _no_dicom()
        with RawAssociation(endpoint.host, endpoint.port, tls=endpoint.tls) as raw:
            answer = raw.associate(target.calling_ae, endpoint.ae_title,
                                   [(VERIFICATION, SYNTAXES), (abstract, syntaxes)])
            if answer.kind == "accepted":
                raw.release()
        result = next((c.result for c in answer.contexts if c.abstract_syntax == abstract), None)
        obs = Observation(sent=sent, answered=(context_words(result) if result is not None
                                               else answer.describe()))
        obs.checks[f"expected {context_words(expected)}"] = result == expected
        return obs
    return run_probe


probe("assoc.unsupported-abstract-syntax")(_context_probe(
    "1.2.826.0.1.3680043.10.999.77.1", SYNTAXES, 3, "context for an unknown SOP class"))
probe("store.unsupported-ts")(_context_probe(
    "1.2.840.10008.5.1.4.1.1.2", ["1.2.826.0.1.3680043.10.999.77.2"], 4,
    "store context: CT with an unknown transfer syntax"))


# ------------------------------------------------------------------------ worklist
def _mwl_unsupported(target: Target) -> str:
    if target.dicom is None:
        return "target has no worklist address"
    if not supports(target.dicom, target.calling_ae, MWL_CLASS):
        return "target does not accept the Modality Worklist FIND SOP class"
    return ""


@probe("mwl.cancel")
def cancel(target: Target, run: ProbeRun) -> Observation:
    reason = _mwl_unsupported(target)
    if reason:
        return Observation(sent="C-FIND + C-CANCEL", unsupported=reason)
    assert target.dicom is not None
    with RawAssociation(target.dicom.host, target.dicom.port, tls=target.dicom.tls) as raw:
        answer = raw.associate(target.calling_ae, target.dicom.ae_title, [(MWL_CLASS, SYNTAXES)])
        if answer.kind != "accepted" or not any(c.accepted for c in raw.contexts):
            return Observation(sent="C-FIND + C-CANCEL", unsupported=answer.describe())
        context_id = raw.context_id(MWL_CLASS)
        message_id = raw.next_id()
        identifier = raw.encode(universal_mwl_identifier(), context_id)
        raw.send_message(dimse.c_find_rq(message_id, MWL_CLASS, identifier), context_id)
        pending, final = 0, None
        for _ in range(100_000):
            reply = raw.read_message()
            status = status_of(reply)
            if status is None:
                break
            if status in (0xFF00, 0xFF01):
                pending += 1
                if pending == 1:  # results are pending: cancel now (PS3.7 9.3.2.3)
                    raw.send_message(dimse.c_cancel_rq(message_id), context_id)
                continue
            final = status
            break
        raw.release()
    obs = Observation(sent="C-FIND, C-CANCEL after the first pending", status=final,
                      answered=f"{'none' if final is None else f'{final:04X}'} "
                               f"after {pending} pending")
    if final == 0x0000:
        obs.open_reason = "all responses were sent before the cancel was seen"
    return obs


@probe("mwl.wrong-identifier")
def wrong_identifier(target: Target, run: ProbeRun) -> Observation:
    reason = _mwl_unsupported(target)
    if reason:
        return Observation(sent="C-FIND", unsupported=reason)
    assert target.dicom is not None
    identifier = universal_mwl_identifier()
    identifier.QueryRetrieveLevel = "STUDY"
    final, matches = find_mwl(target.dicom, target.calling_ae, identifier)
    return Observation(sent="MWL C-FIND with Query/Retrieve Level STUDY", status=final,
                       answered=f"{'none' if final is None else f'{final:04X}'}"
                                f" ({len(matches)} matches)")


@probe("mwl.broad-query")
def broad_query(target: Target, run: ProbeRun) -> Observation:
    reason = _mwl_unsupported(target)
    if reason:
        return Observation(sent="C-FIND", unsupported=reason)
    assert target.dicom is not None
    started = time.perf_counter()
    final, matches = find_mwl(target.dicom, target.calling_ae)
    took = time.perf_counter() - started
    obs = Observation(sent="universal MWL C-FIND", status=final,
                      answered=f"{len(matches)} items, {'none' if final is None else f'{final:04X}'}"
                               f", {took * 1000:.0f} ms")
    obs.checks["final status 0000"] = final == 0x0000
    if target.ris is not None:
        obs.checks["every visible item returned"] = len(matches) == len(target.ris.worklist_items())
    return obs


def _matching_queries(items: list[Dataset]) -> list[tuple[str, Dataset]]:
    first = items[0]
    step = (first.get("ScheduledProcedureStepSequence") or [Dataset()])[0]
    family = str(first.get("PatientName", "")).split("^")[0]
    day = str(step.get("ScheduledProcedureStepStartDate", ""))
    queries = [
        ("wildcard name", universal_mwl_identifier(PatientName=f"{family[:2]}*")),
        ("single patient ID", universal_mwl_identifier(PatientID=str(first.get("PatientID", "")))),
        ("modality in the step sequence", universal_mwl_identifier(
            Modality=str(step.get("Modality", "")))),
    ]
    if day:
        queries.append(("open date range", universal_mwl_identifier(
            ScheduledProcedureStepStartDate=f"{day}-")))
        queries.append(("date range excluding all", universal_mwl_identifier(
            ScheduledProcedureStepStartDate="19000101-19000102")))
    return [(label, query) for label, query in queries if family or "name" not in label]


@probe("mwl.matching")
def matching(target: Target, run: ProbeRun) -> Observation:
    reason = _mwl_unsupported(target)
    if reason:
        return Observation(sent="C-FIND", unsupported=reason)
    assert target.dicom is not None
    _, items = find_mwl(target.dicom, target.calling_ae)
    if not items:
        return Observation(sent="matching queries", answered="empty worklist",
                           open_reason="no worklist items to match against")
    obs = Observation(sent="wildcard, single value, sequence and range queries")
    answered = []
    for label, query in _matching_queries(items):
        expected = {invariants.item_key(i) for i in items
                    if match_dataset(query, i, pn_case_sensitive=False) is not None}
        final, found = find_mwl(target.dicom, target.calling_ae, query)
        got = {invariants.item_key(i) for i in found}
        answered.append(f"{label}: {len(got)}/{len(expected)}")
        obs.checks[f"{label} matches PS3.4 C.2.2.2"] = final == 0x0000 and got == expected
    obs.answered = "; ".join(answered)
    return obs


__all__ = ["MAX_PROBE_ASSOCIATIONS"]
