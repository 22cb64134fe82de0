"""``pacsim certs``: a private CA and the certificates a TLS test site needs.

Why a command: DICOM TLS and MLLP over TLS cannot be tried without a CA, a server and a
client certificate, and the fault catalogue's TLS cases need an expired certificate and
one from a CA nobody trusts. :mod:`simulators.tls.certs` writes them with ``openssl``;
this module parses arguments and lists the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simulators.tls.certs import DEFAULT_DAYS, DEFAULT_HOSTS, make_test_pki


def _certs(args: argparse.Namespace) -> int:
    pki = make_test_pki(args.out, hosts=tuple(args.hosts or ()), days=args.days)
    print(f"test PKI in {pki.out} (valid {args.days} days):", flush=True)
    for path in pki.files():
        print(f"  {path.name}", flush=True)
    return 0


def register(subparsers: Any) -> None:
    """Add ``certs``."""
    certs = subparsers.add_parser(
        "certs", help="make a private CA and TLS certificates for a test site",
        description="Write ca.pem/ca.key, server.pem/.key, client.pem/.key (mutual TLS), "
                    "expired.pem/.key and unknown.pem/.key with unknown-ca.pem (fault "
                    "cases) into DIR, using the openssl command line tool. Rerunning "
                    "replaces them.")
    certs.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="directory to write to (created)")
    certs.add_argument("--hosts", nargs="+", metavar="HOST",
                       help="host names or addresses the server certificate is for, besides "
                            + ", ".join(DEFAULT_HOSTS))
    certs.add_argument("--days", type=int, default=DEFAULT_DAYS, metavar="N",
                       help=f"validity of the certificates (default {DEFAULT_DAYS})")
    certs.set_defaults(func=_certs)


__all__ = ["register"]
