"""``--target builtin|orthanc|AE@HOST:PORT``, ``--hl7``, ``--dicomweb``, ``--supports``:
the target options ``pacsim run`` and ``pacsim sandbox up`` share.

Why shared: a scenario and a sandbox site describe the same ``environment.target``
and ``environment.supports``; the command line overrides them the same way in both,
with the spelling ``pacsim faults run`` and ``pacsim probe`` already use (``AE@HOST:PORT``
parsed by :func:`~simulators.dicom.address.parse_ae_address`, ``--hl7 HOST:PORT``,
``--dicomweb URL``). ``--supports SERVICE=yes|no`` *declares* a service instead of
letting the site probe it (:mod:`simulators.site.capabilities`).
"""

from __future__ import annotations

import argparse
from typing import Any

from simulators.cli.options import add_target
from simulators.dicom.address import parse_ae_address
from simulators.errors import ConfigError
from simulators.faults.target import parse_hl7_address
from simulators.site.capabilities import SERVICES

_YES, _NO = {"yes", "true", "1", "on"}, {"no", "false", "0", "off"}


def add_target_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    """Add the target options to ``parser``; ``what`` says whose target they override."""
    add_target(parser, help=f"override {what} target; AE@HOST:PORT is an external system "
                            "(what it supports is probed at start)")
    parser.add_argument("--hl7", metavar="HOST:PORT",
                        help="the external target's MLLP listener (orders are forwarded to it)")
    parser.add_argument("--dicomweb", metavar="URL",
                        help="the external target's DICOMweb root, e.g. http://pacs:8080/dicom-web")
    parser.add_argument("--supports", action="append", metavar="SERVICE=yes|no",
                        help="declare a target service instead of probing it (repeatable): "
                             + ", ".join(SERVICES))


def target_override(args: argparse.Namespace) -> str | dict[str, Any] | None:
    """The ``environment.target`` the options ask for (None: keep the file's).

    ConfigError naming the option for a malformed address, or for ``--hl7``/``--dicomweb``
    without an external ``--target`` (they describe that system only)."""
    target = getattr(args, "target", None)
    hl7, dicomweb = getattr(args, "hl7", None), getattr(args, "dicomweb", None)
    if target in (None, "builtin", "orthanc"):
        if hl7 or dicomweb:
            raise ConfigError("--hl7 and --dicomweb describe an external target: give "
                              "--target AE@HOST:PORT too", field="--hl7" if hl7 else "--dicomweb")
        return target
    external: dict[str, Any] = {"dicom": str(parse_ae_address(target, "--target"))}
    if hl7:
        host, port = parse_hl7_address(hl7)
        external["hl7"] = f"{host}:{port}"
    if dicomweb:
        if not dicomweb.startswith(("http://", "https://")):
            raise ConfigError(f"--dicomweb: expected an http(s) URL, got {dicomweb!r}",
                              field="--dicomweb")
        external["dicomweb"] = dicomweb
    return {"external": external}


def declared_supports(args: argparse.Namespace) -> dict[str, bool]:
    """``--supports mpps=no`` -> ``{"mpps": False}``; ConfigError for anything else."""
    declared: dict[str, bool] = {}
    for pair in getattr(args, "supports", None) or []:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip().lower()
        if not sep or name not in SERVICES or value not in _YES | _NO:
            raise ConfigError(f"--supports expects SERVICE=yes|no with SERVICE one of "
                              f"{', '.join(SERVICES)}; got {pair!r}", field="--supports")
        declared[name] = value in _YES
    return declared


__all__ = ["add_target_options", "target_override", "declared_supports"]
