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
:mod:`simulators.dicomweb.client`), ``dicom.c-find``, ``dicom.c-move`` and
``dicom.c-get`` (from pacsim's one Q/R SCU, :class:`~simulators.dicom.qrscu.QrClient`;
this module only decides what to ask and what the person waited for).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from pydicom.dataset import Dataset

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.qr import vr_of
from simulators.dicom.qrscu import QrClient, RetrieveResult
from simulators.dicomweb.client import LoadTiming, qido_studies, wado_load
from simulators.errors import ConfigError
from simulators.events import EventBus, Exchange

Via = Literal["wado", "move", "get"]
VIAS: tuple[str, ...] = ("wado", "move", "get")
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

    def _qr(self, where: ViewerSource) -> QrClient:
        """A Q/R client to ``where`` calling as this viewer (one association per call:
        each search or load pays its set-up, as the person in front of it does)."""
        if where.dicom is None:
            raise ConfigError(f"{where.name} has no DICOM address", actor=self.name)
        return QrClient(where.dicom, self.config.ae_title, self.events, self.name,
                        self.config.timeout)

    def _find(self, where: ViewerSource, level: str, match: dict[str, Any],
              keys: tuple[str, ...]) -> list[Dataset]:
        return self._qr(where).find_matches(level, match, keys=keys)

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
        client = self._qr(where)
        arrivals: list[Exchange] = []

        def arrived(event: Exchange) -> None:
            if event.kind == "dicom.c-store" and event.actor == self.name \
                    and event.outcome == "ok":
                arrivals.append(event)

        unsubscribe = self.events.subscribe(arrived)
        began_wall, began = time.time(), time.perf_counter()
        try:
            result = client.move({"StudyInstanceUID": study_uid}, self.config.ae_title,
                                 study_uid=study_uid)
        finally:
            total = time.perf_counter() - began
            unsubscribe()
        first = min((e.start + e.duration for e in arrivals), default=None)
        return LoadTiming("move", study_uid, len(arrivals), sum(e.bytes for e in arrivals),
                          None if first is None else max(0.0, first - began_wall), total,
                          status=_status_word(result))

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
        client = self._qr(where)
        began = time.perf_counter()
        result = client.get({"StudyInstanceUID": study_uid}, classes, study_uid=study_uid)
        total = time.perf_counter() - began
        first = result.first_arrival_at
        return LoadTiming("get", study_uid, len(result.arrivals), result.bytes,
                          None if first is None else first - began, total,
                          status=_status_word(result))


def _status_word(result: RetrieveResult) -> str:
    if result.status == 0 and not result.failed:
        return "success"
    return f"0x{result.status:04X}"


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
