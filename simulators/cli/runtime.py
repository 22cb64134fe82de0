"""``pacsim images | compose | up | status | logs | down``: the container commands.

``cli.py`` calls :func:`register` with its subparsers; each command sets ``func`` to
a function returning the exit code (0 ok, 1 failed, 2 invalid input or environment).
Errors are raised as :class:`~simulators.errors.PacsimError` subclasses and the CLI
prints them as one line. Imports of the docker SDK happen inside the commands, so
``pacsim --help`` works without it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from simulators.runtime.compose import write
from simulators.runtime.docker import DockerEnvironment, container_logs, follow_logs, list_states
from simulators.errors import ConfigError
from simulators.runtime.engine import docker_client, plan_down, remove_by_label
from simulators.runtime.images import build_images
from simulators.runtime.topology import plan
from simulators.scenario.validate import load_environment
from simulators.cli.options import add_duration
from simulators.cli.targets import add_target_options, declared_supports, target_override

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _say(line: str) -> None:
    print(line, flush=True)


def _topology(args: argparse.Namespace) -> Any:
    """The containers for the file's environment: a scenario's, or a site file's (the
    ``environment:`` both share; ``compose render SITE.yaml`` is documented), with the
    ``--target``/``--supports`` overrides ``run`` and ``sandbox up`` take."""
    return plan(load_environment(args.scenario, target=target_override(args),
                                 supports=declared_supports(args) or None))


def images_build(args: argparse.Namespace) -> int:

    which = tuple(args.only) if args.only else ("pacsim", "orthanc")
    built = build_images(base=args.base, orthanc_base=args.orthanc_base,
                         local_base=args.local_base, progress=_say, which=which)
    for image in built:
        _say(f"image {image.describe()}")
    return EXIT_OK


def compose_render(args: argparse.Namespace) -> int:

    written = write(_topology(args), args.output, title=str(args.scenario),
                    monitoring=args.monitoring)
    for path in written:
        _say(f"wrote {path}")
    _say(f"start it with: cd {args.output.parent} && docker compose -f {args.output.name} up -d")
    if args.monitoring:
        _say(f"with Prometheus and Grafana: docker compose -f {args.output.name} "
             "-f monitoring.yml --profile monitoring up -d")
    return EXIT_OK


def up(args: argparse.Namespace) -> int:

    environment = DockerEnvironment(_topology(args), progress=_say)
    environment.start(timeout=args.timeout)
    _say(f"run {environment.run_id}: all {len(environment.topology.services)} services healthy "
         f"in {environment.started_in:.1f}s")
    for state in list_states(environment.client, environment.run_id):
        _say(f"  {state.describe()}")
    _say(f"stop with: pacsim down --run {environment.run_id}")
    return EXIT_OK


def status(args: argparse.Namespace) -> int:

    states = list_states(docker_client(), args.run)
    if not states:
        _say("no pacsim containers")
        return EXIT_OK
    _say(f"{'run':<8}  {'actor':<14} {'kind':<9} {'status':<8} {'health':<10} ports")
    for state in states:
        _say(state.describe())
    unhealthy = [s for s in states if s.status != "running" or s.health == "unhealthy"]
    return EXIT_FAILED if unhealthy else EXIT_OK


def logs(args: argparse.Namespace) -> int:

    if getattr(args, "follow", False):
        return _follow(args)
    for actor, text in container_logs(docker_client(), args.actor, run_id=args.run,
                                      tail=args.tail if args.tail is not None else "all"):
        if args.actor is None:
            _say(f"==> {actor} <==")
        sys.stdout.write(text)
    return EXIT_OK


def _follow(args: argparse.Namespace) -> int:
    """``logs -f``: every line as it comes, ``actor | line``; Ctrl-C is its normal end."""
    width = 0 if args.actor else 14

    def write(actor: str, line: str) -> None:
        sys.stdout.write(f"{actor:<{width}} | {line}\n" if width else f"{line}\n")
        sys.stdout.flush()

    try:
        follow_logs(docker_client(), write, args.actor, run_id=args.run,
                    tail=args.tail if args.tail is not None else 10)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def down(args: argparse.Namespace) -> int:
    """The last run you started (or ``--run ID``, or ``--all`` after a confirmation);
    never a docker compose project's containers, nor another user's run by default."""
    client = docker_client()
    every = bool(getattr(args, "all", False))
    if every and args.run:
        raise ConfigError("pacsim down: give --run ID or --all, not both", field="run")
    plan = plan_down(client, run_id=args.run, every=every)
    for project, count in sorted(plan.compose.items()):
        _say(f"left alone: {count} container(s) of docker compose project {project!r} "
             "(stop them with `docker compose down` where they were started)")
    if not plan.runs:
        if args.run:
            raise ConfigError(f"no pacsim run {args.run!r} on this engine"
                              + (f" (runs: {', '.join(plan.others)})" if plan.others else ""),
                              field="run")
        _say("no pacsim run of yours to remove"
             + (f"; other runs on this engine: {', '.join(plan.others)} "
                "(pacsim down --run ID, or --all)" if plan.others else ""))
        return EXIT_OK
    if every and not getattr(args, "yes", False) and not _confirm(plan.runs):
        _say("nothing removed")
        return EXIT_FAILED
    containers = networks = 0
    for run in plan.runs:
        removed = remove_by_label(client, run)
        containers, networks = containers + removed[0], networks + removed[1]
        _say(f"run {run}: removed {removed[0]} container(s) and {removed[1]} network(s)")
    if len(plan.runs) > 1:
        _say(f"removed {containers} container(s) and {networks} network(s)")
    return EXIT_OK


def _confirm(runs: list[str]) -> bool:
    """One confirmation line on the terminal: --all removes other people's runs too."""
    sys.stdout.write(f"remove {len(runs)} pacsim run(s) ({', '.join(runs)}), other "
                     "users' included? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def register(subparsers: Any) -> None:
    """Add the container commands to ``pacsim``'s subparsers."""
    images = subparsers.add_parser("images", help="build the container images")
    images_sub = images.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    build = images_sub.add_parser(
        "build", help="build pacsim/pacsim and pacsim/orthanc",
        description="Build the actor image and the Orthanc target image. Python packages come "
                    "from a wheelhouse made here, so the image build needs no network.")
    build.add_argument("--base", help="base image of the actor image (default python:3.11-slim)")
    build.add_argument("--orthanc-base", help="base image of the Orthanc image "
                                              "(default debian:bookworm-slim)")
    build.add_argument("--local-base", action="store_true",
                       help="make local debootstrap bases if missing (compose/build-base.sh, "
                            "needs root) and build on them with no network")
    build.add_argument("--only", action="append", choices=["pacsim", "orthanc"],
                       help="build only this image (repeatable)")
    build.set_defaults(func=images_build)

    compose = subparsers.add_parser("compose", help="compose files for a scenario's environment")
    compose_sub = compose.add_subparsers(dest="compose_command", required=True, metavar="ACTION")
    render = compose_sub.add_parser(
        "render", help="write a compose file for SCENARIO's environment",
        description="Write a compose file (and the settings files it mounts, beside it) with "
                    "one service per actor and the target; ports on 127.0.0.1 only.")
    render.add_argument("scenario", type=Path, metavar="SCENARIO|SITE",
                        help="a scenario or site file (its environment: is what runs)")
    add_target_options(render, what="the file's")
    render.add_argument("-o", "--output", type=Path, default=Path("docker-compose.yml"),
                        help="compose file to write (default ./docker-compose.yml)")
    render.add_argument("--monitoring", action="store_true",
                        help="also write monitoring.yml: a probe service, Prometheus and "
                             "Grafana (compose profile 'monitoring')")
    render.set_defaults(func=compose_render)

    start = subparsers.add_parser(
        "up", help="start a scenario's environment in containers",
        description="One container per actor and target on a private network; returns when "
                    "all are healthy. Stop with 'pacsim down'.")
    start.add_argument("scenario", type=Path, metavar="SCENARIO|SITE",
                       help="a scenario or site file (its environment: is what runs)")
    add_target_options(start, what="the file's")
    start.add_argument("--runtime", choices=["docker"], default="docker",
                       help="where the actors live (docker: one container each)")
    add_duration(start, "--timeout", default=120.0,
                 help="how long to wait for all containers to be healthy, e.g. 2m "
                      "(default 120s; a bare number is seconds)")
    start.set_defaults(func=up)

    show = subparsers.add_parser("status", help="pacsim's containers and their health")
    show.add_argument("--run", help="only this run id")
    show.set_defaults(func=status)

    tail = subparsers.add_parser("logs", help="logs of pacsim's containers")
    tail.add_argument("actor", nargs="?", help="only this actor (service name)")
    tail.add_argument("--run", help="only this run id")
    tail.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    tail.set_defaults(func=logs)

    stop = subparsers.add_parser("down", help="remove pacsim's containers and networks")
    stop.add_argument("--run", help="only this run id (default: the last run you started)")
    stop.set_defaults(func=down)
    stop.add_argument("--all", action="store_true",
                      help="every pacsim run on the engine, other users' too (asks first)")
    stop.add_argument("--yes", action="store_true", help="with --all: do not ask")
    tail.add_argument("-f", "--follow", action="store_true",
                      help="keep printing new lines as they are written (Ctrl-C stops)")


__all__ = ["register"]
