"""The one dialect of pacsim's command line: options every command spells the same way.

Why a module: output went to ``--report-dir``, ``--report``, ``--out``, ``--store``,
``-o`` or ``--html/--json/--junit FILE``; ``--json`` was a file on ``run`` and a switch
on ``faults list``; ``--timeout`` was seconds on one command and a duration on another.
Each command now builds these options from the helpers here, so the spelling, the
metavar, the help text and the parsing are defined once:

- ``--report-dir DIR``: the folder every report of the run goes into (:func:`add_report_dir`);
- ``--json FILE``: always a file, ``-`` for stdout (:func:`add_json`, :func:`emit_json`);
- ``--target builtin|orthanc|AE@HOST:PORT`` (:func:`add_target`), checked as it is parsed;
- durations as ``10s``/``5m``/``1h`` or bare seconds (:func:`duration`).

Old spellings stay for one release through :class:`DeprecatedAlias`, which prints one
``pacsim: warning: ... is deprecated`` line on stderr and then behaves as the new option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from simulators.common.fields import parse_duration
from simulators.dicom.address import parse_ae_address
from simulators.errors import PacsimError

TARGET_METAVAR = "builtin|orthanc|AE@HOST:PORT"
LOCAL_TARGETS = ("builtin", "orthanc")
STDOUT = "-"


# ---------------------------------------------------------------------- value types
def duration(text: str) -> float:
    """argparse type: ``10s``, ``500ms``, ``5m``, ``1h`` or a bare number of seconds.

    The same parser scenarios use (:func:`simulators.common.fields.parse_duration`),
    so a duration is written one way in files and on command lines."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def target(text: str) -> str:
    """argparse type for ``--target``: ``builtin``, ``orthanc`` or a well-formed
    ``AE@HOST:PORT`` (a typo is refused before anything starts). The text is kept
    as written: commands pass it on to their engines unchanged."""
    value = text.strip()
    if value in LOCAL_TARGETS:
        return value
    try:
        parse_ae_address(value, "--target")
    except PacsimError as exc:
        # argparse prefixes "argument --target:" itself
        raise argparse.ArgumentTypeError(exc.message.removeprefix("--target: ")) from None
    return value


# ---------------------------------------------------------------------- deprecation
class DeprecatedAlias(argparse.Action):
    """An old spelling kept for one release: one deprecation line on stderr, then the
    value lands where the new option puts it (same ``dest``).

    ``canonical`` is how the option is spelled now; it is named in the warning and the
    help. ``nargs=0`` aliases store ``const`` (a switch that became an option)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, canonical: str,
                 nargs: Any = None, const: Any = None, **kwargs: Any) -> None:
        self.canonical = canonical
        kwargs.setdefault("help", f"deprecated spelling of {canonical} (removed in the next "
                                  "release)")
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        warn_deprecated(option_string or "/".join(self.option_strings), self.canonical)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def warn_deprecated(old: str, new: str, stream: Any = None) -> None:
    """The one deprecation line (stderr: a script reading stdout is not disturbed)."""
    print(f"pacsim: warning: {old} is deprecated and will be removed in the next release; "
          f"use {new}", file=stream or sys.stderr, flush=True)


def add_deprecated(parser: argparse.ArgumentParser, *old: str, canonical: str, dest: str,
                   **kwargs: Any) -> None:
    """Register ``old`` option strings as a deprecated alias of ``canonical``."""
    parser.add_argument(*old, action=DeprecatedAlias, canonical=canonical, dest=dest,
                        default=argparse.SUPPRESS, **kwargs)


# ---------------------------------------------------------------------- shared options
def add_report_dir(parser: argparse.ArgumentParser, *, writes: str, default: str | None = None,
                   old: Sequence[str] = ()) -> None:
    """``--report-dir DIR``: the folder a command's reports go to (``dest="report_dir"``).

    ``writes`` names the files, for the help; ``old`` are earlier spellings (e.g.
    ``migrate --report``) kept as deprecated aliases."""
    created = f"created; default {default}" if default else "created"
    parser.add_argument("--report-dir", dest="report_dir", metavar="DIR", default=default,
                        help=f"the folder for {writes} ({created})")
    if old:
        add_deprecated(parser, *old, canonical="--report-dir", dest="report_dir", metavar="DIR")


class _JsonAction(argparse.Action):
    """``--json FILE`` / ``--json -``; a bare ``--json`` (the old switch) means stdout,
    with a deprecation line."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if values is None:
            warn_deprecated("--json without a value", "--json - (stdout) or --json FILE")
            values = STDOUT
        setattr(namespace, self.dest, values)


def add_json(parser: argparse.ArgumentParser, *, what: str, was_switch: bool = False) -> None:
    """``--json FILE``: write ``what`` as JSON to FILE, or to stdout with ``-``.

    ``was_switch``: the command used to take a bare ``--json`` meaning stdout; that
    spelling keeps working for one release (with a deprecation line)."""
    parser.add_argument("--json", dest="json", metavar="FILE|-", default=None,
                        action=_JsonAction if was_switch else "store",
                        nargs="?" if was_switch else None,
                        help=f"write {what} as JSON to FILE ('-': stdout)")


def emit_json(destination: str | Path, text: str) -> None:
    """Write JSON ``text`` where ``--json`` says: stdout for ``-``, else the file
    (its folder created)."""
    if str(destination) == STDOUT:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def json_to_stdout(args: argparse.Namespace) -> bool:
    """True when ``--json -`` took stdout (so the human-readable text must not)."""
    return getattr(args, "json", None) == STDOUT


def add_target(parser: argparse.ArgumentParser, *, help: str, required: bool = False,
               default: str | None = None) -> None:
    """``--target builtin|orthanc|AE@HOST:PORT``, validated as it is parsed."""
    parser.add_argument("--target", type=target, metavar=TARGET_METAVAR, required=required,
                        default=default, help=help)


def add_duration(parser: argparse.ArgumentParser, *names: str, help: str,
                 default: float | None = None, **kwargs: Any) -> None:
    """A duration option (``10s``, ``5m``, bare seconds); ``help`` should name the default."""
    parser.add_argument(*names, type=duration, metavar="DURATION", default=default,
                        help=help, **kwargs)


__all__ = ["duration", "target", "DeprecatedAlias", "warn_deprecated", "add_deprecated",
           "add_report_dir", "add_json", "emit_json", "json_to_stdout", "add_target",
           "add_duration", "TARGET_METAVAR", "STDOUT"]
