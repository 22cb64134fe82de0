"""``pacsim certs``: the files it writes are what openssl, and so DCMTK and Orthanc, accept
(or, for the fault cases, refuse for the intended reason)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from simulators.cli import main


def _verify(out: Path, name: str) -> str:
    done = subprocess.run(["openssl", "verify", "-CAfile", "ca.pem", name], cwd=out,
                          capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def _text(out: Path, name: str) -> str:
    return subprocess.run(["openssl", "x509", "-in", name, "-noout", "-text"], cwd=out,
                          capture_output=True, text=True, timeout=60, check=True).stdout


def test_certs_writes_a_private_ca_and_the_fault_cases(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "site-pki"
    assert main(["certs", "--out", str(out), "--hosts", "pacs.example", "10.1.2.3",
                 "--days", "30"]) == 0
    listed = capsys.readouterr().out
    for name in ("ca.pem", "server.pem", "client.pem", "expired.pem", "unknown.pem"):
        assert name in listed
    assert "server.pem: OK" in _verify(out, "server.pem")
    assert "client.pem: OK" in _verify(out, "client.pem")
    assert "certificate has expired" in _verify(out, "expired.pem")
    assert "unable to get local issuer certificate" in _verify(out, "unknown.pem")
    server = _text(out, "server.pem")
    for san in ("DNS:localhost", "IP Address:127.0.0.1", "DNS:pacs.example", "IP Address:10.1.2.3"):
        assert san in server
    assert "TLS Web Server Authentication" in server
    assert "TLS Web Client Authentication" in _text(out, "client.pem")
    assert stat.S_IMODE((out / "server.key").stat().st_mode) == 0o600
    assert not (out / "unknown-ca.key").exists()


def test_certs_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    assert main(["certs", "--out", str(tmp_path), "--days", "0"]) == 2
    assert main(["certs", "--out", str(tmp_path), "--hosts", "bad host"]) == 2
