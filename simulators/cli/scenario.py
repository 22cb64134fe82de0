"""``pacsim run | validate | list | schema``: the scenario commands of the CLI.

Exit codes are the CI contract: 0 every expectation met, 1 any expectation failed,
2 invalid input (a scenario that does not load) or an environment that could not
start (unreachable target, missing Orthanc). Every scenario file is checked before
anything runs, so a typo in the fifth file does not waste the first four runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from simulators.errors import ScenarioError
from simulators.reports import render_console, render_json, write_html, write_json, write_junit
from simulators.reports.common import summary_line
from simulators.scenario import check_scenario, json_schema, list_scenarios, load_scenario
from simulators.scenario.environment import run_in_environment
from simulators.scenario.results import RunResult
from simulators.scenario.runner import NOT_RUN_INTERRUPTED
from simulators.cli.interrupt import interrupted_label, report_interrupted
from simulators.cli.options import add_json, add_report_dir, emit_json, json_to_stdout
from simulators.cli.targets import add_target_options, declared_supports, target_override

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"


def _validate(args: argparse.Namespace) -> int:

    invalid = 0
    variables = _variables(getattr(args, "var", None))
    for path in args.scenarios:
        problems = check_scenario(path, variables=variables)
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
    console = sys.stderr if json_to_stdout(args) else sys.stdout
    for scenario in scenarios:
        if args.runtime == "docker":
            print(f"{scenario.name}: starting every actor in its own container...",
                  file=sys.stderr, flush=True)
        try:
            result = run_in_environment(scenario, runtime=args.runtime, report_dir=report_dir)
        except KeyboardInterrupt:  # before the runner took charge: nothing of it finished
            result = RunResult(scenario=scenario.name, file=scenario.source_file,
                               interrupted=True)
        if result.interrupted:
            result.warnings.append(f"{interrupted_label()}: the run was stopped; "
                                   "steps not run are marked skipped")
        results.append(result)
        # with `--json -` stdout carries the JSON alone; the console report moves aside
        print(render_console(result), flush=True, file=console)
        if result.interrupted:
            break
    # the one line a run ends with (k6/pytest style), also for a single scenario
    print(summary_line(results, time.monotonic() - began), flush=True, file=console)
    written = _write_reports(args, results, report_dir)
    if results[-1].interrupted:
        return _interrupted(results, len(scenarios), written)
    return max(result.exit_code for result in results)


def _write_reports(args: argparse.Namespace, results: list[RunResult],
                   report_dir: Path | None) -> list[str]:
    """Every report asked for; the paths written (interrupted runs write them too)."""
    written: list[str] = []
    cut = results[-1].interrupted  # the partial report says INTERRUPTED in its banner
    if args.json:
        emit_json(args.json, render_json(results, interrupted=cut))
        written.append(str(args.json))
    if args.junit:
        write_junit(results, args.junit)
        written.append(str(args.junit))
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        write_json(results, report_dir / "report.json", interrupted=cut)
        write_junit(results, report_dir / "junit.xml")
        write_html(results, report_dir / "report.html", interrupted=cut)
        print(f"reports written to {report_dir}/ (report.html, report.json, junit.xml)",
              file=sys.stderr if json_to_stdout(args) else sys.stdout)
        written.append(str(report_dir / "report.html"))
    return written


def _interrupted(results: list[RunResult], planned: int, written: list[str]) -> int:
    """What finished before the signal, where the partial report is; exit 130."""
    last = results[-1]
    done = [s for s in last.steps if s.status != "skipped" or s.message != NOT_RUN_INTERRUPTED]
    counts = {status: sum(1 for s in done if s.status == status)
              for status in ("passed", "failed", "error", "unsupported", "skipped")}
    finished = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no step"
    summary = (f"{len(results) - 1} of {planned} scenario(s) finished before it; "
               f"in {last.scenario!r}: {finished} of {len(last.steps)} step(s)")
    return report_interrupted(summary, partial=", ".join(written) if written else None)


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
    # issue 18: validate checks --var names as run does (a typo is exit 2, not ignored)
    validate.add_argument("--var", action="append", metavar="NAME=VALUE",
                          help="a scenario variable as `run` would get it (repeatable); "
                               "an unknown NAME is an error")


__all__ = ["register"]
