"""The viewer actor: a referring physician's tablet or a reading workstation.

It searches for studies (QIDO-RS, or C-FIND) and loads them (WADO-RS, C-MOVE to
itself, or C-GET), measuring what the person waits for: time to the first image,
time to the whole study, bytes and MB/s (:class:`LoadTiming`).

Why a subclass of :class:`Archive`: a workstation is a C-MOVE destination, so it
needs a storage SCP with an index, and the archive already is exactly that
(durable store, duplicate policy, one event per C-STORE). Inheriting keeps
``target.retrieve`` and the site's C-MOVE destination table working for viewers
unchanged; this module only adds the client side.

Where it loads from is a :class:`ViewerSource` (DICOM address and/or DICOMweb
URL), passed per call or set once in :class:`ViewerConfig`, so probes use a viewer
without any scenario: ``Viewer(ViewerConfig(source=...)).start().load_study(uid)``.
Every exchange is one event: ``dicomweb.qido``/``dicomweb.wado`` (from
:mod:`simulators.dicomweb.client`), ``dicom.c-find`` (fast client), ``dicom.c-move``,
``dicom.c-get`` (here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.ae import AeSettings, associate, make_ae
from simulators.dicom.fast import FastClient
from simulators.dicom.qr import vr_of
from simulators.dicomweb.client import LoadTiming, qido_studies, wado_load
from simulators.errors import ConfigError, ProtocolError
from simulators.events import EventBus, Exchange

Via = Literal["wado", "move", "get"]
VIAS: tuple[str, ...] = ("wado", "move", "get")
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
#: Study attributes a search returns (the study list a viewer shows).
STUDY_KEYS = ("PatientID", "PatientName", "PatientBirthDate", "StudyInstanceUID", "StudyDate",
              "StudyTime", "AccessionNumber", "StudyDescription", "ModalitiesInStudy",
              "NumberOfStudyRelatedInstances")


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerSource:
    """A system a viewer reads from: its DICOM peer and/or its DICOMweb root."""

    name: str = "target"
    dicom: AeAddress | None = None
    dicomweb_url: str | None = None

    @property
    def has_dicom(self) -> bool:
        return self.dicom is not None


@dataclass(frozen=True)
class ViewerConfig(ArchiveConfig):
    """An :class:`ArchiveConfig` (its storage SCP receives C-MOVEs) plus where to read."""

    name: str = "viewer"
    ae_title: str = "VIEWER"
    source: ViewerSource | None = None
    #: Longest wait for one search or one study load.
    timeout: float = 60.0


class Viewer(Archive):
    """Searches and loads studies; also a storage SCP (C-MOVE destination)."""

    kind = "viewer"

    def __init__(self, config: ViewerConfig | None = None, events: EventBus | None = None) -> None:
        super().__init__(config or ViewerConfig(), events)
        self.config: ViewerConfig

    def _source(self, source: ViewerSource | None) -> ViewerSource:
        chosen = source or self.config.source
        if chosen is None:
            raise ConfigError("the viewer has no source to read from", actor=self.name)
        return chosen

    # ------------------------------------------------------------------ search
    def search_studies(self, source: ViewerSource | None = None, *, via: str = "qido",
                       **match: Any) -> list[dict[str, Any]]:
        """Studies matching DICOM keywords (``PatientID="X"``, ``StudyDate="20240101-"``),
        each as ``{keyword: plain value}``; QIDO-RS or, with ``via="find"``, C-FIND."""
        where = self._source(source)
        for keyword in match:
            vr_of(keyword)  # ProtocolError for a keyword that is not one
        if via == "qido":
            if not where.dicomweb_url:
                raise ConfigError(f"{where.name} has no DICOMweb URL", actor=self.name)
            filters = {k: _qido_value(v) for k, v in match.items() if v not in (None, "")}
            found = qido_studies(where.dicomweb_url, filters, events=self.events,
                                 actor=self.name, timeout=self.config.timeout)
            return [_plain_dataset(Dataset.from_json(item)) for item in found]
        if via == "find":
            return [_plain_dataset(ds) for ds in self._find(where, "STUDY", match, STUDY_KEYS)]
        raise ConfigError(f"unknown search method {via!r}; choose qido or find")

    def _find(self, where: ViewerSource, level: str, match: dict[str, Any],
              keys: tuple[str, ...]) -> list[Dataset]:
        if where.dicom is None:
            raise ConfigError(f"{where.name} has no DICOM address", actor=self.name)
        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword in dict.fromkeys([*keys, *match]):
            value = match.get(keyword)
            identifier.add_new(keyword, vr_of(keyword), None if value in (None, "") else value)
        client = FastClient(actor=self.name, events=self.events,
                            dimse_timeout=self.config.timeout)
        try:
            client.connect(where.dicom.host, where.dicom.port, self.config.ae_title,
                           where.dicom.ae_title,
                           [(StudyRootQueryRetrieveInformationModelFind, UNCOMPRESSED)],
                           timeout=self.config.timeout)
            status, found = client.find(identifier, "study")
        finally:
            client.close()
        if status != 0:
            raise ProtocolError("C-FIND failed", status=f"0x{status:04X}", peer=where.name)
        return found

    # ------------------------------------------------------------------ load
    def load_study(self, study_uid: str, via: str = "wado",
                   source: ViewerSource | None = None) -> LoadTiming:
        """Load every image of a study the way ``via`` says; the timings of the load."""
        where = self._source(source)
        if via == "wado":
            if not where.dicomweb_url:
                raise ConfigError(f"{where.name} has no DICOMweb URL", actor=self.name)
            return wado_load(where.dicomweb_url, study_uid, events=self.events,
                             actor=self.name, timeout=self.config.timeout)
        if via == "move":
            return self._move(where, study_uid)
        if via == "get":
            return self._get(where, study_uid)
        raise ConfigError(f"unknown load method {via!r}; choose one of {', '.join(VIAS)}")

    def _move(self, where: ViewerSource, study_uid: str) -> LoadTiming:
        """C-MOVE to this viewer's own storage SCP; arrivals are its C-STORE events."""
        if where.dicom is None:
            raise ConfigError(f"{where.name} has no DICOM address", actor=self.name)
        arrivals: list[Exchange] = []

        def arrived(event: Exchange) -> None:
            if event.kind == "dicom.c-store" and event.actor == self.name \
                    and event.outcome == "ok":
                arrivals.append(event)

        ae = make_ae(AeSettings(self.config.ae_title, dimse_timeout=self.config.timeout))
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        unsubscribe = self.events.subscribe(arrived)
        began_wall, began = time.time(), time.perf_counter()
        try:
            final, counts = self._retrieve(where, ae, "dicom.c-move", study_uid,
                                           lambda assoc, ds: assoc.send_c_move(
                                               ds, self.config.ae_title,
                                               StudyRootQueryRetrieveInformationModelMove))
        finally:
            total = time.perf_counter() - began
            unsubscribe()
        first = min((e.start + e.duration for e in arrivals), default=None)
        return LoadTiming("move", study_uid, len(arrivals), sum(e.bytes for e in arrivals),
                          None if first is None else max(0.0, first - began_wall), total,
                          status=_status_word(final, counts))

    def _get(self, where: ViewerSource, study_uid: str) -> LoadTiming:
        """C-GET on one association: the instances arrive on it (SCP role negotiated)."""
        series = self._find(where, "SERIES", {"StudyInstanceUID": study_uid},
                            ("SeriesInstanceUID",))
        images = [ds for se in series[:500] for ds in self._find(
            where, "IMAGE", {"StudyInstanceUID": study_uid,
                             "SeriesInstanceUID": str(se.SeriesInstanceUID)},
            ("SOPClassUID", "SOPInstanceUID"))]
        classes = list(dict.fromkeys(str(ds.SOPClassUID) for ds in images
                                     if ds.get("SOPClassUID")))[:100]
        ae = make_ae(AeSettings(self.config.ae_title, dimse_timeout=self.config.timeout))
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in classes:
            ae.add_requested_context(sop_class, UNCOMPRESSED)
        received: list[tuple[float, int]] = []
        began = time.perf_counter()

        def on_store(event: Any) -> int:
            size = len(event.request.DataSet.getvalue()) if event.request.DataSet else 0
            received.append((time.perf_counter() - began, size))
            return 0x0000

        final, counts = self._retrieve(
            where, ae, "dicom.c-get", study_uid,
            lambda assoc, ds: assoc.send_c_get(ds, StudyRootQueryRetrieveInformationModelGet),
            ext_neg=[build_role(c, scp_role=True) for c in classes],
            handlers=[(evt.EVT_C_STORE, on_store)])
        total = time.perf_counter() - began
        return LoadTiming("get", study_uid, len(received), sum(s for _, s in received),
                          received[0][0] if received else None, total,
                          status=_status_word(final, counts))

    def _retrieve(self, where: ViewerSource, ae: Any, kind: str, study_uid: str, send: Any,
                  **assoc_args: Any) -> tuple[int, dict[str, int]]:
        """One study-level C-MOVE/C-GET as one exchange; final status and sub-op counts."""
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = study_uid
        counts = {"completed": 0, "failed": 0, "warning": 0}
        final = 0xC000
        peer = where.dicom
        if peer is None:
            raise ConfigError(f"{where.name} has no DICOM address", actor=self.name)
        with self.events.exchange(kind, self.name, peer.address,
                                  called_ae=peer.ae_title, study_uid=study_uid) as event:
            assoc = associate(ae, peer.host, peer.port, peer.ae_title,
                              assoc_args.get("handlers") or (),
                              ext_neg=assoc_args.get("ext_neg") or None)
            try:
                for status, _ in send(assoc, identifier):
                    if status is None or "Status" not in status:
                        raise ProtocolError("retrieve ended without a final status",
                                            peer=where.name, study_uid=study_uid)
                    if int(status.Status) in (0xFF00, 0xFF01):
                        continue
                    final = int(status.Status)
                    for key, field in (("completed", "NumberOfCompletedSuboperations"),
                                       ("failed", "NumberOfFailedSuboperations"),
                                       ("warning", "NumberOfWarningSuboperations")):
                        counts[key] = int(status.get(field, 0) or 0)
            finally:
                assoc.release()
            event.status = f"0x{final:04X}"
            event.outcome = "ok" if final == 0 else "failed"
            event.detail.update(counts)
        return final, counts


def _status_word(final: int, counts: dict[str, int]) -> str:
    if final == 0 and not counts["failed"]:
        return "success"
    return f"0x{final:04X}"


def _qido_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _plain_dataset(ds: Dataset) -> dict[str, Any]:
    """``{keyword: str | list[str]}`` for scenario expectations."""
    out: dict[str, Any] = {}
    for element in ds:
        if element.VR == "SQ" or element.keyword in ("", "QueryRetrieveLevel",
                                                     "SpecificCharacterSet", "RetrieveURL"):
            continue
        value = element.value
        if value is None:
            out[element.keyword] = ""
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            out[element.keyword] = [str(v) for v in value]
        else:
            out[element.keyword] = str(value)
    return out


__all__ = ["Viewer", "ViewerConfig", "ViewerSource", "LoadTiming", "VIAS"]
