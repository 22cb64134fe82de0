"""The image's HEALTHCHECK: ``python3 -m simulators.runtime.health [serve KIND ...]``.

With no arguments it reads the command of PID 1 (``pacsim serve ris --config ...``),
so one HEALTHCHECK line in the Dockerfile fits every actor the image can run. It
builds the actor's settings exactly as ``pacsim serve`` does (file < PACSIM_* env <
flags) to learn the ports and AE title, then asks the actor on 127.0.0.1: C-ECHO for
DICOM listeners, an MLLP round trip for HL7 listeners. Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from simulators.actors.registry import actor_kind
from simulators.config import build_config
from simulators.errors import PacsimError, StatusError
from simulators.runtime.probes import dicom_echo, mllp_ping

LOOPBACK = "127.0.0.1"


def serve_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The ``serve`` part of a pacsim command line (whatever precedes it is ignored)."""
    words = list(argv)
    if "serve" not in words:
        raise PacsimError("not a 'pacsim serve KIND' command", command=" ".join(words))
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("kind")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ae-title")
    parser.add_argument("--control-port", type=int)
    args, _ = parser.parse_known_args(words[words.index("serve") + 1:])
    return args


def pid1_command() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


def check(args: argparse.Namespace, timeout: float = 4.0) -> list[str]:
    """Probe the actor ``args`` describes; returns one line per listener checked."""
    spec = actor_kind(args.kind)
    config_cls, _ = spec.load()
    overrides = {spec.port_field: args.port, "ae_title": args.ae_title}
    config = build_config(config_cls, file=args.config,
                          overrides={k: v for k, v in overrides.items() if v is not None})
    done: list[str] = []
    if getattr(args, "control_port", None):
        done.append(control_ping(args.control_port, timeout))
    if args.kind == "ehr":
        done.append(f"MLLP {config.port}: {mllp_ping(LOOPBACK, config.port, timeout=timeout)}")
        return done
    dicom_port = config.dicom_port if args.kind == "ris" else config.port
    status = dicom_echo(LOOPBACK, dicom_port, config.ae_title, timeout=timeout)
    if status != 0:
        raise StatusError("C-ECHO answered with a failure", status=status)
    done.append(f"C-ECHO {config.ae_title}@{dicom_port}: 0x0000")
    if args.kind == "ris" and config.hl7:
        done.append(f"MLLP {config.hl7_port}: {mllp_ping(LOOPBACK, config.hl7_port, timeout=timeout)}")
    return done


def control_ping(port: int, timeout: float) -> str:
    """The control API answers its health resource (healthy means steps can drive it).
    pacsim's one HTTP client, not the proxies' ControlClient: the probe runs every
    2 s, and the proxies would import every actor."""
    from simulators.http.client import JsonClient  # only this kind needs HTTP; the check runs every 2 s

    client = JsonClient(f"http://{LOOPBACK}:{port}", timeout=timeout,
                        name=f"control API on {port}")
    health = client.get("/v1/health")
    if not isinstance(health, dict):
        raise PacsimError("control API is not healthy", port=port)
    return f"control API {port}: {health.get('kind')} {health.get('name')}"


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = serve_arguments(words or pid1_command())
        for line in check(args):
            print(f"healthy: {line}")
    except (PacsimError, OSError) as exc:
        print(f"unhealthy: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
