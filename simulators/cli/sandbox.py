"""``pacsim sandbox up|status|reset|down``: the training hospital from the command line.

``up`` runs in the foreground (until Ctrl-C, SIGTERM, ``pacsim sandbox down`` or the
end of ``--duration`` simulated time) and writes a state file (default
``./.pacsim-sandbox.json``: the API address and the pid). ``status``, ``reset`` and
``down`` read that file and call the trainer API, so they work from any shell in the
same directory. The site is a scenario environment file (``scenarios/sites/*.yaml``),
read by the scenario loader, so a site is written once for scenarios and sandbox.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from simulators.common.fields import parse_duration
from simulators.errors import ConfigError, PacsimError
from simulators.http.client import JsonClient
from simulators.sandbox.api import TrainerApi
from simulators.sandbox.sandbox import Sandbox
from simulators.scenario.validate import load_environment as load_site
from simulators.cli.options import add_duration, add_json, emit_json, json_to_stdout
from simulators.cli.targets import add_target_options, declared_supports, target_override

DEFAULT_STATE = Path(".pacsim-sandbox.json")
API_TIMEOUT = 60.0


def _say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------- the site
def load_environment(path: Path, target: str | dict[str, Any] | None = None,
                     supports: dict[str, bool] | None = None) -> Any:
    """The ``environment:`` of a site or scenario file, validated as scenarios are
    (every problem as ``file:line: field: message``)."""

    return load_site(path, target=target, supports=supports)


# ---------------------------------------------------------------------- state file
def write_state(path: Path, api: tuple[str, int], site: Path) -> None:
    state = {"api": f"http://{api[0]}:{api[1]}", "pid": os.getpid(), "site": str(site),
             "started": dt.datetime.now().isoformat(timespec="seconds")}
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no running sandbox: {path} does not exist "
                          "(start one with `pacsim sandbox up SITE.yaml`)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the sandbox state file {path}: {exc}") from None
    if not isinstance(state, dict) or "api" not in state:
        raise ConfigError(f"{path} is not a sandbox state file")
    return state


def call_api(state: dict[str, Any], method: str, route: str,
             body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JSON request to the running sandbox; ConfigError with the API's own message."""

    client = JsonClient(state["api"], timeout=API_TIMEOUT, name="the sandbox API")
    try:
        answer = client.exchange(method, route,
                                 json_body=None if method == "GET" else (body or {}))
    except PacsimError as exc:
        raise ConfigError(f"the sandbox at {state['api']} does not answer ({exc.message}); "
                          f"is it still running (pid {state.get('pid')})?") from None
    if not answer.ok:
        raise ConfigError(f"sandbox API {method} {route}: {client.error_of(answer).message}")
    if not isinstance(answer.body, dict):
        raise ConfigError(f"sandbox API {method} {route}: the answer is not a JSON object")
    return answer.body


# ---------------------------------------------------------------------- commands
def refuse_if_running(path: Path) -> None:
    """ConfigError when ``path`` names a sandbox whose process still runs: a second
    ``up`` in the same folder would overwrite its state file and leave it unreachable
    by ``status``, ``reset`` and ``down``. A state file of a process that is gone is
    stale and may be replaced."""
    if not path.exists():
        return
    try:
        state = read_state(path)
    except ConfigError:
        return  # unreadable or foreign: not a live sandbox's
    pid = int(state.get("pid") or 0)
    if pid and pid != os.getpid() and _alive(pid):
        raise ConfigError(f"a sandbox is already running from {path} (pid {pid}, trainer API "
                          f"{state.get('api')}): stop it with `pacsim sandbox down"
                          f"{'' if path == DEFAULT_STATE else ' --state ' + str(path)}`, or "
                          "start another one with --state OTHER.json", field="state")


def up(args: argparse.Namespace) -> int:

    refuse_if_running(args.state)  # before anything starts or binds
    environment = load_environment(args.site, target_override(args), declared_supports(args))
    try:
        duration = parse_duration(args.duration) if args.duration else None
        start = dt.time.fromisoformat(args.start)
    except ValueError as exc:
        raise ConfigError(f"bad --duration or --start: {exc}") from None
    sandbox = Sandbox(environment, runtime=args.runtime, pace=args.pace, seed=args.seed,
                      day=args.day, start_time=start, duration=duration)
    done = threading.Event()
    # The API binds first: a taken --api-port (PortInUse, exit 2) is reported before
    # the site starts, which takes a minute with --runtime docker, and nothing is left
    # to clean up.
    api = TrainerApi(sandbox, args.api_host, args.api_port, on_down=done.set).start()
    previous = {sig: signal.signal(sig, lambda *_: done.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        sandbox.start()
        write_state(args.state, api.address, args.site)
        host, port = api.address
        _say(f"sandbox up: {sandbox.site.describe()}")
        _say(f"epoch {sandbox.epoch.tag}, pace {args.pace}, trainer API http://{host}:{port}")
        if sandbox.viewer_url():
            _say(f"trainees: the target's own viewer is at {sandbox.viewer_url()}")
        _say(f"state file {args.state}; stop with `pacsim sandbox down`")
        while not done.is_set() and not sandbox.finished.is_set():
            done.wait(0.2)
        if sandbox.finished.is_set() and not done.is_set():
            counts = sandbox.counters.snapshot()["totals"]
            _say(f"simulated duration reached: {counts}")
    finally:
        api.stop()
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _remove_state(args.state)
    _say("sandbox down")
    return 0


def _remove_state(path: Path) -> None:
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def status(args: argparse.Namespace) -> int:
    result = call_api(read_state(args.state), "GET", "/status")
    if args.json:
        emit_json(args.json, json.dumps(result, indent=2))
        if json_to_stdout(args):
            return 0
    totals = result["pathways"]["totals"]
    _say(f"sim time {result['sim_time']} (pace {result['pace']}, rate x{result['rate_factor']:g}"
         f"), epoch {result['epoch']}, RSS {result['rss_mb']} MB")
    _say("pathways: " + ", ".join(f"{k} {v}" for k, v in totals.items())
         + f", dropped {result['pathways']['dropped']}")
    for name, states in result["pathways"]["by_pathway"].items():
        _say(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in states.items() if v))
    target = result.get("target") or {}
    _say(f"target {target.get('kind')} {target.get('ae_title')}@{target.get('host')}:"
         f"{target.get('port')}")
    if target.get("web_ui"):
        _say(f"target web UI {target['web_ui']}")
    return 0


def reset(args: argparse.Namespace) -> int:
    result = call_api(read_state(args.state), "POST", "/reset")
    _say(f"sandbox reset: epoch {result['previous_epoch']} -> {result['epoch']}")
    return 0


def down(args: argparse.Namespace) -> int:
    state = read_state(args.state)
    call_api(state, "POST", "/down")
    pid = int(state.get("pid") or 0)
    deadline = time.monotonic() + args.timeout
    # ``up`` removes the state file as its last act; a pid that is gone (or a zombie
    # whose parent has not reaped it yet) also means it has stopped.
    while args.state.exists() and _alive(pid):
        if time.monotonic() > deadline:
            print(f"pacsim: the sandbox (pid {pid}) is still stopping", file=sys.stderr)
            return 1
        time.sleep(0.1)
    _say("sandbox down")
    return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def register(subparsers: Any) -> None:
    """Add ``pacsim sandbox ...`` to pacsim's subparsers."""
    sandbox = subparsers.add_parser(
        "sandbox", help="a living training hospital feeding the target",
        description="A simulated hospital day (arrivals, pathways, reports) flowing into the "
                    "target at a chosen pace, with a trainer API to steer it.")
    sub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")

    def with_state(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state", type=Path, default=DEFAULT_STATE,
                            help=f"the running sandbox's state file (default {DEFAULT_STATE})")

    start = sub.add_parser("up", help="run the sandbox in the foreground")
    start.add_argument("site", type=Path, help="site file (scenarios/sites/*.yaml)")
    start.add_argument("--runtime", choices=["local", "docker"], default="local",
                       help="where actors run (local: in this process; docker: each in its "
                            "own container); default local")
    start.add_argument("--pace", default="1x", help="1x, 10x or 60x (default 1x)")
    start.add_argument("--seed", type=int, default=None, help="seed of arrivals and names")
    add_target_options(start, what="the site's")
    start.add_argument("--api-host", default="127.0.0.1",
                       help="address of the trainer API (default 127.0.0.1)")
    start.add_argument("--api-port", type=int, default=0, metavar="PORT",
                       help="port of the trainer API (default 0: a free one)")
    add_duration(start, "--duration",
                 help="stop after this much simulated time, e.g. 1h (default: run on)")
    start.add_argument("--start", default="08:00", metavar="HH:MM",
                       help="simulated time of day to begin at (default 08:00)")
    start.add_argument("--day", default=None, metavar="FILE",
                       help="hospital-day file (pathways, arrivals); default the shipped one")
    with_state(start)
    start.set_defaults(func=up)

    show = sub.add_parser("status", help="simulated time, pace, pathway counts")
    add_json(show, what="the API's full answer", was_switch=True)
    with_state(show)
    show.set_defaults(func=status)

    again = sub.add_parser("reset", help="new epoch: interrupt pathways, counts to zero")
    with_state(again)
    again.set_defaults(func=reset)

    stop = sub.add_parser("down", help="stop the running sandbox")
    add_duration(stop, "--timeout", default=60.0,
                 help="how long to wait for the sandbox to exit, e.g. 2m (default 60s; a bare "
                      "number is seconds)")
    with_state(stop)
    stop.set_defaults(func=down)


__all__ = ["register", "load_environment", "read_state", "call_api", "DEFAULT_STATE"]
