"""Reports of scenario runs. They read :class:`~simulators.scenario.results.RunResult` only
(no protocol code), so every report shows the same facts in a different form:

* :mod:`console`: plain text a QA lead can read and sign;
* :mod:`json_report`: stable keys for tools (round-trips back to RunResult);
* :mod:`junit`: JUnit XML, one testcase per expectation, for CI dashboards;
* :mod:`html`: one self-contained HTML file with the run's timeline.
"""

from simulators.reports.console import print_console, render_console
from simulators.reports.html import render_html, write_html
from simulators.reports.json_report import read_json, render_json, write_json
from simulators.reports.junit import render_junit, write_junit

__all__ = ["render_console", "print_console", "render_json", "write_json", "read_json",
           "render_junit", "write_junit", "render_html", "write_html"]
