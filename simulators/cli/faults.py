"""``pacsim faults list`` and ``pacsim faults run``: the catalogue and the conformance matrix.

``register(subparsers)`` is called from simulators.cli. Exit codes follow the CLI contract:
0 when no verdict is non-conformant (implementation-defined and not-supported rows
never fail a run), 1 when one is (or a probe could not run), 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from simulators.cli.options import (
    add_json, add_report_dir, add_target, emit_json, json_to_stdout,
)
from simulators.common.header import RunHeader
from simulators.dicom.address import parse_ae_address
from simulators.errors import ConfigError
from simulators.faults import matrix
from simulators.faults.runner import TargetTls, failed, run_against
from simulators.faults.target import parse_hl7_address
from simulators.injection.catalogue import select
from simulators.tls import PROFILES, TlsSettings

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
#: What ``faults run --report-dir DIR`` writes there.
MATRIX_FILES = ("matrix.json", "junit.xml", "matrix.html")


def _list(args: argparse.Namespace) -> int:

    faults = select(args.only)
    if args.json:
        emit_json(args.json, json.dumps([f.as_dict() for f in faults], indent=2))
        if json_to_stdout(args):
            return EXIT_OK
    width = max(len(f.id) for f in faults)
    for f in faults:
        print(f"{f.id.ljust(width)}  {f.hook:<22}  {f.expected.describe()}")
        print(f"{'':{width}}  {f.description}  [{f.section}]")
    print(f"\n{len(faults)} faults")
    return EXIT_OK


def _target_tls(args: argparse.Namespace) -> TargetTls:
    """The TLS options as one value; ConfigError (exit 2) for a half-given pair."""
    client = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        if args.target in ("builtin", "orthanc"):
            raise ConfigError("--tls-cert/--tls-key/--tls-ca are for an AE@HOST:PORT target; "
                              f"--target {args.target} takes --tls-dir", field="tls-cert")
        pki = args.tls_dir
        client = TlsSettings(
            cert=args.tls_cert or (str(pki / "client.pem") if pki and args.tls_key is None else None),
            key=args.tls_key or (str(pki / "client.key") if pki and args.tls_cert is None else None),
            ca=args.tls_ca or (str(pki / "ca.pem") if pki else None),
            **({"profile": args.tls_profile} if args.tls_profile else {}))
    if args.tls_mutual and args.target in ("builtin", "orthanc"):
        raise ConfigError("--tls-mutual describes an external target; builtin and orthanc "
                          "with --tls-dir always require client certificates",
                          field="tls-mutual")
    return TargetTls(pki=args.tls_dir, client=client, profile=args.tls_profile,
                     mutual=args.tls_mutual)


def _header(target: str) -> RunHeader:
    """The matrix's sign-off header: builtin/orthanc are started on a free port by the
    run itself, so their address is named as such (the matrix rows show the answers)."""
    if target in ("builtin", "orthanc"):
        return RunHeader.now(target_kind=target,
                             target_address=f"{target} started by pacsim for this run "
                                            "(127.0.0.1, ephemeral port)")
    return RunHeader.now(target_kind="external", target_address=target)


def _run(args: argparse.Namespace) -> int:

    if args.target not in ("builtin", "orthanc"):
        parse_ae_address(args.target, "--target")  # ConfigError (exit 2) before anything starts
    hl7 = parse_hl7_address(args.hl7) if args.hl7 else None
    if not getattr(args, "verbose", 0):
        # Probes provoke rejections on purpose; pynetdicom logs each as an ERROR line
        # that would bury the matrix. The matrix itself reports every answer.
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    header = _header(args.target)
    outcomes = run_against(args.target, args.only, hl7=hl7, tls=_target_tls(args))
    header.finish()
    # with `--json -` stdout carries the JSON alone; the text matrix moves to stderr
    (sys.stderr if json_to_stdout(args) else sys.stdout).write(
        matrix.render_text(outcomes, args.target))
    as_json = lambda o, t: matrix.render_json(o, t, header=header)  # noqa: E731
    as_html = lambda o, t: matrix.render_html(o, t, header=header)  # noqa: E731
    report_dir = Path(args.report_dir) if args.report_dir else None
    outputs: list[tuple[Path | None, Any]] = [
        (report_dir / MATRIX_FILES[0] if report_dir else None, as_json),
        (report_dir / MATRIX_FILES[1] if report_dir else None, matrix.render_junit),
        (report_dir / MATRIX_FILES[2] if report_dir else None, as_html),
        (args.junit, matrix.render_junit), (args.html, as_html)]
    for path, render in outputs:
        if path is not None:
            matrix.write(path, render(outcomes, args.target))
    if args.json:
        emit_json(args.json, as_json(outcomes, args.target))
    if report_dir:
        print(f"reports written to {report_dir}/ ({', '.join(MATRIX_FILES)})",
              file=sys.stderr if json_to_stdout(args) else sys.stdout)
    return EXIT_FAILED if failed(outcomes) else EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``faults list`` and ``faults run`` to the CLI's subcommands."""
    faults = subparsers.add_parser(
        "faults", help="the fault catalogue and conformance runs",
        description="Known bad messages, where they are injected, and what the standard "
                    "requires a conformant peer to answer.")
    sub = faults.add_subparsers(dest="faults_command", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="print the fault catalogue")
    add_json(listing, what="the catalogue", was_switch=True)
    listing.add_argument("--only", metavar="PATTERN", help="ids matching a glob or prefix")
    listing.set_defaults(func=_list)

    run = sub.add_parser("run", help="send the catalogue at a target; print the matrix",
                         description="Exit 0 when no verdict is non-conformant, 1 otherwise.")
    add_target(run, required=True,
               help="builtin/orthanc start a local target (built-in RIS+archive, or Orthanc); "
                    "AE@HOST:PORT is the system under test")
    run.add_argument("--only", metavar="PATTERN",
                     help="fault ids matching a glob or prefix (comma-separated), e.g. 'mpps.*'")
    run.add_argument("--hl7", metavar="HOST:PORT", help="the target's MLLP listener, if any")
    run.add_argument("--tls-dir", type=Path, metavar="DIR",
                     help="reach the target over DICOM TLS with a `pacsim certs` directory "
                          "(client.pem/.key, ca.pem; builtin: serve mutual TLS with "
                          "server.pem/.key) and run the tls.* faults with its expired and "
                          "unknown-CA certificates")
    run.add_argument("--tls-cert", metavar="PEM", help="our client certificate (AE@HOST:PORT)")
    run.add_argument("--tls-key", metavar="PEM", help="its private key")
    run.add_argument("--tls-ca", metavar="PEM", help="CA bundle the target's certificate "
                                                     "must chain to")
    run.add_argument("--tls-profile", metavar="PROFILE",
                     help="PS3.15 profile: " + ", ".join(PROFILES) + " (default non-downgrading)")
    run.add_argument("--tls-mutual", action="store_true",
                     help="the target requires client certificates (enables the "
                          "tls.expired-cert, tls.unknown-ca and tls.no-client-cert faults)")
    add_report_dir(run, writes=", ".join(MATRIX_FILES) + " (the matrix as JSON, JUnit XML "
                                                       "and one self-contained HTML page)")
    add_json(run, what="the matrix")
    run.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")
    run.add_argument("--html", type=Path, metavar="FILE",
                     help="also write the matrix as one self-contained HTML page to FILE")
    run.set_defaults(func=_run)


__all__ = ["register"]
