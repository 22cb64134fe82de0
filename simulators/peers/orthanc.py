"""A real Orthanc as a target PACS: a fresh process with a generated configuration.

Used by the ``orthanc`` scenario target, the interoperability tests and the
ingest benchmark. Orthanc's DICOM stack is DCMTK, so it gets ``TCP_NODELAY=1``
too. HTTP is on a free port with ``RemoteAccessAllowed: false`` (loopback only;
Orthanc 1.10 has no bind-address option) and no authentication, which is fine for
a throwaway instance that only ever holds synthetic data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from simulators.errors import ConfigError
from simulators.http.client import JsonClient, answers
from simulators.peers.dcmtk import dcmtk_env
from simulators.peers.process import free_port, terminate, wait_until
from simulators.tls import TlsSettings

DICOMWEB_PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")


@dataclass
class OrthancSettings:
    """What the generated ``orthanc.json`` says; ports 0 pick free ones."""

    ae_title: str = "ORTHANC"
    dicom_port: int = 0
    http_port: int = 0
    #: AE title -> (host, port) of the peers Orthanc may answer or send to (C-FIND, C-MOVE).
    modalities: dict[str, tuple[str, int]] = field(default_factory=dict)
    dicomweb: bool = False
    workdir: Path | None = None  # None: a temp dir removed on stop
    sync_storage: bool = True  # fsync every file, as a production archive should
    #: DICOM TLS on ``dicom_port`` (Orthanc's DicomTlsEnabled): cert, key and ca become
    #: DicomTlsCertificate/PrivateKey/TrustedCertificates, require_client_cert
    #: DicomTlsRemoteCertificateRequired. Orthanc picks its own cipher suites (DCMTK's);
    #: ``profile`` is not passed on.
    tls: TlsSettings | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class OrthancProcess:
    """Start Orthanc, wait until it answers C-ECHO and HTTP, stop it on exit."""

    def __init__(self, settings: OrthancSettings | None = None, *, binary: str = "Orthanc") -> None:
        self.settings = settings or OrthancSettings()
        self.binary = binary
        self.dicom_port = self.settings.dicom_port or free_port()
        self.http_port = self.settings.http_port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._own_workdir = False

    @property
    def ae_title(self) -> str:
        return self.settings.ae_title

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.rest_url}/dicom-web"

    @property
    def log_path(self) -> Path:
        assert self._workdir is not None
        return self._workdir / "orthanc.log"

    def configuration(self, workdir: Path) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "Name": "pacsim-target", "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "index"), "DicomAet": s.ae_title,
            "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True, "StorageCompression": False,
            "SyncStorageArea": s.sync_storage, "OverwriteInstances": False,
            "DicomModalities": {ae: [ae, host, port] for ae, (host, port) in s.modalities.items()},
            "Plugins": [],
        }
        if s.tls is not None:
            if not (s.tls.cert and s.tls.key and s.tls.ca):
                raise ConfigError("Orthanc's DICOM TLS needs tls.cert, tls.key and tls.ca "
                                  "(DicomTlsTrustedCertificates)", field="tls")
            config.update({"DicomTlsEnabled": True, "DicomTlsCertificate": s.tls.cert,
                           "DicomTlsPrivateKey": s.tls.key,
                           "DicomTlsTrustedCertificates": s.tls.ca,
                           "DicomTlsRemoteCertificateRequired": s.tls.require_client_cert})
        if s.dicomweb:
            plugin_dir = next((d for d in DICOMWEB_PLUGIN_DIRS
                               if Path(d, "libOrthancDicomWeb.so").exists()), None)
            if plugin_dir is None:
                raise ConfigError("Orthanc's DICOMweb plugin is not installed "
                                  "(apt-get install orthanc-dicomweb)")
            config["Plugins"] = [str(Path(plugin_dir, "libOrthancDicomWeb.so"))]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        config.update(s.extra)
        return config

    def start(self) -> Self:
        if shutil.which(self.binary) is None:
            raise ConfigError(f"{self.binary} is not installed (apt-get install orthanc)")
        if self.settings.workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pacsim-orthanc-"))
            self._own_workdir = True
        else:
            self._workdir = self.settings.workdir
            self._workdir.mkdir(parents=True, exist_ok=True)
        config_path = self._workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.configuration(self._workdir), indent=2))
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen([self.binary, str(config_path)], stdout=log,
                                             stderr=subprocess.STDOUT, env=dcmtk_env())
        try:
            wait_until(self._answers_http, process=self._process, what="Orthanc")
        except RuntimeError as exc:
            tail = self.log_path.read_text(errors="replace")[-1500:]
            self.stop()
            raise ConfigError(f"{exc}; Orthanc log ends with:\n{tail}") from exc
        return self

    def _answers_http(self) -> bool:
        return answers(f"{self.rest_url}/system", timeout=1)

    def rest(self, path: str) -> Any:
        """GET a JSON resource from Orthanc's REST API (e.g. ``/studies``)."""
        return JsonClient(self.rest_url, timeout=10, name="Orthanc").get(path)

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process, grace=15)
            self._process = None
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["OrthancSettings", "OrthancProcess"]
