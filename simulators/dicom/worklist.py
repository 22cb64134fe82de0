"""Modality Worklist: orders as MWL item datasets, and answering MWL C-FIND queries.

Why here and not in the RIS actor: the item layout (PS3.4 K.6 Table K.6-1) and the
query answering rules (return only requested keys, A900 for an identifier that is
not an MWL identifier, FE00 on C-CANCEL) are what a modality sees; an archive with a
built-in worklist, or a test double of a broken RIS, reuses them unchanged. The
matching itself is :mod:`simulators.dicom.matching`.

Status codes used (PS3.4 C.4.1.1.4 / K.4.1.1.4, PS3.7 Annex C):

* ``FF00`` pending, one per matching item (every requested key is returned, absent
  ones zero-length, so ``FF01`` "optional keys not supported" is never needed);
* ``0000`` success, after the last item (pynetdicom sends it when the generator ends);
* ``FE00`` cancel, when the SCU sent C-CANCEL while results were still pending;
* ``A900`` "Identifier does not match SOP Class": the identifier is structurally not
  an MWL query (a Query/Retrieve Level, a sequence key with more than one item, a key
  whose VR differs from the data dictionary);
* ``C000`` "unable to process": the identifier cannot be decoded, or answering failed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Sequence as ReadOnlyList
from typing import Any, Callable, Iterable, Iterator

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from simulators.dicom.fast.service import DimseRequest, Reply
from simulators.dicom.matching import NON_KEY_TAGS, is_universal_key, match_dataset
from simulators.dicom.mwl_index import (
    AnswerMemo, WorklistRecord, compile_query, matching_answers,
)
from simulators.errors import AssociationClosed
from simulators.world.iod_common import code_item
from simulators.world.models import Order

log = logging.getLogger(__name__)

STATUS_PENDING = 0xFF00
STATUS_CANCEL = 0xFE00
STATUS_NOT_MWL_IDENTIFIER = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000

#: Scheduled Procedure Step Start Date/Time: the pair combined date-time matching joins.
SPS_START_PAIR = (0x00400002, 0x00400003)
#: Query/Retrieve Level: belongs to Q/R identifiers, never to MWL ones.
_QR_LEVEL_TAG = 0x00080052
UTF8 = "ISO_IR 192"

FindResponse = tuple[int | Dataset, Dataset | None]

#: Modality Worklist Information Model - FIND.
MWL_FIND = "1.2.840.10008.5.1.4.31"
#: Service-class-application-information of C-FIND extended negotiation (PS3.4
#: C.5.1.1.4, which the Basic Worklist SOP class uses, K.5.1.1): byte 1 relational
#: queries, byte 2 combined date-time matching, byte 3 fuzzy semantic PN matching,
#: byte 4 timezone query adjustment; 1 = supported/asked, 0 = not.
EXT_COMBINED_DATETIME = 1
_EXT_FIELDS = 4


def mwl_extended_answer(sop_class: str, requested: bytes) -> bytes | None:
    """What an MWL SCP agrees to when the SCU sends SOP Class Extended Negotiation.

    Why: combined date-time matching (C.2.2.2.5.1) is the SCU's choice per association;
    we support it and grant exactly what was asked, and refuse (0) relational queries,
    fuzzy PN matching and timezone adjustment, which we do not implement. The answer is
    as long as the request (at most the four fields we know), per PS3.7 D.3.3.5.2.
    """
    if sop_class != MWL_FIND or not requested:
        return None
    answer = bytearray(min(len(requested), _EXT_FIELDS))
    if len(answer) > EXT_COMBINED_DATETIME and requested[EXT_COMBINED_DATETIME] == 1:
        answer[EXT_COMBINED_DATETIME] = 1
    return bytes(answer)


def combined_datetime_for(agreed: bytes | None, default: bool) -> bool:
    """Combined date-time matching for one association: the agreed byte, else ``default``.

    ``agreed`` is what :func:`mwl_extended_answer` granted on this association (None
    when the SCU sent no extended negotiation, or too short to carry the field): then
    the SCP's own setting decides.
    """
    if agreed is None or len(agreed) <= EXT_COMBINED_DATETIME:
        return default
    return agreed[EXT_COMBINED_DATETIME] == 1

#: After each of the first CANCEL_WINDOW pending responses, pause CANCEL_PAUSE
#: seconds. Why: a modality cancels when it has seen the first results (PS3.7
#: 9.3.2.3), but matches are prepared up front and loopback takes megabytes at
#: once, so without a pause a short list is all sent before the C-CANCEL can
#: arrive (the built-in target's mwl.cancel probe then read 0000, 1 run in 3 on a
#: busy host). The pause is idle time - other associations are served meanwhile -
#: and costs a query at most ~CANCEL_WINDOW ms; a one-match query pays nothing.
CANCEL_WINDOW = 32
CANCEL_PAUSE = 0.001


# ------------------------------------------------------------------ building items
def _needs_unicode(*texts: str) -> bool:
    return any(not text.isascii() for text in texts)


def build_worklist_item(order: Order) -> Dataset:
    """One MWL item (PS3.4 K.6 Table K.6-1) for ``order``'s scheduled step.

    The Specific Character Set is written first so pydicom encodes every later text
    value with it: the patient's own charset when it has one, ``ISO_IR 192`` (UTF-8)
    when any text is non-ASCII, and absent (default repertoire) otherwise.
    """
    patient, step, procedure = order.patient, order.step, order.procedure
    ds = Dataset()
    texts = (patient.family_name, patient.given_name, step.description, procedure.meaning,
             step.station_name, step.performing_physician, order.referring_physician,
             order.reason)
    charset = patient.charset or (UTF8 if _needs_unicode(*texts) else None)
    if charset:
        ds.SpecificCharacterSet = charset
    # Patient Identification / Demographic (K.6.1.2.x)
    ds.PatientName = patient.dicom_name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.dicom_birth_date
    ds.PatientSex = patient.sex
    # Imaging Service Request
    ds.AccessionNumber = order.accession
    ds.ReferringPhysicianName = order.referring_physician
    ds.PlacerOrderNumberImagingServiceRequest = order.placer_number
    ds.FillerOrderNumberImagingServiceRequest = order.filler_number
    # Requested Procedure
    ds.RequestedProcedureID = order.requested_procedure_id
    ds.RequestedProcedureDescription = procedure.meaning
    ds.RequestedProcedureCodeSequence = Sequence(
        [code_item(procedure.code, procedure.scheme, procedure.meaning)])
    ds.StudyInstanceUID = order.study_uid
    ds.RequestedProcedurePriority = order.priority
    ds.ReasonForTheRequestedProcedure = order.reason
    ds.ReferencedStudySequence = Sequence()
    ds.ReferencedPatientSequence = Sequence()
    # Scheduled Procedure Step
    sps = Dataset()
    sps.Modality = step.modality
    sps.ScheduledStationAETitle = step.station_ae
    sps.ScheduledStationName = step.station_name
    sps.ScheduledProcedureStepStartDate = step.start.strftime("%Y%m%d")
    sps.ScheduledProcedureStepStartTime = step.start.strftime("%H%M%S")
    sps.ScheduledPerformingPhysicianName = step.performing_physician
    sps.ScheduledProcedureStepDescription = step.description
    sps.ScheduledProtocolCodeSequence = Sequence(
        [code_item(procedure.code, procedure.scheme, procedure.meaning)])
    sps.ScheduledProcedureStepID = step.step_id
    sps.ScheduledProcedureStepStatus = step.status
    sps.ScheduledProcedureStepLocation = step.station_name
    ds.ScheduledProcedureStepSequence = Sequence([sps])
    return ds


# -------------------------------------------------------------- query validation
def _vr_mismatch(element: Any) -> bool:
    """A key whose VR is not the dictionary's (explicit-VR identifiers only)."""
    try:
        expected = dictionary_VR(element.tag)
    except KeyError:
        return False  # unknown/private tags are ignored, not rejected
    return " or " not in expected and element.VR not in (expected, "UN")


def invalid_mwl_identifier(identifier: Dataset) -> str | None:
    """Why ``identifier`` is not an MWL query (for an A900), or ``None`` if it is one."""
    if _QR_LEVEL_TAG in identifier:
        return "Query/Retrieve Level (0008,0052) is not an MWL key"
    return _invalid_keys(identifier, depth=0)


def _invalid_keys(dataset: Dataset, depth: int) -> str | None:
    for element in dataset:
        if element.tag.is_private or element.tag.element == 0:
            continue
        if _vr_mismatch(element):
            return f"{element.keyword or element.tag} has VR {element.VR}"
        if element.VR == "SQ":
            items = element.value or []
            if len(items) > 1:
                return f"sequence key {element.keyword} has {len(items)} items (C.2.2.2.6: one)"
            if items and depth < 4:
                reason = _invalid_keys(items[0], depth + 1)
                if reason:
                    return reason
    return None


def status_dataset(code: int, comment: str) -> Dataset:
    """A C-FIND status with an Error Comment (LO: at most 64 characters)."""
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status


# ----------------------------------------------------------------- answering
def matching_keys(query: Dataset) -> Dataset:
    """``query`` without its return-only keys: what decides whether an item matches.

    Why: :func:`~simulators.dicom.matching.match_dataset` builds the response while
    it matches, so a candidate rejected by its last key (the station, inside the
    Scheduled Procedure Step Sequence) has already had every return key copied.
    Over 500 items that was 0.2-0.4 s of pydicom work per query. Matching first
    against this reduced query and building the full response only for the items
    that pass gives the same answers: universal keys always match (C.2.2.2.3), and
    a sequence key keeps one (universal) sub-key when all of its keys are universal,
    so it still requires the candidate to have an item.
    """
    reduced = Dataset()
    for element in query:
        if element.tag.is_private or element.tag.element == 0 or int(element.tag) in NON_KEY_TAGS:
            continue
        if is_universal_key(element):
            continue
        if element.VR == "SQ":
            item = element.value[0]
            inner = matching_keys(item)
            if not len(inner):  # keep the item non-empty: "has an item" still counts
                inner.add(copy.deepcopy(next(iter(item))))
            reduced.add_new(element.tag, "SQ", Sequence([inner]))
            continue
        reduced.add(copy.copy(element))
    return reduced


def mwl_matches(identifier: Dataset, items: Iterable[Dataset], *,
                pn_case_sensitive: bool = False, combined_datetime: bool = False,
                max_results: int | None = None) -> Iterator[Dataset]:
    """The response identifiers for a *valid* MWL ``identifier``, in item order.

    ``combined_datetime`` switches Scheduled Procedure Step Start Date/Time to
    combined matching (C.2.2.2.5.1), which an SCU asks for through extended
    negotiation. ``max_results`` bounds a broad query.
    """
    pairs = [SPS_START_PAIR] if combined_datetime else []
    selector = matching_keys(identifier)
    sent = 0
    for item in items:
        if max_results is not None and sent >= max_results:
            return
        if match_dataset(selector, item, pn_case_sensitive=pn_case_sensitive,
                         combined_pairs=pairs) is None:
            continue
        response = match_dataset(identifier, item, pn_case_sensitive=pn_case_sensitive,
                                 combined_pairs=pairs)
        if response is None:  # cannot happen (same keys); never answer what did not match
            continue
        sent += 1
        yield response


def answer_mwl_query(identifier: Dataset, items: Iterable[Dataset], *,
                     is_cancelled: Callable[[], bool] = lambda: False,
                     **options: Any) -> Iterator[FindResponse]:
    """Yield the C-FIND responses for ``identifier`` against worklist ``items``.

    Pending (FF00) per match, FE00 as soon as a C-CANCEL is seen (then nothing
    more), A900 for a non-MWL identifier. ``options`` are :func:`mwl_matches`'s.
    """
    reason = invalid_mwl_identifier(identifier)
    if reason is not None:
        yield status_dataset(STATUS_NOT_MWL_IDENTIFIER, reason), None
        return
    for response in mwl_matches(identifier, items, **options):
        if is_cancelled():
            yield STATUS_CANCEL, None
            return
        yield STATUS_PENDING, response
    if is_cancelled():
        yield STATUS_CANCEL, None


def prepare_mwl_answer(decode: Callable[[], Dataset | None], items: Iterable[Dataset],
                       encode: Callable[[Dataset], bytes], **options: Any
                       ) -> tuple[list[bytes], Dataset | None]:
    """Decode, validate, match and encode one MWL query; never raises.

    Returns the encoded pending identifiers and, when the query fails, the final
    status (A900 not an MWL identifier, C000 undecodable or failed) instead of
    success. Blocking (CPU-bound) work: an acceptor runs it off its event loop.
    """
    identifier, refusal = _valid_identifier(decode)
    if identifier is None:
        return [], refusal
    try:
        return [encode(ds) for ds in mwl_matches(identifier, items, **options)], None
    except Exception as exc:  # noqa: BLE001 - answer with a status, keep serving
        log.exception("MWL query failed")
        return [], status_dataset(STATUS_UNABLE_TO_PROCESS, f"unable to process: {exc}")


def _valid_identifier(decode: Callable[[], Dataset | None]
                      ) -> tuple[Dataset, None] | tuple[None, Dataset]:
    """The decoded MWL identifier, or the final status that refuses it (C000 when it
    cannot be decoded, A900 when absent or not an MWL identifier)."""
    try:
        identifier = decode()
    except Exception as exc:  # noqa: BLE001 - any decode error is the peer's bad bytes
        log.warning("undecodable MWL identifier: %s", exc)
        return None, status_dataset(STATUS_UNABLE_TO_PROCESS, "identifier cannot be decoded")
    if identifier is None:
        return None, status_dataset(STATUS_NOT_MWL_IDENTIFIER, "C-FIND without an identifier")
    reason = invalid_mwl_identifier(identifier)
    if reason is not None:
        return None, status_dataset(STATUS_NOT_MWL_IDENTIFIER, reason)
    return identifier, None


def prepare_mwl_records(decode: Callable[[], Dataset | None], records: Iterable[WorklistRecord],
                        transfer_syntax: str, encode: Callable[[Dataset], bytes], *,
                        pn_case_sensitive: bool = False, combined_datetime: bool = False,
                        max_results: int | None = None) -> tuple[list[bytes], Dataset | None]:
    """:func:`prepare_mwl_answer` on indexed items (:mod:`simulators.dicom.mwl_index`).

    Same statuses and answers; each item's values were split once and each item's
    answer is encoded once per transfer syntax and requested-key set, so a burst of
    identical broad queries costs one decode and plain string matching per query.
    """
    identifier, refusal = _valid_identifier(decode)
    if identifier is None:
        return [], refusal
    try:
        query = compile_query(identifier, pn_case_sensitive=pn_case_sensitive,
                              combined_pairs=[SPS_START_PAIR] if combined_datetime else [])
        return list(matching_answers(query, records, transfer_syntax, encode,
                                     max_results=max_results)), None
    except Exception as exc:  # noqa: BLE001 - answer with a status, keep serving
        log.exception("MWL query failed")
        return [], status_dataset(STATUS_UNABLE_TO_PROCESS, f"unable to process: {exc}")


#: Pending responses written per batch after the cancel window; a C-CANCEL is read
#: between batches (a batch of 64 small identifiers is ~60 KB, sent in well under 1 ms).
SEND_BATCH = 64


async def serve_mwl_find(request: "DimseRequest",
                         snapshot: Callable[[], tuple[int, ReadOnlyList[WorklistRecord]]], *,
                         memo: AnswerMemo | None = None, **options: Any) -> "Reply":
    """A :class:`~simulators.dicom.fast.server.FastServer` C-FIND handler body for MWL.

    ``snapshot`` returns (worklist version, visible records); with a ``memo`` an
    identical query against the same version reuses the previous answer's bytes.
    Reading the items (the owner's lock), matching and encoding (cached per item)
    run in the server's thread pool; the pending responses then go out from those
    bytes: the first ``CANCEL_WINDOW`` one by one, the rest ``SEND_BATCH`` per
    write, and a C-CANCEL read in between ends the query with FE00.
    ``request.event.detail["matches"]`` counts the pending responses sent.
    """

    event = request.event

    def work() -> tuple[list[bytes], Dataset | None]:
        version, records = snapshot()
        key = (version, request.data, request.context.transfer_syntax,
               tuple(sorted(options.items())))
        if memo is not None:
            known = memo.get(key)
            if known is not None:
                return known, None
        encoded, failure = prepare_mwl_records(request.dataset, records,
                                               request.context.transfer_syntax, request.encode,
                                               **options)
        if memo is not None and failure is None:
            memo.put(key, encoded)
        return encoded, failure

    encoded, failure = await request.run_blocking(work)
    event.detail["matches"] = 0
    if failure is not None:
        event.detail["comment"] = str(failure.get("ErrorComment", ""))
        return Reply(int(failure.Status), fields={"ErrorComment": failure.get("ErrorComment")})
    try:
        index = 0
        while index < len(encoded) and not request.cancelled:
            if index < CANCEL_WINDOW:
                await request.pending_encoded(encoded[index:index + 1])
                index += 1
                event.detail["matches"] += 1
                if index < len(encoded):
                    await asyncio.sleep(CANCEL_PAUSE)
                continue
            batch = encoded[index:index + SEND_BATCH]
            await request.pending_encoded(batch)
            index += len(batch)
            event.detail["matches"] += len(batch)
    except AssociationClosed:
        event.outcome = "aborted"  # the peer left before the final response
        raise
    if request.cancelled:
        event.outcome = "cancelled"
        return Reply(STATUS_CANCEL)
    return Reply(0x0000)


__all__ = [
    "build_worklist_item", "invalid_mwl_identifier", "matching_keys", "mwl_matches",
    "answer_mwl_query", "prepare_mwl_answer", "prepare_mwl_records", "serve_mwl_find",
    "status_dataset", "SEND_BATCH",
    "SPS_START_PAIR", "STATUS_PENDING", "STATUS_CANCEL", "STATUS_NOT_MWL_IDENTIFIER",
    "STATUS_UNABLE_TO_PROCESS",
]
