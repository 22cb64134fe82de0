"""The targets ``pacsim probe`` can start itself: ``builtin`` and ``orthanc``.

Why: a go-live team tries the probes (and the dashboard) before pointing them at
production, and CI measures them with no PACS around. ``builtin`` starts the
reference Archive (DICOM, and DICOMweb when the archive offers it) and the
simulated RIS (MWL + HL7), so every probe but the report turnaround has a peer.
``orthanc`` starts a throwaway Orthanc (with its DICOMweb plugin when installed);
its canaries are deleted over REST after each cycle. Both know the probe's own
storage SCP as a C-MOVE destination.

:class:`ProbeSession` owns everything a probe run opens - the embedded peers, the
C-MOVE receiver, the report listener - in one ExitStack, so a failure while
starting closes what was already open.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.dicom.address import AeAddress, parse_ae_address
from simulators.events import EventBus
from simulators.kpi.probes_hl7 import ReportListener
from simulators.kpi.probes_retrieve import ImageReceiver
from simulators.kpi.target import PROBE_AE, ProbeTarget
from simulators.peers.orthanc import DICOMWEB_PLUGIN_DIRS, OrthancProcess, OrthancSettings

EMBEDDED = ("builtin", "orthanc")


@dataclass
class SessionOptions:
    """What the CLI (or a test) asks for; None means "not configured"."""

    target: str = "builtin"
    worklist: AeAddress | None = None
    hl7: tuple[str, int] | None = None
    dicomweb: str | None = None
    rest: str | None = None
    timeout: float = 10.0
    listen_host: str = "127.0.0.1"
    move_port: int = 0
    report_port: int | None = None
    calling_ae: str = PROBE_AE
    storage_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def archive_dicomweb_url(archive: Archive) -> str | None:
    """The built-in archive's DICOMweb base URL, when this archive version serves one."""
    url = getattr(archive, "dicomweb_url", None)
    if isinstance(url, str) and url:
        return url
    port = getattr(archive, "dicomweb_port", None)
    if isinstance(port, int) and port > 0:
        return f"http://{archive.config.host}:{port}/dicom-web"
    return None


class ProbeSession(contextlib.ExitStack):
    """Opens the probe's listeners and, for embedded targets, the target itself."""

    def __init__(self, options: SessionOptions, events: EventBus | None = None) -> None:
        super().__init__()
        self.options = options
        self.events = events
        self.receiver: ImageReceiver | None = None
        self.reports: ReportListener | None = None
        self.archive: Archive | None = None
        self.ris: Ris | None = None
        self.orthanc: Any = None
        self.target: ProbeTarget | None = None

    def open(self) -> ProbeTarget:
        """Start everything; returns the target description. Idempotent."""
        if self.target is not None:
            return self.target
        opts = self.options
        try:
            self.receiver = ImageReceiver(opts.listen_host, opts.move_port, opts.calling_ae,
                                          self.events).start()
            self.callback(self.receiver.stop)
            if opts.report_port is not None:
                self.reports = ReportListener(opts.listen_host, opts.report_port,
                                              self.events).start()
                self.callback(self.reports.stop)
            self.target = self._target()
        except BaseException:
            self.close()
            raise
        return self.target

    def _target(self) -> ProbeTarget:
        opts = self.options
        common = dict(timeout=opts.timeout, calling_ae=opts.calling_ae,
                      move_destination=opts.calling_ae)
        if opts.target == "builtin":
            return self._builtin(common)
        if opts.target == "orthanc":
            return self._orthanc(common)
        return ProbeTarget(label=opts.target, store=parse_ae_address(opts.target, "--target"),
                           worklist=opts.worklist, hl7=opts.hl7, dicomweb=opts.dicomweb,
                           rest=opts.rest, **common)

    def _builtin(self, common: dict[str, Any]) -> ProbeTarget:
        opts = self.options
        assert self.receiver is not None
        config = ArchiveConfig(name="probe-target", storage_dir=opts.storage_dir,
                               destinations={opts.calling_ae: self.receiver.address})
        if "dicomweb_port" in {f.name for f in dataclasses.fields(ArchiveConfig)}:
            config = dataclasses.replace(config, dicomweb_port=0)  # type: ignore[call-arg]
        self.archive = self.enter_context(Archive(config, events=self.events))
        self.ris = self.enter_context(Ris(RisConfig(name="probe-ris"), events=self.events))
        store = AeAddress(ae_title=config.ae_title, host=config.host, port=self.archive.port)
        ris_host, ris_port = self.ris.dicom_address
        ris_dicom = AeAddress(ae_title=self.ris.config.ae_title, host=ris_host, port=ris_port)
        return ProbeTarget(label="builtin", store=store, worklist=opts.worklist or ris_dicom,
                           hl7=opts.hl7 or self.ris.hl7_address,
                           dicomweb=opts.dicomweb or archive_dicomweb_url(self.archive),
                           **common)

    def _orthanc(self, common: dict[str, Any]) -> ProbeTarget:
        opts = self.options
        assert self.receiver is not None
        has_dicomweb = any(Path(d, "libOrthancDicomWeb.so").exists()
                           for d in DICOMWEB_PLUGIN_DIRS)
        settings = OrthancSettings(modalities={opts.calling_ae: self.receiver.address},
                                   dicomweb=has_dicomweb)
        self.orthanc = self.enter_context(OrthancProcess(settings))
        store = AeAddress(ae_title=self.orthanc.ae_title, host="127.0.0.1",
                          port=self.orthanc.dicom_port)
        return ProbeTarget(label="orthanc", store=store, worklist=opts.worklist, hl7=opts.hl7,
                           dicomweb=opts.dicomweb or (self.orthanc.dicomweb_url
                                                      if has_dicomweb else None),
                           rest=self.orthanc.rest_url, **common)

    @property
    def report_address(self) -> tuple[str, int] | None:
        return self.reports.address if self.reports is not None else None


__all__ = ["ProbeSession", "SessionOptions", "EMBEDDED", "archive_dicomweb_url"]
