"""The optional monitoring services: rendered, checked in, accepted by the real tools.

Prometheus and Grafana images cannot be pulled here, so the checks are what the
real tools say about the files: ``docker-compose config`` (1.29, with and without
the profile), ``promtool check config``, the probe's command line parsed by the real
CLI, and every metric the dashboard queries registered by the prober.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from simulators.cli import build_parser
from simulators.kpi.dashboard import metric_names
from simulators.kpi.metrics import ProbeMetrics
from simulators.kpi.monitoring import PROFILE
from simulators.kpi.result import OK, ProbeResult
from simulators.runtime.compose import MONITORING_FILE, render, render_monitoring, write
from simulators.runtime.topology import plan
from simulators.scenario import load_scenario
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "compose" / "mirrored-site.yaml"
MONITORING = {"pacsim-probe", "prometheus", "grafana"}


def rendered() -> tuple[dict, dict[str, str]]:
    text, files = render_monitoring(plan(load_scenario(SCENARIO).environment),
                                    title="compose/mirrored-site.yaml")
    return yaml.safe_load(text), {MONITORING_FILE: text, **files}


def test_monitoring_services_are_optional_local_and_overridable() -> None:
    document, files = rendered()
    services = document["services"]
    assert MONITORING <= set(services)
    for name in MONITORING:
        service = services[name]
        assert service["profiles"] == [PROFILE]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        for volume in service.get("volumes", []):
            assert volume.endswith(":ro") and volume.split(":")[0].lstrip("./") in \
                {"prometheus/prometheus.yml", "grafana/provisioning", "grafana/dashboards"}
    assert set(services) == MONITORING
    site = yaml.safe_load(render(plan(load_scenario(SCENARIO).environment))[0])["services"]
    assert not set(site) & MONITORING  # the site file itself is unchanged
    for dependency in services["pacsim-probe"]["depends_on"]:
        assert dependency in site
    assert services["prometheus"]["image"].startswith("${PACSIM_PROMETHEUS_IMAGE:-prom/prometheus")
    assert services["grafana"]["image"].startswith("${PACSIM_GRAFANA_IMAGE:-grafana/grafana")
    scrape = yaml.safe_load(files["prometheus/prometheus.yml"])["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["pacsim-probe:9464"]


def test_probe_service_command_is_a_valid_pacsim_probe_invocation() -> None:
    document, _ = rendered()
    command = document["services"]["pacsim-probe"]["command"]
    args = build_parser().parse_args(command)
    assert args.target == "ORTHANC@orthanc:4242" and args.every == 300
    assert args.worklist == "PACSIM_RIS@ris:11112" and args.hl7 == "ris:2575"
    assert args.metrics == "0.0.0.0:9464" and args.orthanc_rest == "http://orthanc:8042"


def test_checked_in_monitoring_files_match_the_renderer() -> None:
    _, files = rendered()
    for relative in (MONITORING_FILE, "prometheus/prometheus.yml", "grafana/dashboards/pacsim-golive.json",
                     "grafana/provisioning/datasources/pacsim.yaml",
                     "grafana/provisioning/dashboards/pacsim.yaml"):
        assert (ROOT / "compose" / relative).read_text() == files[relative], relative


def test_dashboard_queries_only_metrics_the_prober_exports() -> None:
    metrics = ProbeMetrics()
    metrics.observe(ProbeResult("load_cget", "t", OK, 0.2, figures={
        "bytes": 1e6, "first_byte_seconds": 0.05, "mb_per_s": 5.0}))
    exported = {sample.name for family in metrics.registry.collect()
                for sample in family.samples}
    dashboard = json.loads((ROOT / "compose/grafana/dashboards/pacsim-golive.json").read_text())
    used = metric_names(dashboard)
    assert used and used <= exported, used - exported
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("up", "echo", "worklist", "order to worklist", "store to queryable",
                  "image load", "throughput", "failures"):
        assert topic in titles


@pytest.mark.prometheus
def test_promtool_accepts_the_prometheus_config() -> None:
    tools = require_tool("promtool")
    check = subprocess.run([tools["promtool"], "check", "config",
                            str(ROOT / "compose/prometheus/prometheus.yml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.docker
def test_docker_compose_config_accepts_both_profiles(tmp_path: Path) -> None:
    require_tool("docker-compose")
    write(plan(load_scenario(SCENARIO).environment), tmp_path / "docker-compose.yml",
          monitoring=True)
    both = ["-f", "docker-compose.yml", "-f", MONITORING_FILE]

    def compose(*args: str) -> str:
        result = subprocess.run(["docker-compose", *args], cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    compose("config", "-q")
    compose(*both, "config", "-q")
    compose(*both, "--profile", PROFILE, "config", "-q")
    assert compose(*both, "config", "--profiles").split() == [PROFILE]
    merged = yaml.safe_load(compose(*both, "--profile", PROFILE, "config"))
    site = yaml.safe_load(compose("config"))
    assert set(merged["services"]) == set(site["services"]) | MONITORING
    # docker-compose resolved the relative mounts to the files written beside it.
    mounts = {m["source"] if isinstance(m, dict) else m.split(":")[0]
              for m in merged["services"]["prometheus"]["volumes"]}
    assert mounts == {str(tmp_path / "prometheus" / "prometheus.yml")}
    assert (tmp_path / "grafana/dashboards/pacsim-golive.json").exists()


def test_compose_render_monitoring_flag_writes_the_monitoring_files(tmp_path: Path) -> None:
    from simulators.cli import main

    output = tmp_path / "site" / "docker-compose.yml"
    assert main(["compose", "render", str(SCENARIO), "-o", str(output), "--monitoring"]) == 0
    monitoring = yaml.safe_load((output.parent / MONITORING_FILE).read_text())
    assert MONITORING <= set(monitoring["services"])
    assert (output.parent / "prometheus" / "prometheus.yml").exists()
    assert main(["compose", "render", str(SCENARIO), "-o", str(tmp_path / "plain.yml")]) == 0
    assert not (tmp_path / MONITORING_FILE).exists()
