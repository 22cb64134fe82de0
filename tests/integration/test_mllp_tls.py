"""MLLP over TLS both ways: our listener and our clients, plus Python's own ssl socket as
an independent TLS client, with certificates from ``pacsim certs``'s private CA.

Assertions read the ACK that came back over the TLS connection, the error type and
OpenSSL reason our client raised, or the ``hl7.tls-refused`` event the server emitted.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.sop_class import ModalityWorklistInformationFind

from simulators.actors.ehr import Ehr, EhrConfig
from simulators.actors.registry import build_actor
from simulators.dicom.fast import FastClient
from simulators.errors import MllpError, MllpTlsError, TlsError
from simulators.events import EventBus, Exchange
from simulators.hl7.ack import ack
from simulators.hl7.er7 import ack_code
from simulators.hl7.framing import FrameDecoder, decode_frame, encode_frame
from simulators.hl7.messages import adt
from simulators.hl7.mllp import AsyncMllpClient, MllpClient, MllpServer
from simulators.runtime.probes import mllp_ping
from simulators.tls import TlsSettings
from simulators.tls.certs import SitePki, make_test_pki
from tests.unit.test_hl7_messages import sample_order, sample_patient


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SitePki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def _server_tls(pki: SitePki, **extra: object) -> TlsSettings:
    return TlsSettings(cert=str(pki.file("server.pem")), key=str(pki.file("server.key")),
                       ca=str(pki.file("ca.pem")), **extra)  # type: ignore[arg-type]


def _client_tls(pki: SitePki, who: str | None = "client") -> TlsSettings:
    mine = dict(cert=str(pki.file(f"{who}.pem")), key=str(pki.file(f"{who}.key"))) if who else {}
    return TlsSettings(ca=str(pki.file("ca.pem")), **mine)  # type: ignore[arg-type]


@pytest.fixture
def listen(pki: SitePki) -> Iterator[Callable[..., tuple[MllpServer, list[str], list[Exchange]]]]:
    servers: list[MllpServer] = []

    def start(tls: TlsSettings | None = None, **kwargs: object):
        received: list[str] = []
        seen: list[Exchange] = []
        bus = EventBus()
        bus.subscribe(seen.append)

        def handler(text: str) -> str:
            received.append(text)
            return ack(text, "AA")

        server = MllpServer(handler, tls=tls or _server_tls(pki), events=bus,
                            **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server, received, seen

    yield start
    for server in servers:
        server.stop()


def _message() -> str:
    return adt("A01", sample_patient())


def _refusals(seen: list[Exchange], count: int) -> list[Exchange]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [e for e in seen if e.kind == "hl7.tls-refused"]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    return [e for e in seen if e.kind == "hl7.tls-refused"]


def test_blocking_and_async_clients_send_over_tls(pki: SitePki, listen) -> None:
    server, received, _ = listen(_server_tls(pki, require_client_cert=True))
    host, port = server.address
    with MllpClient(host, port, tls=_client_tls(pki), timeout=5) as client:
        assert ack_code(client.send(_message())) == "AA"
        assert ack_code(client.send(_message())) == "AA"  # same TLS connection kept
        assert isinstance(client._sock, ssl.SSLSocket)

    async def send_async() -> str:
        async with AsyncMllpClient(host, port, tls=_client_tls(pki), timeout=5) as client:
            return await client.send(_message())

    assert ack_code(asyncio.run(send_async())) == "AA"
    assert len(received) == 3


def test_python_ssl_socket_is_an_independent_tls_client(pki: SitePki, listen) -> None:
    server, received, _ = listen()
    context = ssl.create_default_context(cafile=str(pki.file("ca.pem")))
    with socket.create_connection(server.address, timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(encode_frame(_message(), "utf-8"))
        decoder = FrameDecoder(1 << 20)
        frames: list[bytes] = []
        while not frames:
            frames = decoder.feed(tls.recv(65536)).frames
        assert tls.version() == "TLSv1.2"
    assert ack_code(decode_frame(frames[0], "utf-8")) == "AA" and len(received) == 1


def test_mutual_tls_refuses_a_client_without_certificate(pki: SitePki, listen) -> None:
    server, received, seen = listen(_server_tls(pki, require_client_cert=True))
    with pytest.raises(MllpError) as caught, \
            MllpClient(*server.address, tls=_client_tls(pki, who=None), timeout=5) as client:
        client.send(_message())
    assert isinstance(caught.value, MllpTlsError) and isinstance(caught.value, TlsError)
    assert _refusals(seen, 1) and not received


def test_client_refuses_unknown_ca_and_expired_server(pki: SitePki, listen) -> None:
    for who, words in (("unknown", "unable to get local issuer"), ("expired", "expired")):
        server, received, _ = listen(TlsSettings(cert=str(pki.file(f"{who}.pem")),
                                                 key=str(pki.file(f"{who}.key"))))
        with pytest.raises(MllpTlsError) as caught, \
                MllpClient(*server.address, tls=_client_tls(pki), timeout=5) as client:
            client.send(_message())
        assert words in caught.value.reason and not received


def test_plain_mllp_on_a_tls_port_is_refused(pki: SitePki, listen) -> None:
    server, received, seen = listen()
    with pytest.raises(MllpError), MllpClient(*server.address, timeout=5) as client:
        client.send(_message())
    assert _refusals(seen, 1) and not received


def test_ehr_orders_reach_the_ris_over_tls_and_its_worklist_answers_over_tls(
        pki: SitePki, tmp_path: Path) -> None:
    """The actors' settings end to end: RIS ``tls`` and ``hl7_tls`` from a config file,
    EHR ``ris_tls``; the worklist item built from the TLS-delivered order is read back by a
    worklist C-FIND over DICOM TLS."""
    server = (f"{{cert: {pki.file('server.pem')}, key: {pki.file('server.key')}, "
              f"ca: {pki.file('ca.pem')}, require_client_cert: true}}")
    config = tmp_path / "ris.yaml"
    config.write_text(f"ae_title: TLS_RIS\ntls: {server}\nhl7_tls: {server}\n", encoding="utf-8")
    order = sample_order(accession="TLS-ACC-1")
    with build_actor("ris", config_file=config) as ris:
        host, port = ris.hl7_address  # type: ignore[attr-defined]
        ehr_config = EhrConfig(ris_host=host, ris_port=port, ris_tls=_client_tls(pki))
        with Ehr(ehr_config) as ehr:
            assert ehr.place_order(order).code == "AA"
        with Ehr(EhrConfig(ris_host=host, ris_port=port, timeout=5)) as plain:
            with pytest.raises(MllpError):  # the same port without TLS gets nothing
                plain.place_order(sample_order(accession="PLAIN-1"))
        dicom_host, dicom_port = ris.dicom_address  # type: ignore[attr-defined]
        with FastClient() as client:
            client.connect(dicom_host, dicom_port, "TLS_SCU", "TLS_RIS",
                           [(ModalityWorklistInformationFind, [ImplicitVRLittleEndian])],
                           timeout=10, tls=_client_tls(pki))
            query = Dataset()
            query.AccessionNumber = ""
            status, items = client.find(query, "worklist")
    assert status == 0 and [i.AccessionNumber for i in items] == ["TLS-ACC-1"]


def test_health_probes_speak_tls(pki: SitePki, listen) -> None:
    server, received, _ = listen(_server_tls(pki, require_client_cert=True))
    assert mllp_ping(*server.address, tls=_client_tls(pki)) == "AA"
    with pytest.raises(MllpTlsError):
        mllp_ping(*server.address, tls=_client_tls(pki, who=None))
    assert len(received) == 1
