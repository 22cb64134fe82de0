"""The TLS faults (PS3.15 Annex B) against real TLS listeners: the built-in target with
mutual TLS must be judged conformant on each, and listeners that get TLS wrong (no
client certificate required, no TLS at all) must be judged non-conformant, so the
verdicts rest on the handshake and PDUs that actually crossed the wire.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import Verification

from simulators.cli import main
from simulators.dicom.address import AeAddress
from simulators.dicom.fast.acceptance import SupportedContext
from simulators.dicom.fast.server import FastServer, ServerSettings
from simulators.faults.probing import ProbeRun, run
from simulators.faults.runner import TargetTls, open_target
from simulators.faults.target import Target
from simulators.injection.catalogue import select
from simulators.injection.model import CONFORMANT, NON_CONFORMANT
from simulators.tls import TlsSettings
from simulators.tls.certs import SitePki, make_test_pki

TLS_FAULTS = select("tls.")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SitePki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(pki: SitePki) -> Iterator[tuple[Target, ProbeRun]]:
    with open_target("builtin", tls=TargetTls(pki=pki.out)) as target:
        yield target, ProbeRun(target)


def test_the_catalogue_has_the_five_tls_cases() -> None:
    assert {f.id for f in TLS_FAULTS} == {"tls.old-version", "tls.expired-cert", "tls.unknown-ca",
                                          "tls.no-client-cert", "tls.plain-on-tls-port"}


@pytest.mark.parametrize("entry", TLS_FAULTS, ids=lambda f: f.id)
def test_builtin_mutual_tls_target_refuses_each_bad_handshake(secured, entry) -> None:  # type: ignore[no-untyped-def]
    target, session = secured
    outcome = run(target, entry, session)
    assert outcome.verdict == CONFORMANT, (outcome.answered, outcome.detail)
    assert "A-ASSOCIATE-AC" not in outcome.answered
    assert "refused" in outcome.answered or "closed" in outcome.answered


def test_other_faults_still_run_over_tls(secured) -> None:  # type: ignore[no-untyped-def]
    target, session = secured
    for entry in select("assoc.unknown-called-ae,mpps.create-duplicate,store.missing-type1"):
        outcome = run(target, entry, session)
        assert outcome.verdict == CONFORMANT, (entry.id, outcome.answered, outcome.detail)


def _server(tls: TlsSettings | None) -> FastServer:
    syntaxes = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    return FastServer(ServerSettings(ae_title="WEAK", contexts=(
        SupportedContext(Verification, syntaxes),), tls=tls))


def test_a_target_that_does_not_require_client_certificates_is_non_conformant(pki: SitePki) -> None:
    lax = TlsSettings(cert=str(pki.file("server.pem")), key=str(pki.file("server.key")))
    client = TlsSettings(cert=str(pki.file("client.pem")), key=str(pki.file("client.key")),
                         ca=str(pki.file("ca.pem")))
    with _server(lax) as server:
        endpoint = AeAddress(ae_title="WEAK", host="127.0.0.1", port=server.port, tls=client)
        target = Target("weak", dicom=endpoint, store=endpoint, pki=pki.out, tls_mutual=True)
        outcome = run(target, select("tls.no-client-cert")[0], ProbeRun(target))
    assert outcome.verdict == NON_CONFORMANT and outcome.answered == "A-ASSOCIATE-AC"


def test_a_plain_listener_posing_as_tls_is_non_conformant(pki: SitePki) -> None:
    client = TlsSettings(ca=str(pki.file("ca.pem")))
    with _server(None) as server:
        endpoint = AeAddress(ae_title="WEAK", host="127.0.0.1", port=server.port, tls=client)
        target = Target("plain", dicom=endpoint, store=endpoint)
        outcome = run(target, select("tls.plain-on-tls-port")[0], ProbeRun(target))
    assert outcome.verdict == NON_CONFORMANT
    assert outcome.answered == "A-ASSOCIATE-AC in the clear"


def test_faults_run_cli_against_a_tls_target(pki: SitePki, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "matrix.json"
    code = main(["faults", "run", "--target", "builtin", "--tls-dir", str(pki.out),
                 "--only", "tls.", "--json", str(report)])
    rows = json.loads(report.read_text())
    rows = rows["results"]
    assert code == 0, capsys.readouterr().out
    assert sorted(row["id"] for row in rows) == sorted(f.id for f in TLS_FAULTS)
    assert {row["verdict"] for row in rows} == {CONFORMANT}
    assert main(["faults", "run", "--target", "builtin", "--tls-dir",
                 str(tmp_path / "absent"), "--only", "tls."]) == 2
