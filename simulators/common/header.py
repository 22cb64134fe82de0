"""The header and verdict banner every pacsim report opens with (issue 18, sign-off reports).

Why one module: a QA lead signs a scenario report, a load report, a fault matrix, a
migration validation and a go-live report, and each must answer the same questions
before anything else: what verdict, against which target (kind, address, what it
supports), with which pacsim, which seed, when, on which host and from which command
line. Written once here so the HTML block, its field names and the JSON ``header`` keys
agree across reports (tests parse them by ``data-field``). It lives in ``common`` because
every engine's report (load, faults, kpi, migration) and the scenario reports above them
use it; it therefore knows nothing of pacsim's types: capabilities come in as the plain
dict of ``Capabilities.as_dict()``.
"""

from __future__ import annotations

import datetime as dt
import shlex
import socket
import sys
from dataclasses import dataclass, field
from html import escape
from importlib import metadata
from typing import Any, Iterable, Mapping, Sequence

#: Verdict words a banner may carry, and how each one is coloured.
_GOOD, _BAD, _STOP, _ERR, _NEUTRAL = "#2e7d32", "#c62828", "#ef6c00", "#6a1b9a", "#546e7a"
VERDICT_COLOURS: dict[str, str] = {
    "PASS": _GOOD, "SIGNED OFF": _GOOD, "CONFORMANT": _GOOD,
    "FAIL": _BAD, "NOT SIGNED OFF": _BAD, "NOT CONFORMANT": _BAD,
    "INTERRUPTED": _STOP, "ERROR": _ERR, "NO DATA": _NEUTRAL,
}

#: The header's fields in display order: (JSON key / data-field, label).
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("target_kind", "Target"), ("target_address", "Address"), ("supports", "Supports"),
    ("pacsim_version", "pacsim version"), ("seed", "Seed"), ("started", "Started"),
    ("ended", "Ended"), ("host", "Host"), ("command_line", "Command line"),
)

HEADER_CSS = """
.banner{padding:.8em 1.2em;margin:0 0 1em 0;border-radius:.4em;color:#fff;font-size:1.3em;
font-weight:700;letter-spacing:.02em}
.banner .why{display:block;font-size:.7em;font-weight:400;margin-top:.2em}
table.runheader{width:auto;border-collapse:collapse;margin:0 0 1.5em 0}
table.runheader th{background:#f4f4f4;text-align:left;white-space:nowrap;padding:.2em .6em;
border:1px solid #ddd;font-size:.9em}
table.runheader td{padding:.2em .6em;border:1px solid #ddd;font-size:.9em;text-align:left}
.failures{border:2px solid #c62828;border-radius:.4em;padding:.4em 1em;margin:0 0 1.5em 0}
.failures h2{margin:.3em 0;font-size:1.1em;color:#c62828}
.failures li{margin:.2em 0}
details>summary{cursor:pointer;color:#1565c0;margin:.3em 0}
"""


def pacsim_version() -> str:
    """The installed distribution's version (``unknown`` when run from a bare checkout)."""
    try:
        return metadata.version("pacsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def iso_time(timestamp: float | None) -> str:
    """A Unix time as ISO 8601 in UTC with seconds (``2026-12-02T11:43:10Z``); '' if None."""
    if not timestamp:
        return ""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def command_line(argv: Sequence[str] | None = None) -> str:
    """How the user started this run, as they would type it again (``pacsim run a.yaml``).

    ``python -m simulators.cli`` and the console script both leave a path in argv[0];
    the report shows ``pacsim`` instead so the line can be pasted."""
    args = list(sys.argv if argv is None else argv)
    return shlex.join(["pacsim", *args[1:]]) if args else "pacsim"


def supports_summary(capabilities: Mapping[str, Mapping[str, Any]] | None) -> str:
    """One line from ``Capabilities.as_dict()``: what the target takes, what the RIS
    serves instead, and what nobody serves (N/A steps)."""
    if not capabilities:
        return ""
    target = [n for n, c in capabilities.items() if c.get("served_by") == "target"
              or (c.get("served_by") is None and c.get("supported"))]
    ris = [n for n, c in capabilities.items() if c.get("served_by") == "ris"]
    missing = [n for n, c in capabilities.items()
               if not c.get("supported") and c.get("served_by") is None]
    parts = [f"target: {', '.join(target) or 'none'}"]
    if ris:
        parts.append(f"by the RIS: {', '.join(ris)}")
    if missing:
        parts.append(f"not supported: {', '.join(missing)}")
    return "; ".join(parts)


@dataclass
class RunHeader:
    """Who ran what against which target, when: the top of every report and its JSON.

    Unknown values stay empty and the report says why (``not recorded``) rather than
    leaving a row out, so a reader sees at once what the run could not know."""

    target_kind: str = ""
    target_address: str = ""
    capabilities: dict[str, dict[str, Any]] | None = None
    supports: str = ""
    seed: int | str | None = None
    started: str = ""
    ended: str = ""
    pacsim_version: str = field(default_factory=pacsim_version)
    host: str = field(default_factory=socket.gethostname)
    command_line: str = field(default_factory=command_line)

    def __post_init__(self) -> None:
        if not self.supports and self.capabilities:
            self.supports = supports_summary(self.capabilities)

    @classmethod
    def now(cls, **values: Any) -> RunHeader:
        """A header for a run starting now (``started`` filled unless given)."""
        values.setdefault("started", iso_time(dt.datetime.now(dt.timezone.utc).timestamp()))
        return cls(**values)

    def finish(self, ended: float | None = None) -> RunHeader:
        """Stamp the end time (now unless given); returns self for chaining."""
        stamp = ended if ended is not None else dt.datetime.now(dt.timezone.utc).timestamp()
        self.ended = iso_time(stamp)
        return self

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``header`` object (stable keys: :data:`HEADER_FIELDS` + capabilities)."""
        return {"target_kind": self.target_kind, "target_address": self.target_address,
                "supports": self.supports, "capabilities": self.capabilities,
                "pacsim_version": self.pacsim_version, "seed": self.seed,
                "started": self.started, "ended": self.ended, "host": self.host,
                "command_line": self.command_line}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunHeader:
        known = {key for key, _ in HEADER_FIELDS} | {"capabilities"}
        return cls(**{k: v for k, v in data.items() if k in known})

    def display(self, key: str) -> str:
        """The text shown for one field; empty values say what they mean."""
        value = getattr(self, key)
        if key == "seed":
            return "none (this run draws no random data)" if value is None else str(value)
        if key == "supports" and not value:
            return "not probed (no capabilities recorded for this run)"
        return str(value) if value not in (None, "") else "not recorded"


def banner_html(verdict: str, why: str = "") -> str:
    """The one verdict banner at the top of a report (``data-verdict`` for tools/tests)."""
    colour = VERDICT_COLOURS.get(verdict, _NEUTRAL)
    detail = f'<span class="why">{escape(why)}</span>' if why else ""
    return (f'<div class="banner" role="status" data-verdict="{escape(verdict)}" '
            f'style="background:{colour}">{escape(verdict)}{detail}</div>')


def header_html(header: RunHeader) -> str:
    """The header block: one row per :data:`HEADER_FIELDS` entry, always all of them."""
    rows = "".join(f'<tr data-field="{key}"><th>{escape(label)}</th>'
                   f"<td>{_cell(key, header.display(key))}</td></tr>"
                   for key, label in HEADER_FIELDS)
    return f'<table class="runheader">{rows}</table>'


def _cell(key: str, text: str) -> str:
    return f"<code>{escape(text)}</code>" if key == "command_line" else escape(text)


def failures_index_html(items: Iterable[tuple[str, str, str]], *,
                        title: str = "Failures first") -> str:
    """A linked list of what failed: ``(anchor id, label, reason)`` each; '' when none."""
    entries = [f'<li><a href="#{escape(anchor)}">{escape(label)}</a>'
               f'{": " + escape(reason) if reason else ""}</li>' for anchor, label, reason in items]
    if not entries:
        return ""
    return (f'<nav class="failures" aria-label="failures"><h2>{escape(title)} '
            f"({len(entries)})</h2><ol>{''.join(entries)}</ol></nav>")


def page_top(title: str, verdict: str, why: str, header: RunHeader, *, css: str = "") -> str:
    """``<!DOCTYPE>`` through the header block: what every report's HTML starts with."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{css}{HEADER_CSS}</style></head><body>"
            f"{banner_html(verdict, why)}<h1>{escape(title)}</h1>{header_html(header)}")


__all__ = ["RunHeader", "HEADER_FIELDS", "VERDICT_COLOURS", "HEADER_CSS", "pacsim_version",
           "iso_time", "command_line", "supports_summary", "banner_html", "header_html",
           "failures_index_html", "page_top"]
