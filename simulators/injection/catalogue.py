"""The fault catalogue as data: what real systems send, and what a conformant peer answers.

Sources: FAULTS.md (field cases from dcm4chee-arc-light and pynetdicom threads) and
the standard. Sections cited are DICOM PS3.4 (F = MPPS, J = storage commitment,
K = worklist, B = storage, C = query), PS3.7 (DIMSE status codes: 10.1 N-services,
9.1 C-services, Annex C status encoding), PS3.8 (9.3.4 A-ASSOCIATE-RJ result /
source / reason, 9.3.8 A-ABORT source and reason, Annex D.1 maximum length) and
HL7 v2.5.1 chapter 2 (2.9 acknowledgment, table 0008 acknowledgment codes, table
0357 message error condition codes). Where the standard leaves the answer open the
entry says "implementation-defined" and reports never call the answer wrong.

Adding a fault is adding an entry here and a probe in ``probes_*.py`` registered
under the same id; nothing else changes.
"""

from __future__ import annotations

import fnmatch

from simulators.errors import ConfigError
from simulators.injection.model import (
    ABORT, ACK, BEHAVIOUR, DIMSE, OPEN, REJECT, Expected, Fault,
)

_C = "modality.mpps.n-create"
_S = "modality.mpps.n-set"


def _dimse(text: str, *codes: int, any_failure: bool = False) -> Expected:
    return Expected(DIMSE, text, statuses=codes, any_failure=any_failure)


def _ack(text: str, codes: tuple[str, ...], *errs: int) -> Expected:
    return Expected(ACK, text, ack_codes=codes, err_codes=errs)


CATALOGUE: tuple[Fault, ...] = (
    # ------------------------------------------------------------------ MPPS (PS3.4 F)
    Fault("mpps.create-not-in-progress", "N-CREATE not IN PROGRESS",
          "N-CREATE with Performed Procedure Step Status COMPLETED", _C, "mpps",
          _dimse("0106 invalid attribute value; nothing created", 0x0106),
          "PS3.4 F.7.2.1.3 (SCP shall refuse a status other than IN PROGRESS); PS3.7 Annex C",
          invariant=True),
    Fault("mpps.create-missing-type1", "N-CREATE without a Type 1 attribute",
          "N-CREATE without Performed Procedure Step ID (Type 1 in Table F.7.2-1)", _C, "mpps",
          _dimse("0120 missing attribute; nothing created", 0x0120),
          "PS3.4 Table F.7.2-1 (1/1 requirement) and 5.4.2.1 (0120); PS3.7 10.1.5 N-CREATE status",
          invariant=True),
    Fault("mpps.create-empty-type1", "N-CREATE with an empty Type 1 attribute",
          "N-CREATE with a zero-length Performed Station AE Title", _C, "mpps",
          _dimse("0121 missing attribute value; nothing created", 0x0121),
          "PS3.4 Table F.7.2-1 and 5.4.2.1 (0121); PS3.7 10.1.5 N-CREATE status", invariant=True,
          source="PS3.7"),
    Fault("mpps.create-duplicate", "Duplicate N-CREATE",
          "a second N-CREATE with the same Affected SOP Instance UID", _C, "mpps",
          _dimse("0111 duplicate SOP instance", 0x0111),
          "PS3.7 10.1.5 N-CREATE status (Duplicate SOP Instance)", invariant=True),
    Fault("mpps.set-unknown", "N-SET of an unknown instance",
          "N-SET for an SOP Instance UID that was never created", _S, "mpps",
          _dimse("0112 no such SOP instance", 0x0112),
          "PS3.7 10.1.3 N-SET status (No such SOP Instance)"),
    Fault("mpps.set-after-final", "N-SET after COMPLETED",
          "N-SET once the step is COMPLETED", _S, "mpps",
          _dimse("0110 processing failure 'may no longer be updated'; state unchanged", 0x0110),
          "PS3.4 F.7.2.2.3 (SCP) and F.7.2.2.4 Table F.7.2-2 (Error ID A710)", invariant=True),
    Fault("mpps.set-create-only-attr", "N-SET of a create-only attribute",
          "N-SET changing Patient ID (\"Not allowed\" in N-SET)", _S, "mpps",
          _dimse("0105 or 0106 (which one is implementation-defined); value unchanged",
                 0x0105, 0x0106),
          "PS3.4 Table F.7.2-1 (N-SET column 'Not allowed'); PS3.7 10.1.3", invariant=True),
    Fault("mpps.set-unknown-status", "N-SET with an undefined status",
          "N-SET with Performed Procedure Step Status 'FINISHED'", _S, "mpps",
          _dimse("0106 invalid attribute value", 0x0106),
          "PS3.3 C.4.14 enumerated values; PS3.7 10.1.3", invariant=True, source="PS3.3"),
    Fault("mpps.complete-without-series", "COMPLETED without series",
          "N-SET COMPLETED with an empty Performed Series Sequence", _S, "mpps",
          _dimse("a failure status (final-state requirements); state unchanged",
                 any_failure=True),
          "PS3.4 Table F.7.2-1 'Final State' column, F.7.2.2.2", invariant=True),
    Fault("mpps.wrong-study-uid", "Study UID not the scheduled one",
          "N-CREATE whose Scheduled Step item carries a different Study Instance UID", _C,
          "mpps", Expected(BEHAVIOUR, "0000 accepted; no order or worklist item changes",
                           statuses=(0x0000,)),
          "PS3.4 F.7.2.1 (DICOM-valid); IHE RAD TF-2 4.6 (RAD-6)", invariant=True),
    Fault("mpps.wrong-patient", "Patient differs from the worklist item",
          "N-CREATE referencing a scheduled step with another Patient ID", _C, "mpps",
          Expected(BEHAVIOUR, "0000 accepted; no other patient's item changes",
                   statuses=(0x0000,)),
          "PS3.4 F.7.2.1 (DICOM-valid); IHE RAD TF-2 4.6", invariant=True),
    Fault("mpps.unscheduled", "Unscheduled procedure",
          "N-CREATE with empty accession, requested procedure and step IDs", _C, "mpps",
          Expected(BEHAVIOUR, "0000 accepted as unscheduled; no order matched",
                   statuses=(0x0000,)),
          "IHE RAD TF-2 4.6.4.1.2.2 (unscheduled case); PS3.4 F.7.2.1", invariant=True),
    Fault("mpps.orphan", "MPPS never finished",
          "IN PROGRESS never followed by COMPLETED or DISCONTINUED", _C, "mpps",
          Expected(BEHAVIOUR, "0000 accepted; the RIS may flag it stale later",
                   statuses=(0x0000,)),
          "PS3.4 F.7.2.1; IHE RAD TF-2 4.7 (no timeout defined)", invariant=True),
    Fault("mpps.bad-vr", "Badly formed DA value",
          "N-CREATE with Performed Procedure Step Start Date '2026-13-45'", _C, "mpps",
          _dimse("0106 invalid attribute value", 0x0106),
          "PS3.5 6.2 (DA); PS3.7 10.1.5 N-CREATE status", invariant=True),
    Fault("mpps.charset", "Non-ASCII name without Specific Character Set",
          "Patient's Name in ISO 8859-1 bytes with no Specific Character Set", _C, "mpps",
          Expected(BEHAVIOUR, "0106, or 0000 with correct coercion; never another patient",
                   statuses=(0x0000, 0x0106)),
          "PS3.5 6.1.2.3 (default repertoire); PS3.3 C.12.1.1.2", invariant=True),
    Fault("mpps.double-claim", "Two scanners claim one step",
          "two N-CREATEs from two AE titles for the same scheduled step", _C, "mpps",
          Expected(OPEN, "implementation-defined; no worklist corruption"),
          "PS3.4 F.7.2.1 (not addressed); IHE RAD TF-2 4.6", invariant=True),
    Fault("mpps.discontinued", "DISCONTINUED with a reason",
          "N-SET DISCONTINUED with reason DCM 110514 and no images", _S, "mpps",
          Expected(BEHAVIOUR, "0000 accepted; the step leaves the worklist as scheduled",
                   statuses=(0x0000,)),
          "PS3.4 F.7.2.2; PS3.16 CID 9300", invariant=True),
    # ------------------------------------------------------ associations (PS3.8)
    Fault("assoc.over-limit", "More associations than allowed",
          "one association more than the peer's configured maximum", "association", "dicom",
          Expected(REJECT, "A-ASSOCIATE-RJ transient, provider (presentation), "
                           "local-limit-exceeded; not a TCP reset", reject=(2, 3, 2)),
          "PS3.8 9.3.4 (result 2, source 3, reason 2)"),
    Fault("assoc.unknown-calling-ae", "Unknown calling AE title",
          "A-ASSOCIATE-RQ from a calling AE title the peer does not know", "association",
          "dicom", Expected(REJECT, "A-ASSOCIATE-RJ permanent, service-user, "
                                    "calling-AE-title-not-recognized", reject=(1, 1, 3)),
          "PS3.8 9.3.4 (result 1, source 1, reason 3)"),
    Fault("assoc.unknown-called-ae", "Wrong called AE title",
          "A-ASSOCIATE-RQ to a called AE title that is not the peer's", "association", "dicom",
          Expected(REJECT, "A-ASSOCIATE-RJ permanent, service-user, "
                           "called-AE-title-not-recognized", reject=(1, 1, 7)),
          "PS3.8 9.3.4 (result 1, source 1, reason 7)"),
    Fault("assoc.abort-mid-transfer", "A-ABORT in the middle of a request",
          "N-CREATE command and half its dataset, then A-ABORT", "association", "dicom",
          Expected(ABORT, "peer keeps serving others; the partial request has no effect"),
          "PS3.8 9.3.8 and 7.3 (A-ABORT)"),
    Fault("assoc.pdu-too-large", "P-DATA over the negotiated maximum",
          "a P-DATA-TF PDU longer than the Maximum Length the peer announced", "association",
          "dicom", Expected(ABORT, "A-ABORT (or close); memory bounded; keeps serving"),
          "PS3.8 Annex D.1 (Maximum Length) and 9.3.8 (invalid-PDU-parameter value)"),
    Fault("assoc.idle", "Idle association",
          "an association opened and left without any request", "association", "dicom",
          Expected(BEHAVIOUR, "peer releases or aborts after its idle timeout"),
          "PS3.8 9.1.5 (ARTIM) and local policy; timeout value implementation-defined"),
    Fault("assoc.unsupported-abstract-syntax", "Unknown SOP class proposed",
          "a presentation context with an abstract syntax the peer does not know",
          "association", "dicom",
          Expected(BEHAVIOUR, "context rejected: abstract-syntax-not-supported (3)"),
          "PS3.8 9.3.3.2 (presentation context result 3)", source="PS3.8"),
    # ------------------------------------------- DICOM TLS (PS3.15 Annex B, BCP 195)
    # Run only against a target reached over TLS (``faults run --tls-dir``); the
    # client-certificate cases only where the target requires one (``--tls-mutual``).
    Fault("tls.old-version", "TLS 1.0/1.1 offered",
          "a ClientHello offering only TLS 1.0 and 1.1 to the TLS port", "tls.handshake",
          "dicom", Expected(BEHAVIOUR, "handshake refused (protocol_version alert or close); "
                                       "no A-ASSOCIATE-AC; keeps serving"),
          "PS3.15 B.9/B.10 (BCP 195: TLS 1.2 or later); RFC 8996 (TLS 1.0/1.1 deprecated)",
          source="PS3.15"),
    Fault("tls.expired-cert", "Expired client certificate",
          "mutual TLS with a client certificate of the site CA whose validity ended",
          "tls.handshake", "dicom",
          Expected(BEHAVIOUR, "handshake refused (certificate_expired alert or close); "
                              "no A-ASSOCIATE-AC; keeps serving"),
          "PS3.15 B.1 (peer authentication by certificate); RFC 5280 6.1.3 (validity)",
          source="PS3.15"),
    Fault("tls.unknown-ca", "Client certificate from an unknown CA",
          "mutual TLS with a client certificate signed by a CA the target does not trust",
          "tls.handshake", "dicom",
          Expected(BEHAVIOUR, "handshake refused (unknown_ca alert or close); "
                              "no A-ASSOCIATE-AC; keeps serving"),
          "PS3.15 B.1 (certificates of trusted parties only); RFC 5280 6.1", source="PS3.15"),
    Fault("tls.no-client-cert", "No client certificate where one is required",
          "a TLS client that sends no certificate to a target that requires mutual TLS",
          "tls.handshake", "dicom",
          Expected(BEHAVIOUR, "handshake refused (handshake_failure/certificate_required "
                              "alert or close); no A-ASSOCIATE-AC; keeps serving"),
          "PS3.15 B.1 (both AEs authenticate); RFC 8446 4.4.2.4 / RFC 5246 7.4.6",
          source="PS3.15"),
    Fault("tls.plain-on-tls-port", "Plain DICOM on a TLS port",
          "an unencrypted A-ASSOCIATE-RQ sent straight to the TLS port", "tls.handshake",
          "dicom", Expected(BEHAVIOUR, "connection closed (or a TLS alert); never an "
                                       "A-ASSOCIATE-AC in the clear; keeps serving"),
          "PS3.15 B.1 (the TLS port carries TLS only); PS3.8 9.1.1", source="PS3.15"),
    # ----------------------------------------------------------- worklist (PS3.4 K)
    Fault("mwl.cancel", "C-CANCEL during pending results",
          "C-CANCEL-RQ right after the first pending C-FIND response", "mwl.c-find", "mwl",
          _dimse("FE00 cancel (0000 if every response was already sent)", 0xFE00),
          "PS3.4 K.4.1.3 (SCP returns Cancel) and K.4.1.1.4 (FE00); PS3.7 9.3.2.3 (C-CANCEL-FIND-RQ)"),
    Fault("mwl.wrong-identifier", "Identifier not an MWL identifier",
          "MWL C-FIND carrying Query/Retrieve Level STUDY", "mwl.c-find", "mwl",
          _dimse("A900 identifier does not match SOP class", 0xA900),
          "PS3.4 K.4.1.1.4 (C-FIND SCP status); PS3.7 9.1.2.1.6"),
    Fault("mwl.broad-query", "Universal worklist query",
          "MWL C-FIND with every key universal", "mwl.c-find", "mwl",
          Expected(BEHAVIOUR, "every item (or a documented limit); latency reported"),
          "PS3.4 K.4.1.3 (SCP behaviour) and C.2.2.2.3 (universal matching)"),
    Fault("mwl.matching", "Matching rules",
          "wildcard names, date ranges, single values and sequence matching", "mwl.c-find",
          "mwl", Expected(BEHAVIOUR, "results as PS3.4 C.2.2.2 matching rules give"),
          "PS3.4 C.2.2.2.1-C.2.2.2.6 and K.2.2"),
    # ------------------------------------------------ storage and commitment (B, J)
    Fault("store.duplicate-uid-different-content", "Same SOP Instance UID, other content",
          "a second C-STORE of an instance UID with another patient", "store.c-store", "store",
          Expected(OPEN, "implementation-defined: reject, keep first, or replace"),
          "PS3.4 B.4.1 (SCP behaviour on duplicates not specified)"),
    Fault("store.sop-mismatch", "Dataset does not match the SOP class",
          "an MR dataset sent under the CT Image Storage context", "store.c-store", "store",
          Expected(DIMSE, "A9xx failure or B007 warning",
                   statuses=(0xA900, 0xB007) + tuple(range(0xA901, 0xAA00))),
          "PS3.4 B.2.3 (C-STORE status A9xx / B007)"),
    Fault("store.missing-type1", "Missing Study Instance UID",
          "C-STORE of a dataset without Study Instance UID", "store.c-store", "store",
          _dimse("a failure status (A900/C000 range)", any_failure=True),
          "PS3.4 B.2.3; PS3.3 C.7.2.1 (Type 1)"),
    Fault("store.unsupported-ts", "Transfer syntax not supported",
          "CT Image Storage proposed with an unknown transfer syntax", "association", "store",
          Expected(BEHAVIOUR, "context rejected: transfer-syntaxes-not-supported (4)"),
          "PS3.8 9.3.3.2 (presentation context result 4)"),
    Fault("store.abort-mid-transfer", "A-ABORT during a C-STORE",
          "C-STORE command and half the dataset, then A-ABORT", "store.c-store", "store",
          Expected(ABORT, "peer keeps serving; the partial object is not stored"),
          "PS3.8 9.3.8; PS3.4 B.2.3 (success only for a stored object)"),
    Fault("stgcmt.same-vs-new-assoc", "Commitment report path",
          "N-ACTION request; report on the same or on a new association", "stgcmt.n-action",
          "commitment", Expected(BEHAVIOUR, "an N-EVENT-REPORT with every instance committed"),
          "PS3.4 J.3.3.1.2 and J.3.3.1.3 (same association may be tried; a new one must work)"),
    Fault("stgcmt.partial", "Commitment for a missing instance",
          "N-ACTION naming one stored and one never-stored instance", "stgcmt.n-action",
          "commitment",
          Expected(BEHAVIOUR, "Failed SOP Sequence with Failure Reason 0112 (no such object "
                              "instance); 0119 (class/instance conflict) tolerated"),
          "PS3.4 J.3.3.1.2; PS3.3 C.14.1.1 (Failure Reason 0112 / 0119)"),
    # -------------------------------------------------------------- MLLP framing
    Fault("mllp.no-start-block", "Frame without start block",
          "an HL7 message sent without <VT>", "mllp.frame", "hl7",
          Expected(BEHAVIOUR, "no ACK for the broken frame; the next frame is answered"),
          "HL7 v2.5.1 Appendix C (MLLP) C.4.3"),
    Fault("mllp.no-end-block", "Frame without end block",
          "<VT>message with no <FS><CR>, then a good frame", "mllp.frame", "hl7",
          Expected(BEHAVIOUR, "no ACK for the broken frame; the next frame is answered"),
          "HL7 v2.5.1 Appendix C (MLLP) C.4.3"),
    Fault("mllp.lf-separators", "LF segment separators",
          "segments separated by LF instead of CR", "mllp.frame", "hl7",
          Expected(BEHAVIOUR, "tolerant parse (AA) or AE/AR; never a crash"),
          "HL7 v2.5.1 2.5.4 (segment terminator is CR)"),
    Fault("mllp.oversize", "Oversized frame",
          "a 2 MiB frame", "mllp.frame", "hl7",
          Expected(BEHAVIOUR, "rejected or connection closed; memory bounded"),
          "HL7 v2.5.1 Appendix C; local limit implementation-defined"),
    Fault("mllp.stall", "Frame stops half-way",
          "<VT> and half a message, then silence", "mllp.frame", "hl7",
          Expected(BEHAVIOUR, "read timeout closes the connection"),
          "HL7 v2.5.1 Appendix C; timeout implementation-defined"),
    Fault("mllp.split", "Split and coalesced frames",
          "one frame split over three TCP writes, then two frames in one write", "mllp.frame",
          "hl7", Expected(BEHAVIOUR, "every message parsed and acknowledged in order"),
          "HL7 v2.5.1 Appendix C (MLLP is a byte stream)"),
    # ------------------------------------------------------------------ HL7 content
    Fault("hl7.required-missing", "Required field missing",
          "ADT^A01 with an empty PID-3", "ehr.hl7", "hl7",
          _ack("AE (or AR) with ERR 101", ("AE", "AR"), 101),
          "HL7 v2.5.1 2.9.2, tables 0008 and 0357 (101)"),
    Fault("hl7.unsupported-event", "Unsupported trigger event",
          "ADT^A99", "ehr.hl7", "hl7", _ack("AR with ERR 201 (or 200)", ("AR",), 201, 200),
          "HL7 v2.5.1 2.9.2, tables 0008 and 0357 (201)"),
    Fault("hl7.unsupported-message-type", "Unsupported message type",
          "ZZZ^Z01", "ehr.hl7", "hl7", _ack("AR with ERR 200", ("AR",), 200),
          "HL7 v2.5.1 2.9.2, table 0357 (200)", source="HL7 v2.5.1"),
    Fault("hl7.bad-table-value", "Value not in its table",
          "ADT^A01 with administrative sex 'Q' (table 0001)", "ehr.hl7", "hl7",
          _ack("AE with ERR 103", ("AE",), 103), "HL7 v2.5.1 2.9.2, table 0357 (103)"),
    Fault("hl7.bad-order-control", "Unknown order control",
          "ORM^O01 with ORC-1 'ZZ' (table 0119)", "ehr.hl7", "hl7",
          _ack("AE with ERR 103", ("AE",), 103), "HL7 v2.5.1 2.9.2, tables 0119 and 0357 (103)"),
    Fault("hl7.bad-date", "Malformed date",
          "ADT^A01 with PID-7 '19991399'", "ehr.hl7", "hl7",
          _ack("AE with ERR 102", ("AE",), 102), "HL7 v2.5.1 2.9.2, table 0357 (102)",
          source="HL7 v2.5.1"),
    Fault("hl7.duplicate-control-id", "Repeated MSH-10",
          "the same ORM^O01 sent twice with one control ID", "ehr.hl7", "hl7",
          Expected(BEHAVIOUR, "idempotent: one effect, the same ACK twice"),
          "HL7 v2.5.1 2.10.1 (sequence number protocol; otherwise duplicates are receiver policy)"),
    Fault("hl7.out-of-order", "Events out of order",
          "A08 for an unknown patient, then a cancel for an unknown order", "ehr.hl7", "hl7",
          Expected(OPEN, "implementation-defined; reported; no corruption"),
          "HL7 v2.5.1 3.3.8 (A08) and 4.5.1 (ORC-1 CA)", invariant=True),
    Fault("hl7.merge", "Patient merge",
          "ADT^A40 merging a patient who has a scheduled order", "ehr.hl7", "hl7",
          Expected(BEHAVIOUR, "the worklist shows the surviving patient only"),
          "HL7 v2.5.1 3.3.40 (A40); IHE RAD TF-2 4.12", invariant=True),
)

BY_ID: dict[str, Fault] = {fault.id: fault for fault in CATALOGUE}


def fault(fault_id: str) -> Fault:
    """The catalogue entry ``fault_id``; ConfigError naming the known ids otherwise."""
    try:
        return BY_ID[fault_id]
    except KeyError:
        raise ConfigError(f"unknown fault {fault_id!r}",
                          known=", ".join(sorted(BY_ID))) from None


def select(pattern: str | None = None) -> list[Fault]:
    """Entries whose id matches ``pattern`` (glob, or comma-separated globs/prefixes)."""
    if not pattern:
        return list(CATALOGUE)
    globs = [p.strip() for p in pattern.split(",") if p.strip()]
    chosen = [f for f in CATALOGUE
              if any(fnmatch.fnmatchcase(f.id, g) or f.id.startswith(g) for g in globs)]
    if not chosen:
        raise ConfigError(f"no fault matches {pattern!r}")
    return chosen


__all__ = ["CATALOGUE", "BY_ID", "fault", "select"]
