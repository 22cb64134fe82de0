"""DICOM over TLS (PS3.15 B.9-B.13): FastServer and FastClient on loopback, with real
handshakes and certificates from ``pacsim certs``'s private CA.

Every assertion reads what happened on the wire: the association's answer, the error
type and OpenSSL reason our client got, or the ``dicom.tls-refused`` event the server
emitted and the counts of its connections.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import ssl
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import CTImageStorage, Verification

from tests.helpers import wait_until
from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.modality import Exam, Modality, ModalityConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.fast import FastClient
from simulators.dicom.qrscu import QrClient
from simulators.dicom.worklist import build_worklist_item
from simulators.dicom.fast.acceptance import SupportedContext
from simulators.dicom.fast.negotiation import associate_rq_bytes, build_contexts
from simulators.dicom.fast.server import DimseRequest, FastServer, ServerSettings
from simulators.errors import (
    AssociationAborted, ConfigError, DicomTimeout, DicomTlsError, DicomUnreachable, TlsError,
)
from simulators.events import EventBus, Exchange
from simulators.runtime.probes import dicom_echo
from simulators.site.models import ExternalEndpoints
from simulators.site.site import TargetEndpoint, check_reachable
from simulators.tls import TlsSettings
from simulators.world.context import StudyContext
from simulators.world.world import World
from simulators.tls.certs import SitePki, make_test_pki
from tests.unit.test_store import make_image

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
CONTEXTS = (SupportedContext(Verification, UNCOMPRESSED),
            SupportedContext(CTImageStorage, UNCOMPRESSED))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SitePki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def server_tls(pki: SitePki, **extra: object) -> TlsSettings:
    return TlsSettings(cert=str(pki.file("server.pem")), key=str(pki.file("server.key")),
                       ca=str(pki.file("ca.pem")), **extra)  # type: ignore[arg-type]


def client_tls(pki: SitePki, who: str | None = "client", **extra: object) -> TlsSettings:
    mine = dict(cert=str(pki.file(f"{who}.pem")), key=str(pki.file(f"{who}.key"))) if who else {}
    return TlsSettings(ca=str(pki.file("ca.pem")), **mine, **extra)  # type: ignore[arg-type]




class Server:
    def __init__(self, tls: TlsSettings, **settings: object) -> None:
        self.events: list[Exchange] = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        self.stored: list[str] = []
        self.server = FastServer(ServerSettings(ae_title="TLS_SCP", contexts=CONTEXTS, tls=tls,
                                                **settings), events=bus)  # type: ignore[arg-type]

        async def on_store(request: DimseRequest) -> int:
            self.stored.append(str(request.get("AffectedSOPInstanceUID")))
            return 0

        self.server.handle("C-STORE", on_store)

    def refusals(self) -> list[Exchange]:
        return [e for e in self.events if e.kind == "dicom.tls-refused"]


@pytest.fixture()
def serve(pki: SitePki) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(tls: TlsSettings | None = None, **settings: object) -> Server:
        server = Server(tls or server_tls(pki), **settings)
        server.server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.stop()


def _echo(port: int, tls: TlsSettings | None) -> int:
    with FastClient() as client:
        client.connect("127.0.0.1", port, "TLS_SCU", "TLS_SCP", [(Verification, UNCOMPRESSED)], timeout=10,
                       tls=tls)
        return client.echo()


@pytest.mark.parametrize("profile", ["bcp195", "non-downgrading", "bcp195-rfc8996",
                                     "bcp195-rfc9325"])
def test_echo_and_store_over_tls_in_every_profile(pki: SitePki, serve, profile: str) -> None:
    server = serve(server_tls(pki, profile=profile))
    with FastClient() as client:
        client.connect("127.0.0.1", server.server.port, "TLS_SCU", "TLS_SCP",
                       [(Verification, UNCOMPRESSED), (CTImageStorage, UNCOMPRESSED)], timeout=10,
                       tls=client_tls(pki, profile=profile))
        assert client.echo() == 0
        image = make_image()
        assert client.store(image) == 0
        cipher = client.association._writer.get_extra_info("cipher")  # type: ignore[union-attr]
    assert server.stored == [image.SOPInstanceUID]
    if profile.startswith("bcp195-rfc"):
        assert cipher[1] in ("TLSv1.3", "TLSv1.2")
    else:
        assert cipher[1] == "TLSv1.2" and "GCM" in cipher[0]


def test_mutual_tls_refuses_a_client_without_a_certificate(pki: SitePki, serve) -> None:
    server = serve(server_tls(pki, require_client_cert=True))
    assert _echo(server.server.port, client_tls(pki)) == 0
    with pytest.raises(DicomTlsError) as caught:
        _echo(server.server.port, client_tls(pki, who=None))
    assert isinstance(caught.value, TlsError) and caught.value.reason
    assert wait_until(lambda: len(server.refusals()) == 1)
    assert server.server.active_associations == 0


def test_client_refuses_an_unknown_ca_and_an_expired_server(pki: SitePki, serve) -> None:
    for who, words in (("unknown", "unable to get local issuer"), ("expired", "expired")):
        server = serve(TlsSettings(cert=str(pki.file(f"{who}.pem")),
                                   key=str(pki.file(f"{who}.key"))))
        with pytest.raises(DicomTlsError) as caught:
            _echo(server.server.port, client_tls(pki))
        assert words in caught.value.reason


def test_server_refuses_expired_and_unknown_client_certificates(pki: SitePki, serve) -> None:
    server = serve(server_tls(pki, require_client_cert=True))
    for who in ("expired", "unknown"):
        with pytest.raises((DicomTlsError, AssociationAborted)):
            _echo(server.server.port, client_tls(pki, who=who))
    assert wait_until(lambda: len(server.refusals()) == 2)
    reasons = " | ".join(str(e.detail["reason"]) for e in server.refusals())
    assert "expired" in reasons and "unable to get local issuer" in reasons


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_offered_is_refused(pki: SitePki, serve) -> None:
    server = serve()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", server.server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="localhost")
    assert wait_until(lambda: len(server.refusals()) == 1)


def test_plain_dicom_on_a_tls_port_gets_no_association(pki: SitePki, serve) -> None:
    server = serve()
    rq = associate_rq_bytes("PLAIN", "TLS_SCP", build_contexts([(Verification, UNCOMPRESSED)]), 16384)
    with socket.create_connection(("127.0.0.1", server.server.port), timeout=5) as raw:
        raw.sendall(rq)
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
    assert not answer.startswith(b"\x02")  # never an A-ASSOCIATE-AC
    assert wait_until(lambda: len(server.refusals()) == 1)


def test_a_stalled_handshake_is_closed_at_artim_and_takes_no_slot(pki: SitePki, serve) -> None:
    server = serve(max_associations=1, artim_timeout=0.5)
    with socket.create_connection(("127.0.0.1", server.server.port), timeout=5) as silent:
        assert wait_until(lambda: server.server.unassociated_connections == 1)
        assert _echo(server.server.port, client_tls(pki)) == 0  # the one slot is still free
        silent.settimeout(5)
        assert silent.recv(1) == b""  # closed by the server, not by our timeout
    assert wait_until(lambda: server.server.unassociated_connections == 0)
    assert any("timed out" in str(e.detail["reason"]) for e in server.refusals())


def test_bad_tls_settings_are_config_errors(pki: SitePki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TlsSettings(profile="tls1.0")
    with pytest.raises(ConfigError):
        TlsSettings(cert=str(pki.file("server.pem")))  # no key
    with pytest.raises(ConfigError):
        TlsSettings(require_client_cert=True)  # no CA to check against
    with pytest.raises(ConfigError):
        FastServer(ServerSettings(ae_title="X", contexts=CONTEXTS,
                                  tls=TlsSettings(cert=str(tmp_path / "none.pem"),
                                                  key=str(tmp_path / "none.key"))))
    with pytest.raises(ConfigError):
        TlsSettings.from_config({"cert": "a", "key": "b", "cafile": "c"})
    assert TlsSettings.from_config({"ca_file": "c", "require_client_cert": "yes"}) == \
        TlsSettings(ca="c", require_client_cert=True)


def test_an_external_target_written_with_tls_is_reached_over_tls(pki: SitePki, serve) -> None:
    server = serve(server_tls(pki, require_client_cert=True))
    spelled = ExternalEndpoints(dicom=f"TLS_SCP@127.0.0.1:{server.server.port}",
                                tls={"ca": str(pki.file("ca.pem")),
                                     "cert": str(pki.file("client.pem")),
                                     "key": str(pki.file("client.key"))})
    check_reachable(TargetEndpoint(kind="external", dicom=spelled.dicom_address), EventBus())
    plain = ExternalEndpoints(dicom=f"TLS_SCP@127.0.0.1:{server.server.port}")
    with pytest.raises(ConfigError):  # the same port without TLS answers nothing DICOM
        check_reachable(TargetEndpoint(kind="external", dicom=plain.dicom_address), EventBus(),
                        timeout=3)
    with pytest.raises(ConfigError):
        ExternalEndpoints(dicom="A@h:104", tls={"certfile": "x"}).dicom_address


def test_query_move_and_get_over_tls_between_two_archives(pki: SitePki, tmp_path: Path) -> None:
    """C-FIND (fast client), C-MOVE and C-GET (pynetdicom with tls_args) to a TLS archive,
    and its C-MOVE sub-association to a TLS destination (``destination_tls``)."""
    mutual = server_tls(pki, require_client_cert=True)
    with Archive(ArchiveConfig(name="dest", ae_title="DEST", tls=mutual)) as dest:
        source_config = ArchiveConfig(name="src", ae_title="SRC", tls=mutual,
                                      destinations={"DEST": ("127.0.0.1", dest.port)},
                                      destination_tls=client_tls(pki))
        with Archive(source_config) as source:
            image = make_image(patient_id="TLSMOVE")
            with FastClient() as client:
                client.connect("127.0.0.1", source.port, "TLS_SCU", "SRC",
                               [(CTImageStorage, UNCOMPRESSED)], timeout=10, tls=client_tls(pki))
                assert client.store(image) == 0
            peer = AeAddress(ae_title="SRC", host="127.0.0.1", port=source.port,
                             tls=client_tls(pki))
            qr = QrClient(peer, "TLS_SCU", timeout=10)
            status, found = qr.find("STUDY", {"PatientID": "TLSMOVE"})
            assert status == 0 and [m.StudyInstanceUID for m in found] == [image.StudyInstanceUID]
            moved = qr.move({"StudyInstanceUID": image.StudyInstanceUID}, "DEST")
            assert (moved.status, moved.completed) == (0, 1)
            got = qr.get({"StudyInstanceUID": image.StudyInstanceUID}, [CTImageStorage])
            assert (got.status, got.completed) == (0, 1)
        dest_peer = AeAddress(ae_title="DEST", host="127.0.0.1", port=dest.port,
                              tls=client_tls(pki))
        _, arrived = QrClient(dest_peer, "TLS_SCU", timeout=10).find(
            "IMAGE", {"StudyInstanceUID": image.StudyInstanceUID})
    assert [m.SOPInstanceUID for m in arrived] == [image.SOPInstanceUID]


def test_commitment_report_on_a_new_association_reaches_a_tls_modality_listener(
        pki: SitePki) -> None:
    """Modality ``tls`` (its listener, mutual) and peers with ``tls``; archive ``tls`` and
    ``destination_tls`` (the report's new association): every leg is TLS."""
    mutual = server_tls(pki, require_client_cert=True)
    world = World(7)
    with Modality(ModalityConfig(name="ct-tls", ae_title="CT_TLS", tls=mutual)) as modality:
        archive_config = ArchiveConfig(name="arc", ae_title="ARC_TLS", tls=mutual,
                                       commitment_reply="new",
                                       destinations={"CT_TLS": ("127.0.0.1", modality.port)},
                                       destination_tls=client_tls(pki))
        with Archive(archive_config) as archive:
            peer = AeAddress(ae_title="ARC_TLS", host="127.0.0.1", port=archive.port,
                             tls=client_tls(pki))
            modality.config = dataclasses.replace(modality.config, store=peer, commitment=peer,
                                                  commitment_timeout=10.0)
            order = world.order(world.patient(1), "CT", station_ae="CT_TLS",
                                station_name="CT1", index=1)
            context = StudyContext.from_worklist(build_worklist_item(order), world,
                                                 station_name="CT1")
            exam = Exam(context, world.uid("mpps", context.study_uid), Dataset(),
                        dt.datetime.now())
            modality.build_images(exam, series=1, per_series=2)
            assert modality.store_datasets(exam.images) == [0x0000, 0x0000]
            result = modality.request_commitment(exam)
    assert result.same_association is False  # the report came on the archive's TLS association
    assert sorted(result.committed) == sorted(str(ds.SOPInstanceUID) for ds in exam.images)


def test_pynetdicom_requestor_over_tls(pki: SitePki, serve) -> None:
    """pynetdicom (health probe, Q/R SCU, fault probes) with ``tls_args`` from TlsSettings;
    a refused handshake is reported as unreachable (the README's limits say why)."""
    server = serve(server_tls(pki, require_client_cert=True))
    assert dicom_echo("127.0.0.1", server.server.port, "TLS_SCP", tls=client_tls(pki)) == 0
    with pytest.raises(DicomUnreachable):
        dicom_echo("127.0.0.1", server.server.port, "TLS_SCP", tls=client_tls(pki, who=None))


def test_a_server_that_never_answers_the_handshake_is_a_dicom_timeout(pki: SitePki) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with FastClient() as client, pytest.raises(DicomTimeout):
            client.connect("127.0.0.1", silent.getsockname()[1], "TLS_SCU", "TLS_SCP",
                           [(Verification, UNCOMPRESSED)], timeout=0.5, tls=client_tls(pki))
