"""What one probe run produced, and the one place that turns exceptions into outcomes.

Why a single result type: the store, the Prometheus metrics and the weekly report all
read the same five facts (probe, target, outcome, seconds, figures), whichever
protocol the probe spoke. Why one ``measure`` helper: every probe must count a
timeout as a failure *of kind timeout* and a refusal as a plain failure, the same
way, or the weekly comparison would compare different things.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from simulators.errors import NotMeasured, ProbeTimeout

OK, FAIL, TIMEOUT, SKIPPED = "ok", "fail", "timeout", "skipped"
#: Every outcome a probe can have: the only values of the ``outcome`` metric label.
OUTCOMES = (OK, FAIL, TIMEOUT, SKIPPED)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One synthetic transaction against one target.

    ``seconds`` is the latency the probe exists to measure (for image loads, until
    the last byte); ``figures`` holds the extra numbers (``first_byte_seconds``,
    ``bytes``, ``mb_per_s``...). ``skipped`` means "not measured" (no peer for it),
    never a fabricated value.
    """

    probe: str
    target: str
    outcome: str
    seconds: float
    started: float = field(default_factory=time.time)
    figures: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def as_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, "target": self.target, "outcome": self.outcome,
                "seconds": round(self.seconds, 6), "started": self.started,
                "figures": dict(self.figures), "error": self.error}


def is_timeout(exc: BaseException) -> bool:
    """True when ``exc`` says the peer was too slow rather than wrong or absent.

    Decided by type: pacsim's protocol timeouts (:class:`~simulators.errors.Timeout`,
    e.g. DicomTimeout, MllpTimeout) are builtin ``TimeoutError``s, as is
    ``socket.timeout``; a refused or unreachable peer is a failure, not a timeout.
    """
    return isinstance(exc, (ProbeTimeout, TimeoutError))


Measured = tuple[float, dict[str, float]]


def measure(probe: str, target: str, action: Callable[[], Measured | dict[str, float] | None]
            ) -> ProbeResult:
    """Run ``action`` and classify it: ok, fail, timeout or skipped.

    ``action`` returns either ``(seconds, figures)`` when it times the interesting
    part itself (e.g. without the association set-up), or just figures (or None),
    and then the whole call is the latency.
    """
    started_wall, started = time.time(), time.perf_counter()
    try:
        answer = action()
    except NotMeasured as exc:
        return ProbeResult(probe, target, SKIPPED, 0.0, started_wall, error=exc.message)
    except Exception as exc:  # noqa: BLE001 - a probe reports every failure, it never raises
        outcome = TIMEOUT if is_timeout(exc) else FAIL
        return ProbeResult(probe, target, outcome, time.perf_counter() - started, started_wall,
                           error=str(exc)[:500] or type(exc).__name__)
    elapsed = time.perf_counter() - started
    if isinstance(answer, tuple):
        seconds, figures = answer
    else:
        seconds, figures = elapsed, dict(answer or {})
    return ProbeResult(probe, target, OK, seconds, started_wall, figures=figures)


__all__ = ["ProbeResult", "measure", "is_timeout", "OUTCOMES", "OK", "FAIL", "TIMEOUT", "SKIPPED"]
