"""A private certificate authority and the certificates a TLS test site needs.

Why here and on the openssl command line: a test site needs a CA it controls, a server
and a client certificate signed by it (mutual TLS), and, for the fault catalogue, an
expired certificate and one from a CA nobody trusts. The ``cryptography`` package is
not a pacsim dependency, while ``openssl`` is on every machine DCMTK and Orthanc run
on; calling it keeps the files exactly what ``openssl`` (and so DCMTK and Orthanc)
reads. RSA 2048 keys, because the Non-Downgrading BCP 195 profile's suites are RSA ones.

Files written to ``out`` (PEM; keys readable by the owner only)::

    ca.pem, ca.key                 the site's private CA
    server.pem, server.key         serverAuth+clientAuth, SAN = localhost, 127.0.0.1, ::1, hosts
    client.pem, client.key         clientAuth, for mutual TLS
    expired.pem, expired.key       signed by the CA, validity ended in 2021
    unknown-ca.pem                 a second CA nobody is told to trust
    unknown.pem, unknown.key       signed by unknown-ca, otherwise like server.pem
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from simulators.errors import ConfigError

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_DAYS = 825
#: The expired certificate's validity: long past, so no clock skew makes it valid.
EXPIRED_FROM, EXPIRED_UNTIL = "20200101000000Z", "20210101000000Z"


_FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key",
          "expired.pem", "expired.key", "unknown-ca.pem", "unknown.pem", "unknown.key")


@dataclass(frozen=True)
class SitePki:
    """Where :func:`make_test_pki` wrote each file (``ca.pem`` is ``pki.file("ca.pem")``)."""

    out: Path

    def file(self, name: str) -> Path:
        if name not in _FILES:
            raise ConfigError(f"no such test PKI file {name!r}; known: {', '.join(_FILES)}")
        return self.out / name

    def files(self) -> list[Path]:
        return [self.out / name for name in _FILES]


def _openssl() -> str:
    found = shutil.which("openssl")
    if not found:
        raise ConfigError("pacsim certs needs the openssl command line tool on PATH",
                          field="openssl")
    return found


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run([_openssl(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise ConfigError(f"openssl {args[0]} failed: {done.stderr.strip()[-400:]}",
                          field="openssl")


def _san(hosts: Sequence[str]) -> str:
    entries = []
    for host in dict.fromkeys(hosts):
        try:
            entries.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            if not host or any(c.isspace() or c in ",=" for c in host):
                raise ConfigError(f"--hosts: not a host name or address: {host!r}",
                                  field="hosts") from None
            entries.append(f"DNS:{host}")
    return ",".join(entries)


def _extensions(usage: str, san: str | None) -> str:
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={usage}",
             "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid,issuer"]
    if san:
        lines.append(f"subjectAltName={san}")
    return "\n".join(lines) + "\n"


def _ca(name: str, stem: str, days: int, work: Path) -> None:
    _run("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-days", str(days), "-subj", f"/O=pacsim test site/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", f"{stem}.key", "-out", f"{stem}.pem", cwd=work)


def _leaf(stem: str, common_name: str, ca: str, usage: str, san: str | None, days: int,
          work: Path) -> None:
    _run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-subj", f"/O=pacsim test site/CN={common_name}",
         "-keyout", f"{stem}.key", "-out", f"{stem}.csr", cwd=work)
    (work / f"{stem}.ext").write_text(_extensions(usage, san), encoding="ascii")
    _run("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-sha256", "-days", str(days), "-extfile", f"{stem}.ext",
         "-out", f"{stem}.pem", cwd=work)


def _expired(san: str, work: Path) -> None:
    """``openssl x509`` cannot back-date; ``openssl ca`` takes explicit start/end dates."""
    _run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-subj", "/O=pacsim test site/CN=pacsim expired", "-keyout", "expired.key",
         "-out", "expired.csr", cwd=work)
    (work / "index.txt").write_text("", encoding="ascii")
    (work / "serial").write_text("1000\n", encoding="ascii")
    (work / "ca.cnf").write_text(
        "[ca]\ndefault_ca=site\n[site]\ndir=.\ndatabase=index.txt\nserial=serial\n"
        "new_certs_dir=.\ncertificate=ca.pem\nprivate_key=ca.key\ndefault_md=sha256\n"
        "policy=anything\nunique_subject=no\ncopy_extensions=none\n"
        "[anything]\norganizationName=optional\ncommonName=supplied\n"
        "[leaf]\n" + _extensions("serverAuth,clientAuth", san), encoding="ascii")
    _run("ca", "-batch", "-config", "ca.cnf", "-extensions", "leaf", "-notext",
         "-startdate", EXPIRED_FROM, "-enddate", EXPIRED_UNTIL,
         "-in", "expired.csr", "-out", "expired.pem", cwd=work)


def make_test_pki(out: Path, hosts: Sequence[str] = (), days: int = DEFAULT_DAYS) -> SitePki:
    """Write a private CA and the test site's certificates to ``out`` (see module doc).

    Existing files of the same names are replaced, so rerunning renews everything.
    """
    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}", field="days")
    san = _san([*DEFAULT_HOSTS, *hosts])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pacsim-certs-") as scratch:
        work = Path(scratch)
        _ca("pacsim test CA", "ca", days + 1, work)
        _leaf("server", "pacsim server", "ca", "serverAuth,clientAuth", san, days, work)
        _leaf("client", "pacsim client", "ca", "clientAuth", None, days, work)
        _expired(san, work)
        _ca("pacsim unknown CA", "unknown-ca", days + 1, work)
        _leaf("unknown", "pacsim unknown", "unknown-ca", "serverAuth,clientAuth", san, days,
              work)
        pki = SitePki(out)
        for target in pki.files():
            shutil.copyfile(work / target.name, target)
            if target.suffix == ".key":
                os.chmod(target, 0o600)
    (out / "unknown-ca.key").unlink(missing_ok=True)  # nobody signs with it again
    return pki


__all__ = ["make_test_pki", "SitePki", "DEFAULT_HOSTS", "DEFAULT_DAYS"]
