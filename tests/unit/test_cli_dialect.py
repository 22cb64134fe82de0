"""One CLI dialect (issue 18, item 8): every command speaks the same options.

Walks the real ``pacsim`` parser (every subcommand, nested ones included) so a new
command that forgets help text, spells its report folder differently, takes ``--json``
as a switch or a duration as bare seconds fails here, not in a user's terminal.
"""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Iterator

import pytest

from simulators.cli import build_parser, main
from simulators.cli import options

#: Commands that write reports: each must take ``--report-dir DIR``.
REPORT_WRITERS = [("run",), ("faults", "run"), ("migrate",), ("probe", "report")]
#: Commands that talk to a target: each must take ``--target builtin|orthanc|AE@HOST:PORT``.
TARGET_TALKERS = [("run",), ("sandbox", "up"), ("faults", "run"), ("migrate",), ("probe",),
                  ("up",), ("compose", "render")]
#: Options hidden from --help on purpose, with the reason.
HIDDEN = {("probe", "--linger"): "test-only: keeps an endless run alive after its cycles"}
#: Options that are durations (seconds as 10s/5m/bare number).
DURATIONS = {("up", "--timeout"), ("sandbox", "down", "--timeout"),
             ("sandbox", "up", "--duration"), ("probe", "--every"), ("probe", "--timeout"),
             ("probe", "report", "--floor")}


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _subparsers(child, path + (name,))


def _commands() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    return dict(_subparsers(build_parser()))


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_the_walk_sees_every_command() -> None:
    commands = _commands()
    for path in REPORT_WRITERS + TARGET_TALKERS + [("legacy", "seed"), ("sandbox", "status")]:
        assert path in commands, path
    assert len(commands) > 25


def _missing_help(commands: dict[tuple[str, ...], argparse.ArgumentParser]) -> list[str]:
    missing = []
    for path, parser in commands.items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction,
                                   argparse._VersionAction)):
                continue
            name = action.option_strings[0] if action.option_strings else action.dest
            if action.help == argparse.SUPPRESS and (path + (name,)) in HIDDEN:
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(" ".join(("pacsim",) + path + (name,)))
    return missing


def test_every_option_and_argument_has_help() -> None:
    assert _missing_help(_commands()) == []


def test_the_help_check_sees_an_option_without_help() -> None:
    parser = argparse.ArgumentParser(prog="pacsim")
    sub = parser.add_subparsers().add_parser("thing")
    sub.add_argument("--quiet-one")
    sub.add_argument("where")
    assert _missing_help(dict(_subparsers(parser))) == ["pacsim thing --quiet-one",
                                                        "pacsim thing where"]


@pytest.mark.parametrize("path", REPORT_WRITERS, ids=" ".join)
def test_report_writing_commands_take_report_dir(path: tuple[str, ...]) -> None:
    action = _option(_commands()[path], "--report-dir")
    assert action is not None, f"pacsim {' '.join(path)} has no --report-dir"
    assert action.dest == "report_dir" and action.metavar == "DIR"


@pytest.mark.parametrize("path", TARGET_TALKERS, ids=" ".join)
def test_target_talking_commands_take_one_target_spelling(path: tuple[str, ...]) -> None:
    action = _option(_commands()[path], "--target")
    assert action is not None, f"pacsim {' '.join(path)} has no --target"
    assert action.metavar == options.TARGET_METAVAR
    assert action.type is options.target


def test_json_is_always_a_file_or_dash() -> None:
    for path, parser in _commands().items():
        action = _option(parser, "--json")
        if action is None:
            continue
        assert action.nargs != 0, f"pacsim {' '.join(path)} --json is a bare switch"
        assert action.metavar == "FILE|-", path


def test_durations_are_parsed_as_durations() -> None:
    commands = _commands()
    for *path, flag in DURATIONS:
        action = _option(commands[tuple(path)], flag)
        assert action is not None and action.metavar == "DURATION", (path, flag)
        assert action.type("2m") == 120.0
        assert action.type("90") == 90.0


def test_every_time_option_anywhere_is_a_duration() -> None:
    """A new --timeout/--every/--duration/--interval elsewhere cannot be bare seconds."""
    timed = {"--timeout", "--every", "--duration", "--interval", "--linger"}
    for path, parser in _commands().items():
        for action in parser._actions:
            for flag in set(action.option_strings) & timed:
                assert action.type is not None and action.type("1m") == 60.0, (path, flag)


def test_duration_type_refuses_garbage_naming_the_form() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="30s"):
        options.duration("soon")
    assert options.duration("500ms") == 0.5


def test_target_type_refuses_a_malformed_address_at_parse_time() -> None:
    stderr = io.StringIO()
    with redirect_stderr(stderr), pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["faults", "run", "--target", "PACS@host"])
    assert exit_.value.code == 2
    assert "--target" in stderr.getvalue() and "AE@HOST:PORT" in stderr.getvalue()
    args = build_parser().parse_args(["faults", "run", "--target", "PACS@pacs.test:104"])
    assert args.target == "PACS@pacs.test:104"


def test_old_report_spelling_of_migrate_warns_once_and_still_works() -> None:
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        args = build_parser().parse_args(["migrate", "--source", "legacy", "--target",
                                          "builtin", "--report", "out/m"])
    assert args.report_dir == "out/m"
    lines = [line for line in stderr.getvalue().splitlines() if line]
    assert lines == ["pacsim: warning: --report is deprecated and will be removed in the "
                     "next release; use --report-dir"]
    quiet = io.StringIO()
    with redirect_stderr(quiet):
        args = build_parser().parse_args(["migrate", "--source", "legacy", "--target",
                                          "builtin", "--report-dir", "out/n"])
    assert args.report_dir == "out/n" and quiet.getvalue() == ""
    default = build_parser().parse_args(["migrate", "--source", "l", "--target", "builtin"])
    assert default.report_dir == "reports/migration"


def test_faults_list_json_to_a_file_to_stdout_and_the_old_switch(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["faults", "list", "--json", str(path)]) == 0
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written and {"id", "hook"} <= set(written[0])
    assert "faults" in out.getvalue() and err.getvalue() == ""  # the table still printed

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["faults", "list", "--json", "-"]) == 0
    assert json.loads(out.getvalue()) == written

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["faults", "list", "--json"]) == 0  # the old switch, one release more
    assert json.loads(out.getvalue()) == written
    assert err.getvalue().count("deprecated") == 1 and "--json -" in err.getvalue()


def test_help_renders_for_every_command() -> None:
    for path in _commands():
        out = io.StringIO()
        with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([*path, "--help"])
        assert exit_.value.code == 0 and "usage: pacsim" in out.getvalue()
