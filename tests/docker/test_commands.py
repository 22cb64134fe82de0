"""pacsim images|compose|up|status|logs|down through the argument parser cli.py wires up."""

from __future__ import annotations

import argparse
import re

import pytest
import yaml

from simulators.cli.runtime import register
from simulators.runtime.engine import remove_by_label

SCENARIO = """\
pacsim: 1
name: one archive
environment:
  target: builtin
  actors:
    legacy: {kind: archive, ae_title: LEGACY}
steps:
  - do: note
    message: nothing to do
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pacsim")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_compose_render_writes_the_file_and_settings(tmp_path, capsys):
    scenario = tmp_path / "site.yaml"
    scenario.write_text(SCENARIO)
    assert run("compose", "render", str(scenario), "-o", str(tmp_path / "out" / "compose.yml")) == 0
    services = yaml.safe_load((tmp_path / "out" / "compose.yml").read_text())["services"]
    assert set(services) == {"legacy", "target", "ris", "ehr"}
    legacy = yaml.safe_load((tmp_path / "out" / "pacsim-config" / "legacy.yaml").read_text())
    assert legacy == {"name": "legacy", "ae_title": "LEGACY"}
    target = yaml.safe_load((tmp_path / "out" / "pacsim-config" / "target.yaml").read_text())
    assert target["destinations"] == {"LEGACY": ["legacy", 11112]}


def test_up_status_logs_down(docker, tmp_path, capsys):
    scenario = tmp_path / "site.yaml"
    scenario.write_text(SCENARIO)
    run_id = None
    try:
        assert run("up", str(scenario), "--runtime", "docker", "--timeout", "90") == 0
        output = capsys.readouterr().out
        run_id = re.search(r"run (\w+): all 4 services healthy in [\d.]+s", output).group(1)
        assert run("status", "--run", run_id) == 0
        table = capsys.readouterr().out
        assert re.search(rf"{run_id}\s+legacy\s+archive\s+running\s+healthy\s+127\.0\.0\.1:\d+->11112",
                         table)
        assert run("logs", "legacy", "--run", run_id) == 0
        assert "LEGACY on 0.0.0.0:11112" in capsys.readouterr().out
        assert run("down", "--run", run_id) == 0
        assert "removed 4 container(s) and 1 network(s)" in capsys.readouterr().out
        assert run("status", "--run", run_id) == 0
        assert "no pacsim containers" in capsys.readouterr().out
    finally:
        if run_id:
            remove_by_label(docker, run_id)


def test_logs_of_an_unknown_actor_is_a_clear_error(docker):
    from simulators.errors import ConfigError

    with pytest.raises(ConfigError, match="no pacsim container runs an actor named 'nobody'"):
        run("logs", "nobody", "--run", "no-such-run")


def test_up_with_a_missing_scenario_is_invalid_input(tmp_path):
    from simulators.errors import PacsimError

    with pytest.raises(PacsimError):
        run("up", str(tmp_path / "missing.yaml"))
