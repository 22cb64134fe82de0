"""pacsim's command line: parse arguments, call simulators, map errors to exit codes.

Exit codes are a contract for CI: 0 success, 1 an expectation failed, 2 invalid
input or an environment error (bad config, unreachable peer, missing tool).
"""

from __future__ import annotations

import multiprocessing
import sys

from simulators.cli import interrupt

# Run as the program (the `pacsim` script, `python -m simulators.cli`): a Ctrl-C
# during the imports below exits 130 quietly instead of printing their traceback.
# Imported by tests or other code, the process's signal handlers are left alone; so in
# a load worker (multiprocessing spawn re-imports the main module with the same argv).
_AS_PROGRAM = (sys.argv[:1] == ["-m"] or sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] in (
    "pacsim", "cli.py")) and multiprocessing.parent_process() is None
if _AS_PROGRAM:
    interrupt.install_early()

import argparse
import logging
import os
import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

from simulators import __version__
from simulators.actors.registry import KINDS, build_actor
from simulators.cli.certs import register as register_certs_commands
from simulators.cli.demo import run_demo
from simulators.cli.faults import register as register_fault_commands
from simulators.cli.generate import register as register_generate_commands
from simulators.cli.hl7 import register as register_hl7_commands
from simulators.cli.legacy import register as register_legacy_commands
from simulators.cli.migration import register as register_migration_commands
from simulators.cli.probe import register as register_probe_commands
from simulators.cli.runtime import register as register_runtime_commands
from simulators.cli.sandbox import register as register_sandbox_commands
from simulators.cli.scenario import register as register_scenario_commands
from simulators.errors import PacsimError
from simulators.runtime.control import ControlServer

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _serve(args: argparse.Namespace) -> int:
    """Run one actor until SIGTERM/SIGINT, logging to stdout."""

    actor = build_actor(args.kind, config_file=args.config, host=args.host, port=args.port,
                        ae_title=args.ae_title)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with actor, ExitStack() as control:
        print(f"pacsim serve {args.kind}: {actor.describe()}", flush=True)
        if args.control_port is not None:

            # Same address as the actor's listeners: 127.0.0.1 unless told otherwise
            # (0.0.0.0 in the image, published on the host's 127.0.0.1 only).
            host = getattr(actor.config, "host", "127.0.0.1")
            server = control.enter_context(ControlServer(actor, host, args.control_port))
            print(f"pacsim serve {args.kind}: control API on {host}:{server.port}", flush=True)
        run = getattr(actor, "run_until", None)
        if callable(run):
            run(stop)
        else:
            while not stop.wait(0.5):
                pass
    print(f"pacsim serve {args.kind}: stopped", flush=True)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:

    return run_demo(seed=args.seed, modality=args.modality, out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="pacsim", description="Simulated modalities, RIS/EHR and legacy PACS for PACS testing.")
    parser.add_argument("--version", action="version", version=f"pacsim {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run one simulated system until stopped",
                           description="Run one actor in the foreground; SIGTERM stops it cleanly.")
    serve.add_argument("kind", choices=sorted(KINDS), help="which actor")
    serve.add_argument("--config", type=Path, help="YAML file of the actor's settings")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (0 picks a free one)")
    serve.add_argument("--ae-title", help="DICOM AE title of this actor")
    serve.add_argument("--control-port", type=int,
                       help="also serve the actor's operations as JSON over HTTP on this "
                            "port (0 picks a free one); used by `pacsim run --runtime docker`")
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="a full modality workflow on the embedded default",
                          description="EHR admits and orders, the modality performs the exam, "
                                      "the built-in archive holds the study.")
    demo.add_argument("--seed", type=int, default=42,
                      help="seed of the synthetic world: same seed, same patient and UIDs (42)")
    demo.add_argument("--modality", default="CT", choices=["CT", "MR", "CR", "DX", "MG", "US"],
                      help="the scanner that performs the exam (default CT)")
    demo.set_defaults(func=_demo)


    register_scenario_commands(sub)

    register_fault_commands(sub)

    register_runtime_commands(sub)

    register_legacy_commands(sub)

    register_generate_commands(sub)

    register_migration_commands(sub)

    register_probe_commands(sub)

    register_sandbox_commands(sub)

    register_certs_commands(sub)

    register_hl7_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    if args.command == "serve":
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        # pynetdicom logs every association at INFO; a container's 2-second healthcheck
        # echo would drown the actor's own log lines.
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    try:
        with interrupt.signals_as_interrupt():
            return _dispatch(args)
    finally:
        if _AS_PROGRAM:
            # the command is over: a signal while the interpreter joins leftover
            # threads must not print threading._shutdown's traceback
            interrupt.exit_quietly_on_signal()


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; map errors to exit codes. SIGINT and SIGTERM arrive here as
    KeyboardInterrupt when the command has no partial report of its own to write."""
    try:
        try:
            return args.func(args)
        except PacsimError as exc:
            print(f"pacsim: error: {exc}", file=sys.stderr)
            return EXIT_INVALID
        except KeyboardInterrupt:
            return interrupt.report_interrupted(
                f"`pacsim {args.command}` stopped before it finished")
        except BrokenPipeError:  # e.g. `pacsim schema | head`: the reader left, not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
    except KeyboardInterrupt:  # a second signal while the first was being reported
        return interrupt.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
