"""The console report: each step, PASS/FAIL, duration, and expected vs seen, in plain text.

Written for the person who signs off a UAT case, not for a developer: step names as the
scenario author wrote them, one verdict per line, and the reason right under a failure.
No colour and no terminal tricks, so it reads the same in a CI log and in an e-mail.
"""

from __future__ import annotations

import sys
from typing import Sequence, TextIO

from simulators.reports.common import STATUS_LABELS, as_list, format_duration, plain, show, \
    summary_line
from simulators.scenario.results import RunResult, StepResult


def _step_lines(step: StepResult, number: str, depth: int) -> list[str]:
    indent = "  " * depth
    label = STATUS_LABELS[step.status]
    exchanges = f", {len(step.events)} exchange(s)" if step.events else ""
    attempts = f", {step.attempts} attempts" if step.attempts > 1 else ""
    lines = [f"{indent}  {label:<5} {number:>4} {step.name}  [{step.do}, "
             f"{format_duration(step.duration)}{attempts}{exchanges}]"]
    detail = indent + " " * 13
    for expectation in step.expectations:
        verdict = "ok " if expectation.passed else "NOT"
        lines.append(f"{detail}{verdict} {expectation.name}: expected "
                     f"{plain(expectation.expected)}, seen {plain(expectation.seen)}")
    if step.message and (step.status != "passed" or not step.expectations):
        lines.append(f"{detail}{show(step.message, 400)}")
    for note in step.notes:
        if note != step.message:
            lines.append(f"{detail}note: {show(note, 400)}")
    for index, child in enumerate(step.children, start=1):
        lines.extend(_step_lines(child, f"{number}{index}.", depth + 1))
    return lines


def _run_lines(run: RunResult) -> list[str]:
    counts = run.counts()
    tally = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    verdict = "PASSED" if run.passed else ("ENVIRONMENT ERROR" if run.environment_error
                                           else "FAILED")
    lines = [f"Scenario: {run.scenario}" + (f"  ({run.file})" if run.file else ""),
             f"Result:   {verdict}  ({tally or 'no steps'})  in {format_duration(run.duration)}"]
    if run.environment_error:
        lines.append(f"  {run.environment_error}")
    section = None
    number = 0
    for step in run.steps:
        if step.phase != section:
            section = step.phase
            number = 0
            lines.append("Steps:" if section == "steps" else "Finally:")
        number += 1
        lines.extend(_step_lines(step, f"{number}.", 0))
    lines.extend(f"  warning: {warning}" for warning in run.warnings)
    return lines


def render_console(results: RunResult | Sequence[RunResult]) -> str:
    """The whole report as text: one block per scenario, then for several the summary
    line (``2 scenarios: 1 passed, 1 failed, 0 errors in 41s``; ``pacsim run`` prints it
    itself after the last scenario, also for a single one)."""
    runs = as_list(results)
    blocks = ["\n".join(_run_lines(run)) for run in runs]
    if len(runs) > 1:
        blocks.append(summary_line(runs))
    return "\n\n".join(blocks) + "\n"


def print_console(results: RunResult | Sequence[RunResult], file: TextIO | None = None) -> None:
    (file or sys.stdout).write(render_console(results))


__all__ = ["render_console", "print_console"]
