"""Orthanc with DicomTlsEnabled as a TLS target (orthanc lane): our fast client stores
into it over mutual TLS, a client without a certificate is refused, and the TLS fault
cases are judged on what Orthanc's handshake and PDUs actually did.
"""

from __future__ import annotations


import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import CTImageStorage, Verification

from simulators.dicom.fast import FastClient
from simulators.errors import DicomTlsError
from simulators.faults.runner import TargetTls, open_target, run_faults
from simulators.injection.catalogue import select
from simulators.injection.model import CONFORMANT, NON_CONFORMANT
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.tls import TlsSettings
from simulators.tls.certs import SitePki, make_test_pki
from tests.helpers import require_tool
from tests.unit.test_store import make_image

pytestmark = pytest.mark.orthanc
SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SitePki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def _client(pki: SitePki, who: str | None = "client") -> TlsSettings:
    mine = dict(cert=str(pki.file(f"{who}.pem")), key=str(pki.file(f"{who}.key"))) if who else {}
    return TlsSettings(ca=str(pki.file("ca.pem")), **mine)  # type: ignore[arg-type]


def test_fast_client_stores_into_orthanc_over_mutual_tls(pki: SitePki) -> None:
    require_tool("Orthanc")
    server = TlsSettings(cert=str(pki.file("server.pem")), key=str(pki.file("server.key")),
                         ca=str(pki.file("ca.pem")), require_client_cert=True)
    image = make_image(patient_id="TLSORTH")
    with OrthancProcess(OrthancSettings(tls=server)) as orthanc:
        with FastClient() as client:
            client.connect("127.0.0.1", orthanc.dicom_port, "PACSIM", orthanc.ae_title,
                           [(Verification, SYNTAXES), (CTImageStorage, SYNTAXES)], timeout=20,
                           tls=_client(pki))
            assert client.echo() == 0
            assert client.store(image) == 0
        with pytest.raises(DicomTlsError):
            with FastClient() as client:
                client.connect("127.0.0.1", orthanc.dicom_port, "PACSIM", orthanc.ae_title,
                               [(Verification, SYNTAXES)], timeout=20, tls=_client(pki, None))
        found = orthanc.rest("/instances?expand")
    assert [i["MainDicomTags"]["SOPInstanceUID"] for i in found] == [image.SOPInstanceUID]


def test_tls_faults_against_orthanc(pki: SitePki) -> None:
    require_tool("Orthanc")
    with open_target("orthanc", tls=TargetTls(pki=pki.out)) as target:
        outcomes = {o.fault.id: o for o in run_faults(target, select("tls."))}
    for fault_id in ("tls.expired-cert", "tls.unknown-ca", "tls.no-client-cert",
                     "tls.plain-on-tls-port"):
        assert outcomes[fault_id].verdict == CONFORMANT, outcomes[fault_id]
    old = outcomes["tls.old-version"]
    # Orthanc 1.10.1 (DCMTK's older TLS profile) completes a TLS 1.1 handshake: the
    # probe must say so rather than pass it; a newer Orthanc refuses it.
    assert (old.verdict, "TLSv1" in old.answered) in ((NON_CONFORMANT, True),
                                                       (CONFORMANT, False)), old
