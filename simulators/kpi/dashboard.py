"""The Grafana dashboard "pacsim go-live" as data, written to compose/grafana/dashboards/.

Why generated: every query names a metric of :mod:`simulators.kpi.metrics`; building
the JSON here lets a test check each expression against the metrics the prober
really registers, so a renamed metric cannot leave a silently empty panel. The
checked-in file must equal :func:`dashboard_json` (the compose render test says so).

Probes run every few minutes, so rates use a 1 h window (``increase(...[1h])``)
rather than Grafana's rate interval: a 1-minute window would usually be empty.
"""

from __future__ import annotations

import json
import re
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "pacsim-prometheus"}
UID = "pacsim-golive"
_WINDOW = "1h"


def _p95(probes: str) -> str:
    return ("histogram_quantile(0.95, sum by (le, probe, target) (increase("
            f'pacsim_probe_duration_seconds_bucket{{probe=~"{probes}",outcome="ok"}}[{_WINDOW}])))')


def _panel(number: int, title: str, exprs: list[tuple[str, str]], *, unit: str,
           kind: str = "timeseries", width: int = 12, description: str = "") -> dict[str, Any]:
    x = 0 if kind == "stat" else (number % 2) * 12
    return {
        "id": number, "type": kind, "title": title, "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width if kind != "stat" else 24, "x": x if kind != "stat" else 0,
                    "y": number * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
                     "legendFormat": legend} for i, (expr, legend) in enumerate(exprs)],
        "options": {},
    }


def dashboard() -> dict[str, Any]:
    panels = [
        _panel(0, "Up (last run of each probe succeeded)",
               [("pacsim_probe_up", "{{probe}} {{target}}")], unit="bool", kind="stat",
               description="1 = the probe's last run was ok; 0 = failed or timed out."),
        _panel(1, "C-ECHO and worklist query latency (p95)",
               [(_p95("echo|worklist_query"), "{{probe}} {{target}}")], unit="s"),
        _panel(2, "Order to worklist (p95)",
               [(_p95("order_to_worklist"), "{{target}}")], unit="s",
               description="HL7 order sent with a fresh accession until the MWL lists it."),
        _panel(3, "Store to queryable (p95)",
               [(_p95("store_to_queryable"), "{{target}}")], unit="s",
               description="First C-STORE until C-FIND finds the canary study."),
        _panel(4, "Image load time by method (p95, until the last byte)",
               [(_p95("load_cmove|load_cget|load_wado"), "{{probe}} {{target}}")], unit="s"),
        _panel(5, "Image load time to first byte",
               [("pacsim_image_load_first_byte_seconds", "{{probe}} {{target}}")], unit="s"),
        _panel(6, "Image load throughput",
               [("pacsim_image_load_bytes_per_second", "{{probe}} {{target}}")], unit="Bps"),
        _panel(7, "Order to report turnaround (p95)",
               [(_p95("order_to_report"), "{{target}}")], unit="s",
               description="Only where a reporting peer sends ORU^R01 to the probe."),
        _panel(8, f"Failures and timeouts (per {_WINDOW})",
               [("sum by (probe, outcome) (increase(pacsim_probe_runs_total"
                 f'{{outcome=~"fail|timeout"}}[{_WINDOW}]))', "{{probe}} {{outcome}}")],
               unit="short", width=24),
    ]
    return {
        "uid": UID, "title": "pacsim go-live", "tags": ["pacsim", "go-live"],
        "timezone": "browser", "schemaVersion": 38, "version": 1, "editable": True,
        "refresh": "1m", "time": {"from": "now-24h", "to": "now"},
        "description": "Synthetic transactions of `pacsim probe` against the PACS: uptime, "
                       "worklist, order-to-worklist, store-to-queryable, image loads, reports.",
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


_METRIC = re.compile(r"\b(pacsim_[a-z_]+)")


def metric_names(document: dict[str, Any] | None = None) -> set[str]:
    """Every ``pacsim_*`` series name the dashboard's queries use."""
    document = document or dashboard()
    return {name for panel in document["panels"] for target in panel["targets"]
            for name in _METRIC.findall(target["expr"])}


__all__ = ["dashboard", "dashboard_json", "metric_names", "UID", "DATASOURCE"]
