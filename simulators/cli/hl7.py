"""``pacsim hl7 send FILE... --to HOST:PORT``: feed HL7 v2 files to a listener over MLLP.

Why: a RIS started with ``pacsim serve ris`` (or a real one) is fed by an EHR; without
one running, an engineer needs a way to hand it the ADT and order messages of
``examples/hl7/`` (or a site's own captures) and see each ACK. Files are ER7 text,
segments on their own lines (``\\n``, ``\\r\\n`` or ``\\r``); a file may hold several
messages, each starting with ``MSH``. Exit codes: 0 every message acknowledged AA/CA,
1 any other ACK code, 2 a bad file or an unreachable listener.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simulators.cli.options import add_duration
from simulators.errors import ConfigError
from simulators.hl7.er7 import ack_code, message_label
from simulators.hl7.mllp_client import MllpClient
from simulators.kpi.target import parse_hostport

_POSITIVE = {"AA", "CA"}


def read_messages(path: Path) -> list[str]:
    """The messages of one ER7 file, segments joined with ``\\r`` as MLLP carries them."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", field="FILE") from None
    messages: list[list[str]] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            continue
        if line.startswith("MSH"):
            messages.append([])
        elif not messages:
            raise ConfigError(f"{path}: the first segment must be MSH, got {line[:3]!r}",
                              field="FILE")
        messages[-1].append(line)
    if not messages:
        raise ConfigError(f"{path}: no HL7 message (a message starts with MSH)", field="FILE")
    return ["\r".join(segments) for segments in messages]


def _send(args: argparse.Namespace) -> int:
    host, port = parse_hostport(args.to, "--to")
    batches = [(path, read_messages(path)) for path in args.files]  # refuse bad files first
    refused = 0
    with MllpClient(host, port, timeout=args.timeout, name="pacsim-hl7-send") as client:
        for path, messages in batches:
            for message in messages:
                reply = client.send(message)
                code = ack_code(reply) or "no ACK code"
                refused += code not in _POSITIVE
                print(f"{path}: {message_label(message)} -> {code}", flush=True)
    return 1 if refused else 0


def register(subparsers: Any) -> None:
    """Add ``pacsim hl7 send``."""
    hl7 = subparsers.add_parser("hl7", help="send HL7 v2 files over MLLP (feed a RIS)",
                                description="HL7 v2 messages from files, as an EHR sends them.")
    sub = hl7.add_subparsers(dest="hl7_command", required=True, metavar="ACTION")
    send = sub.add_parser(
        "send", help="send HL7 files to an MLLP listener and print each ACK",
        description="Send every message of every FILE in order over one MLLP connection; "
                    "exit 0 when all are acknowledged AA/CA, 1 otherwise, 2 bad input or "
                    "no listener.")
    send.add_argument("files", nargs="+", type=Path, metavar="FILE",
                      help="ER7 text files (one or more messages each, e.g. examples/hl7/*.hl7)")
    send.add_argument("--to", required=True, metavar="HOST:PORT",
                      help="the MLLP listener, e.g. the RIS's hl7_port: 127.0.0.1:2575")
    add_duration(send, "--timeout", default=10.0,
                 help="how long to wait for each ACK (default 10s)")
    send.set_defaults(func=_send)


__all__ = ["register", "read_messages"]
