"""What the "one definition per concept" tests share: a finding, and a walk of every
module of the package through a scanner (``scan(source, path) -> findings``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SIMULATORS = Path(__file__).resolve().parents[1] / "simulators"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"simulators/{self.path}:{self.line}: {self.what}"


def scan_package(scan: Callable[[str, str], list[Finding]]) -> list[Finding]:
    """``scan`` over every module of simulators/ (paths relative to it, POSIX style)."""
    files = sorted(SIMULATORS.rglob("*.py"))
    assert len(files) > 50, "the scan must see the package, not an empty directory"
    return [finding for file in files
            for finding in scan(file.read_text(encoding="utf-8"),
                                file.relative_to(SIMULATORS).as_posix())]
