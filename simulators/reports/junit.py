"""JUnit XML: one testcase per expectation, so CI dashboards list what was checked.

``classname`` is the scenario name and the test name starts with the step name, which
is how Jenkins/GitLab group and show them. A step without expectations is one testcase
(its own verdict); errors become ``<error>``, unsupported and skipped steps ``<skipped>``
with the reason, and a run that could not start is one ``environment`` error.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from simulators.reports.common import as_list, show
from simulators.scenario.results import RunResult, StepResult


_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (a peer's garbage must not break the report)."""
    return _NOT_XML.sub("\ufffd", text)


def _case(suite: ET.Element, classname: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=_xml(classname), name=_xml(name),
                         time=f"{seconds:.3f}")


def _step_cases(suite: ET.Element, run: RunResult, step: StepResult, prefix: str) -> None:
    title = f"{prefix}{step.name}"
    if step.children:
        for child in step.children:
            _step_cases(suite, run, child, f"{title} / ")
    if step.expectations and step.status not in ("error", "skipped", "unsupported"):
        for index, expectation in enumerate(step.expectations):
            case = _case(suite, run.scenario, f"{title} :: {expectation.name}",
                         step.duration if index == 0 else 0.0)
            if not expectation.passed:
                failure = ET.SubElement(case, "failure", message=_xml(expectation.message),
                                        type="expectation")
                failure.text = _xml(f"expected: {show(expectation.expected, 2000)}\n"
                                    f"seen:     {show(expectation.seen, 2000)}")
        return
    if step.children and step.status == "passed":
        return  # the children already stand for it
    case = _case(suite, run.scenario, title, step.duration)
    if step.status == "failed":
        ET.SubElement(case, "failure", message=_xml(step.message or "step failed"), type="step")
    elif step.status == "error":
        ET.SubElement(case, "error", message=_xml(step.message or "step error"), type="error")
    elif step.status in ("skipped", "unsupported"):
        ET.SubElement(case, "skipped", message=_xml(step.message or step.status))
    if step.notes:
        ET.SubElement(case, "system-out").text = _xml("\n".join(step.notes))


def _suite(parent: ET.Element, run: RunResult) -> None:
    suite = ET.SubElement(parent, "testsuite", name=_xml(run.scenario),
                          timestamp=dt.datetime.fromtimestamp(run.started, dt.timezone.utc)
                          .isoformat(timespec="seconds"), time=f"{run.duration:.3f}")
    if run.file:
        suite.set("file", run.file)
    if run.environment_error:
        case = _case(suite, run.scenario, "environment", run.duration)
        ET.SubElement(case, "error", message=_xml(run.environment_error), type="environment")
    for step in run.steps:
        _step_cases(suite, run, step, "")
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attribute, str(sum(1 for case in cases if case.find(tag) is not None)))


def render_junit(results: RunResult | Sequence[RunResult]) -> str:
    """The JUnit XML document for one or more runs."""
    root = ET.Element("testsuites", name="pacsim")
    for run in as_list(results):
        _suite(root, run)
    for attribute in ("tests", "failures", "errors", "skipped"):
        root.set(attribute, str(sum(int(s.get(attribute, "0")) for s in root)))
    root.set("time", f"{sum(run.duration for run in as_list(results)):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(results: RunResult | Sequence[RunResult], path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_junit(results), encoding="utf-8")
    return target


__all__ = ["render_junit", "write_junit"]
