"""DICOM TLS interop with DCMTK (dcmtk lane): echoscu, storescu and findscu ``+tls`` against
our archive configured from a YAML file, and our fast client against ``storescp +tls``.

DCMTK 3.6.7's default profile is the Non-Downgrading BCP 195 profile (``+py``), ours too;
``+px`` (BCP 195) is tried as well. Verdicts rest on what crossed the wire: DCMTK's exit
code and output, what our archive stored, the files storescp wrote.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import CTImageStorage, Verification

from simulators.actors.registry import build_actor
from simulators.dicom.fast import FastClient
from simulators.errors import DicomTlsError
from simulators.peers.dcmtk import dcmtk_server, run_dcmtk
from simulators.tls import TlsSettings
from simulators.tls.certs import SitePki, make_test_pki
from tests.helpers import free_port, require_tool
from tests.unit.test_store import make_image

pytestmark = pytest.mark.dcmtk
UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SitePki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def _archive(pki: SitePki, tmp_path: Path, *, mutual: bool) -> Iterator[int]:
    config = tmp_path / "archive.yaml"
    config.write_text(
        "ae_title: TLS_ARC\n"
        "tls:\n"
        f"  cert: {pki.file('server.pem')}\n"
        f"  key: {pki.file('server.key')}\n"
        f"  ca: {pki.file('ca.pem')}\n"
        "  profile: non-downgrading\n"
        f"  require_client_cert: {'true' if mutual else 'false'}\n", encoding="utf-8")
    archive = build_actor("archive", config_file=config)
    with archive:
        yield archive.port  # type: ignore[attr-defined]


@pytest.fixture
def archive(pki: SitePki, tmp_path: Path) -> Iterator[int]:
    yield from _archive(pki, tmp_path, mutual=True)


def _tls_args(pki: SitePki, who: str = "client") -> list[str]:
    return ["+tls", str(pki.file(f"{who}.key")), str(pki.file(f"{who}.pem")),
            "+cf", str(pki.file("ca.pem"))]


def test_echoscu_over_tls_in_two_profiles(pki: SitePki, archive: int) -> None:
    require_tool("echoscu")
    for profile in ("+py", "+px"):
        done = run_dcmtk("echoscu", "-aec", "TLS_ARC", *_tls_args(pki), profile,
                         "127.0.0.1", str(archive), timeout=60)
        assert done.returncode == 0, done.stderr


def test_storescu_then_findscu_over_tls(pki: SitePki, archive: int, tmp_path: Path) -> None:
    require_tool("storescu", "findscu")
    image = make_image(patient_id="TLS001")
    path = tmp_path / "image.dcm"
    image.save_as(path, enforce_file_format=True)
    done = run_dcmtk("storescu", "-aec", "TLS_ARC", *_tls_args(pki), "127.0.0.1",
                     str(archive), str(path), timeout=60)
    assert done.returncode == 0, done.stderr
    found = run_dcmtk("findscu", "-v", "-S", "-aec", "TLS_ARC", *_tls_args(pki),
                      "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=TLS001",
                      "-k", "StudyInstanceUID", "127.0.0.1", str(archive), timeout=60)
    assert found.returncode == 0, found.stderr
    assert image.StudyInstanceUID in found.stdout + found.stderr


def test_echoscu_without_client_certificate_is_refused(pki: SitePki, archive: int) -> None:
    require_tool("echoscu")
    anonymous = run_dcmtk("echoscu", "-aec", "TLS_ARC", "+tla", "+cf", str(pki.file("ca.pem")),
                          "127.0.0.1", str(archive), timeout=60)
    assert anonymous.returncode != 0
    plain = run_dcmtk("echoscu", "-aec", "TLS_ARC", "127.0.0.1", str(archive), timeout=60)
    assert plain.returncode != 0


def test_echoscu_rejects_our_server_with_an_unknown_ca(pki: SitePki, tmp_path: Path) -> None:
    require_tool("echoscu")
    # the client trusts only unknown-ca.pem: our server's certificate must not pass
    for port in _archive(pki, tmp_path, mutual=False):
        done = run_dcmtk("echoscu", "-aec", "TLS_ARC", "+tls", str(pki.file("client.key")),
                         str(pki.file("client.pem")), "+cf", str(pki.file("unknown-ca.pem")),
                         "127.0.0.1", str(port), timeout=60)
        assert done.returncode != 0
        trusted = run_dcmtk("echoscu", "-aec", "TLS_ARC", *_tls_args(pki), "127.0.0.1",
                            str(port), timeout=60)
        assert trusted.returncode == 0, trusted.stderr


def test_fast_client_stores_into_storescp_over_tls(pki: SitePki, tmp_path: Path) -> None:
    require_tool("storescp")
    port, received = free_port(), tmp_path / "received"
    received.mkdir()
    argv = ["storescp", "-aet", "DCMTK_TLS", "-od", str(received), "+tls",
            str(pki.file("server.key")), str(pki.file("server.pem")),
            "+cf", str(pki.file("ca.pem"))]
    mine = TlsSettings(cert=str(pki.file("client.pem")), key=str(pki.file("client.key")),
                       ca=str(pki.file("ca.pem")))
    image = make_image(patient_id="TLS002")
    with dcmtk_server(argv, port):
        with FastClient() as client:
            client.connect("127.0.0.1", port, "PACSIM", "DCMTK_TLS",
                           [(Verification, UNCOMPRESSED), (CTImageStorage, UNCOMPRESSED)],
                           timeout=20, tls=mine)
            assert client.echo() == 0
            assert client.store(image) == 0
        with pytest.raises(DicomTlsError):  # storescp requires a client certificate (-rc)
            with FastClient() as client:
                client.connect("127.0.0.1", port, "PACSIM", "DCMTK_TLS",
                               [(Verification, UNCOMPRESSED)], timeout=20,
                               tls=TlsSettings(ca=str(pki.file("ca.pem"))))
        with pytest.raises(DicomTlsError):  # and it refuses a peer it cannot verify
            with FastClient() as client:
                client.connect("127.0.0.1", port, "PACSIM", "DCMTK_TLS",
                               [(Verification, UNCOMPRESSED)], timeout=20,
                               tls=TlsSettings(ca=str(pki.file("unknown-ca.pem"))))
    files = list(received.iterdir())
    assert len(files) == 1 and dcmread(files[0]).SOPInstanceUID == image.SOPInstanceUID
