"""Query/Retrieve against the target, as a viewer or a modality would (PS3.4 Annex C).

C-FIND and C-STORE go through the fast client (one event each, from its own code);
C-MOVE and C-GET, which the fast client does not speak, go through pynetdicom via
:func:`simulators.dicom.ae.associate`, and this module emits their one event.
Series and image levels are hierarchical: without a ``study_uid`` the study-level
query runs first and each study is then queried below it, so authors can match an
image-level query by accession like any other.
"""

from __future__ import annotations

from typing import Any, Iterable

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelMove,
)

from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.fast import FIND_MODELS, FastClient
from simulators.errors import ProtocolError
from simulators.events import EventBus


def status_word(code: int | None) -> str:
    """``success`` for 0x0000, else the status in hex (``0xC310``); ``none`` if absent."""
    if code is None:
        return "none"
    return "success" if code == 0 else f"0x{code:04X}"

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
LEVELS = {"patient": "PATIENT", "study": "STUDY", "series": "SERIES", "image": "IMAGE"}
#: Return keys asked for at each level (besides the matching keys).
RETURN_KEYS = {
    "PATIENT": ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"),
    "STUDY": ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
              "StudyInstanceUID", "AccessionNumber", "StudyDate", "StudyDescription",
              "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "NumberOfSeriesRelatedInstances"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "InstanceNumber"),
}
#: Keys that belong to the study level when a lower-level query must find its studies.
STUDY_KEYS = set(RETURN_KEYS["STUDY"]) | {"ReferringPhysicianName", "StudyTime", "StudyID"}
#: Keys that belong to the series level when an image query must find its series first.
SERIES_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "NumberOfSeriesRelatedInstances"}


def _identifier(level: str, match: dict[str, Any], keys: Iterable[str]) -> Dataset:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for name in dict.fromkeys([*keys, *match]):
        tag = tag_for_keyword(name)
        if tag is None:
            raise ProtocolError(f"{name!r} is not a DICOM attribute keyword")
        value = match.get(name)
        ds.add_new(tag, dictionary_VR(tag), "" if value is None else value)
    if any(ord(c) > 127 for c in str(match.values())):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


class QrClient:
    """One association at a time to the target, calling as ``calling_ae``."""

    def __init__(self, target: AeAddress, calling_ae: str, events: EventBus,
                 actor: str, timeout: float = 30.0) -> None:
        self.target, self.calling_ae, self.events, self.actor = target, calling_ae, events, actor
        self.timeout = timeout

    def _fast(self, contexts: list[tuple[str, list[str]]]) -> FastClient:
        client = FastClient(actor=self.actor, events=self.events, dimse_timeout=self.timeout)
        try:
            client.connect(self.target.host, self.target.port, self.calling_ae,
                           self.target.ae_title, contexts, timeout=self.timeout)
        except BaseException:
            client.close()
            raise
        return client

    # ------------------------------------------------------------------ C-FIND
    def find(self, level: str, match: dict[str, Any]) -> tuple[int, list[Dataset]]:
        """C-FIND at ``level`` (PATIENT/STUDY/SERIES/IMAGE); final status and matches.

        A series or image query without the unique keys above it first finds its
        studies (and series), then queries below each one, as the hierarchical model
        requires (PS3.4 C.4.1.2.1)."""
        if level in ("SERIES", "IMAGE") and not match.get("StudyInstanceUID"):
            return self._find_below("STUDY", "StudyInstanceUID", STUDY_KEYS, level, match)
        if level == "IMAGE" and not match.get("SeriesInstanceUID"):
            return self._find_below("SERIES", "SeriesInstanceUID", SERIES_KEYS, level, match)
        model = "patient" if level == "PATIENT" else "study"
        with self._fast([(FIND_MODELS[model], UNCOMPRESSED)]) as client:
            return client.find(_identifier(level, match, RETURN_KEYS[level]), model)

    def _find_below(self, parent: str, unique: str, parent_keys: set[str], level: str,
                    match: dict[str, Any]) -> tuple[int, list[Dataset]]:
        upper = {k: v for k, v in match.items() if k in parent_keys}
        lower = {k: v for k, v in match.items() if k not in parent_keys}
        status, parents = self.find(parent, upper)
        found: list[Dataset] = []
        for entity in parents if status == 0 else []:
            keys = {unique: str(entity.get(unique, ""))}
            if parent == "SERIES":
                keys["StudyInstanceUID"] = str(entity.get("StudyInstanceUID", ""))
            status, matches = self.find(level, {**lower, **keys})
            found.extend(matches)
            if status != 0:
                break
        return status, found

    # ------------------------------------------------------------------ C-STORE
    def store(self, datasets: list[Dataset]) -> list[int]:
        contexts = [(sop_class, [ExplicitVRLittleEndian]) for sop_class in
                    dict.fromkeys(str(ds.SOPClassUID) for ds in datasets)]
        with self._fast(contexts) as client:
            return client.store_many(datasets)

    # ------------------------------------------------------------------ C-MOVE / C-GET
    def move(self, study_uids: list[str], destination: str) -> dict[str, Any]:
        """C-MOVE each study to ``destination``; sums the final sub-operation counts."""
        ae = make_ae(AeSettings(self.calling_ae, dimse_timeout=self.timeout))
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        return self._retrieve(ae, "dicom.c-move", study_uids, lambda assoc, ds: assoc.send_c_move(
            ds, destination, StudyRootQueryRetrieveInformationModelMove), destination=destination)

    def get(self, study_uids: list[str], sop_classes: list[str]) -> dict[str, Any]:
        """C-GET each study on one association; instances arrive on it (SCP role)."""
        ae = make_ae(AeSettings(self.calling_ae, dimse_timeout=self.timeout))
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in sop_classes[:100]:
            ae.add_requested_context(sop_class, UNCOMPRESSED)
        received: list[str] = []

        def on_store(event: Any) -> int:
            received.append(str(event.request.AffectedSOPInstanceUID))
            return 0x0000

        roles = [build_role(sop_class, scp_role=True) for sop_class in sop_classes[:100]]
        result = self._retrieve(ae, "dicom.c-get", study_uids, lambda assoc, ds: assoc.send_c_get(
            ds, StudyRootQueryRetrieveInformationModelGet), ext_neg=roles,
            handlers=[(evt.EVT_C_STORE, on_store)])
        result["received"] = len(set(received))
        return result

    def _retrieve(self, ae: Any, kind: str, study_uids: list[str], send: Any, *,
                  ext_neg: list[Any] | None = None, handlers: list[Any] | None = None,
                  **detail: Any) -> dict[str, Any]:
        totals = {"completed": 0, "failed": 0, "warning": 0}
        final = 0xC000
        peer = self.target.address
        with self.events.exchange(kind, self.actor, peer, called_ae=self.target.ae_title,
                                  **detail) as exchange:
            assoc = associate(ae, self.target.host, self.target.port, self.target.ae_title,
                              handlers or (), ext_neg=ext_neg or None)
            try:
                for uid in study_uids:
                    final = self._one_retrieve(assoc, send, uid, totals)
                    if final not in (0x0000, 0xB000):
                        break
            finally:
                assoc.release()
            exchange.status = f"0x{final:04X}"
            exchange.outcome = "ok" if final == 0 else "failed"
            exchange.detail.update(totals)
        return {"status": status_word(final), **totals}

    @staticmethod
    def _one_retrieve(assoc: Any, send: Any, uid: str, totals: dict[str, int]) -> int:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = uid
        final = 0xC000
        for status, _ in send(assoc, identifier):
            if status is None or "Status" not in status:
                raise ProtocolError("retrieve ended without a final status (association lost)",
                                    study_uid=uid)
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                continue
            final = code
            totals["completed"] += int(status.get("NumberOfCompletedSuboperations", 0) or 0)
            totals["failed"] += int(status.get("NumberOfFailedSuboperations", 0) or 0)
            totals["warning"] += int(status.get("NumberOfWarningSuboperations", 0) or 0)
        return final


__all__ = ["QrClient", "LEVELS", "RETURN_KEYS"]
