"""``pacsim run | validate | list | schema``: the scenario commands of the CLI.

Exit codes are the CI contract: 0 every expectation met, 1 any expectation failed,
2 invalid input (a scenario that does not load) or an environment that could not
start (unreachable target, missing Orthanc). Every scenario file is checked before
anything runs, so a typo in the fifth file does not waste the first four runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from simulators.errors import ScenarioError
from simulators.reports import render_console, render_json, write_html, write_json, write_junit
from simulators.reports.common import summary_line
from simulators.scenario import check_scenario, json_schema, list_scenarios, load_scenario
from simulators.scenario.environment import run_in_environment
from simulators.cli.options import add_json, add_report_dir, emit_json, json_to_stdout
from simulators.cli.targets import add_target_options, declared_supports, target_override

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"


def _validate(args: argparse.Namespace) -> int:

    invalid = 0
    for path in args.scenarios:
        problems = check_scenario(path)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            invalid += 1
        else:
            print(f"{path}: valid")
    return EXIT_INVALID if invalid else EXIT_OK


def _schema(args: argparse.Namespace) -> int:

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:

    directory = Path(args.directory) if args.directory else DEFAULT_LIBRARY
    entries = list_scenarios(directory)
    if not entries:
        print(f"no scenarios under {directory}", file=sys.stderr)
        return EXIT_INVALID
    width = max(len(_relative(e.path, directory)) for e in entries)
    for entry in entries:
        text = f"INVALID: {entry.error}" if entry.error else f"{entry.name}: {entry.description}"
        print(f"{_relative(entry.path, directory):<{width}}  {text}")
    return EXIT_INVALID if any(e.error for e in entries) else EXIT_OK


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def _run(args: argparse.Namespace) -> int:

    scenarios = []
    target, declared = target_override(args), declared_supports(args)
    for path in args.scenarios:
        try:
            scenario = load_scenario(path, variables=_variables(args.var))
            supports = {**scenario.environment.declarations(), **declared} if declared else None
            scenarios.append(scenario.with_environment(seed=args.seed, target=target,
                                                       supports=supports))
        except ScenarioError as exc:
            print(f"pacsim: invalid scenario: {exc}", file=sys.stderr)
            return EXIT_INVALID
    results = []
    began = time.monotonic()
    report_dir = Path(args.report_dir) if args.report_dir else None
    for scenario in scenarios:
        if args.runtime == "docker":
            print(f"{scenario.name}: starting every actor in its own container...",
                  file=sys.stderr, flush=True)
        with _sigterm_as_interrupt(args.runtime == "docker"):
            result = run_in_environment(scenario, runtime=args.runtime, report_dir=report_dir)
        results.append(result)
        # with `--json -` stdout carries the JSON alone; the console report moves aside
        print(render_console(result), flush=True,
              file=sys.stderr if json_to_stdout(args) else sys.stdout)
    # the one line a run ends with (k6/pytest style), also for a single scenario
    print(summary_line(results, time.monotonic() - began), flush=True,
          file=sys.stderr if json_to_stdout(args) else sys.stdout)
    if args.json:
        emit_json(args.json, render_json(results))
    if args.junit:
        write_junit(results, args.junit)
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        write_json(results, report_dir / "report.json")
        write_junit(results, report_dir / "junit.xml")
        write_html(results, report_dir / "report.html")
        print(f"reports written to {report_dir}/ (report.html, report.json, junit.xml)")
    return max(result.exit_code for result in results)


@contextlib.contextmanager
def _sigterm_as_interrupt(enabled: bool) -> Iterator[None]:
    """SIGTERM (a CI timeout, ``docker stop`` of a runner) unwinds like Ctrl-C, so the
    run's containers and network are removed instead of left behind."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _variables(pairs: list[str] | None) -> dict[str, str]:
    """``--var NAME=VALUE`` pairs; they override the scenario's own ``vars:``."""
    variables: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ScenarioError(f"--var expects NAME=VALUE, got {pair!r}", field="--var")
        variables[name.strip()] = value
    return variables


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the scenario commands to the ``pacsim`` parser."""
    run = sub.add_parser("run", help="run scenario files against a target and report",
                         description="Run each scenario; exit 0 all passed, 1 any expectation "
                                     "failed, 2 invalid input or environment error.")
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario YAML files")
    add_target_options(run, what="the scenarios'")
    run.add_argument("--seed", type=int, help="override the synthetic world's seed")
    run.add_argument("--var", action="append", metavar="NAME=VALUE",
                     help="set a scenario variable (repeatable), e.g. --var hold=20s")
    run.add_argument("--runtime", choices=["local", "docker"], default="local",
                     help="where actors run (local: in this process; docker: each actor "
                          "in its own container on a private network, removed afterwards)")
    add_report_dir(run, writes="report.html, report.json and junit.xml")
    run.add_argument("--junit", metavar="FILE",
                     help="write JUnit XML (one testcase per expectation) to FILE")
    add_json(run, what="the run's report")
    run.set_defaults(func=_run)

    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO",
                          help="scenario YAML files")
    validate.set_defaults(func=_validate)

    listing = sub.add_parser("list", help="the scenario library with one-line descriptions")
    listing.add_argument("directory", nargs="?",
                         help=f"folder of scenario files (default: {DEFAULT_LIBRARY})")
    listing.set_defaults(func=_list)

    schema = sub.add_parser("schema", help="print the scenario JSON Schema (draft 7)")
    schema.add_argument("-o", "--output", metavar="FILE",
                        help="write the schema to FILE instead of stdout")
    schema.set_defaults(func=_schema)


__all__ = ["register"]
