"""The shapes of the fault catalogue: a fault, the answer a conformant peer gives, a verdict.

Kept apart from the catalogue's data (``catalogue.py``) so that the data file is
nothing but entries, and the probes, the reports and the scenario runner import the
same small records. Everything here is frozen: a catalogue entry is a fact about
the standard, not state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Where a fault is injected. ``modality.*`` and ``ehr.*`` hooks are also actor hooks:
#: a fault profile on that actor mutates the outgoing request at that point.
HOOKS = (
    "modality.mpps.n-create", "modality.mpps.n-set", "association", "mwl.c-find",
    "store.c-store", "stgcmt.n-action", "ehr.hl7", "mllp.frame", "tls.handshake",
)
#: Which side of a target answers the fault (decides which address a probe uses).
SERVICES = ("mpps", "dicom", "mwl", "store", "commitment", "hl7")

CONFORMANT = "conformant"
NON_CONFORMANT = "non-conformant"
IMPLEMENTATION_DEFINED = "implementation-defined"
NOT_SUPPORTED = "not supported by target"
ERROR = "error"
VERDICTS = (CONFORMANT, NON_CONFORMANT, IMPLEMENTATION_DEFINED, NOT_SUPPORTED, ERROR)

#: Expected-answer kinds.
DIMSE, REJECT, ABORT, ACK, BEHAVIOUR, OPEN = (
    "dimse", "associate-rj", "abort", "ack", "behaviour", "implementation-defined")


@dataclass(frozen=True, slots=True)
class Expected:
    """What a conformant peer answers.

    * ``dimse``: one of ``statuses`` (``any_failure`` accepts every failure status);
    * ``associate-rj``: A-ASSOCIATE-RJ with ``reject`` = (result, source, reason);
    * ``abort``: A-ABORT or a closed connection, and the peer keeps serving others;
    * ``ack``: MSA-1 in ``ack_codes`` and, when given, ERR-3 in ``err_codes``;
    * ``behaviour``: an observable behaviour the probe checks (``text`` says which);
    * ``implementation-defined``: the standard leaves it open; reported, not judged
      (the invariants still are: no other item may change).
    """

    kind: str
    text: str
    statuses: tuple[int, ...] = ()
    any_failure: bool = False
    reject: tuple[int, int, int] | None = None
    ack_codes: tuple[str, ...] = ()
    err_codes: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.kind == DIMSE:
            codes = _code_ranges(self.statuses)
            return (codes + (" or any failure" if self.any_failure and codes else "")
                    if codes else "any failure status")
        if self.kind == REJECT and self.reject:
            return "A-ASSOCIATE-RJ %d/%d/%d" % self.reject
        if self.kind == ACK:
            errs = "/".join(str(code) for code in self.err_codes)
            return "/".join(self.ack_codes) + (f" ERR {errs}" if errs else "")
        return self.text


def _code_ranges(codes: tuple[int, ...]) -> str:
    """``A900-A9FF/B007`` rather than 257 codes: runs of three or more are ranges."""
    runs: list[list[int]] = []
    for code in sorted(set(codes)):
        if runs and code == runs[-1][-1] + 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    return "/".join(f"{run[0]:04X}-{run[-1]:04X}" if len(run) >= 3 else
                    "/".join(f"{code:04X}" for code in run) for run in runs)


@dataclass(frozen=True, slots=True)
class Fault:
    """One catalogue entry: a known way real systems misbehave, and the right answer."""

    id: str
    title: str
    description: str
    hook: str
    service: str
    expected: Expected
    section: str
    #: Faults whose exchange could corrupt other orders: the probe snapshots every
    #: other worklist item (and, on the built-in RIS, every order) before and after.
    invariant: bool = False
    source: str = "FAULTS.md"

    def __post_init__(self) -> None:
        if self.hook not in HOOKS:
            raise ValueError(f"{self.id}: unknown hook {self.hook!r}")
        if self.service not in SERVICES:
            raise ValueError(f"{self.id}: unknown service {self.service!r}")

    def as_dict(self) -> dict[str, Any]:
        exp = self.expected
        return {
            "id": self.id, "title": self.title, "description": self.description,
            "hook": self.hook, "service": self.service, "section": self.section,
            "invariant": self.invariant, "source": self.source,
            "expected": {"kind": exp.kind, "text": exp.text, "summary": exp.describe(),
                         "statuses": [f"0x{code:04X}" for code in exp.statuses],
                         "any_failure": exp.any_failure,
                         "reject": list(exp.reject) if exp.reject else None,
                         "ack_codes": list(exp.ack_codes), "err_codes": list(exp.err_codes)},
        }


@dataclass(slots=True)
class Observation:
    """What a probe did and saw on the wire; the verdict is computed from it."""

    sent: str
    answered: str = ""
    status: int | None = None
    reject: tuple[int, int, int] | None = None
    aborted: bool = False
    closed: bool = False
    ack_code: str = ""
    err_code: int | None = None
    #: Named yes/no facts the probe checked (e.g. "still serving", "nothing stored").
    checks: dict[str, bool] = field(default_factory=dict)
    #: Set by a probe when the target does not offer the service at all.
    unsupported: str = ""
    #: Set by a probe when the standard leaves this particular answer open.
    open_reason: str = ""
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the conformance matrix."""

    fault: Fault
    verdict: str
    sent: str
    answered: str
    detail: str = ""
    duration: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.fault.id, "hook": self.fault.hook, "section": self.fault.section,
                "sent": self.sent, "expected": self.fault.expected.describe(),
                "answered": self.answered, "verdict": self.verdict, "detail": self.detail,
                "duration": round(self.duration, 3)}


__all__ = [
    "HOOKS", "SERVICES", "VERDICTS", "CONFORMANT", "NON_CONFORMANT", "IMPLEMENTATION_DEFINED",
    "NOT_SUPPORTED", "ERROR", "DIMSE", "REJECT", "ABORT", "ACK", "BEHAVIOUR", "OPEN",
    "Expected", "Fault", "Observation", "Outcome",
]
