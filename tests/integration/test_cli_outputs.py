"""The CLI dialect's outputs on real runs: ``--report-dir``, ``--json -`` and ``hl7 send``.

tests/unit/test_cli_dialect.py checks the parser; these check what the options *do*
against real peers: a conformance run against the built-in target, a scenario run,
and HL7 files sent over MLLP to a running RIS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.actors.registry import build_actor
from simulators.cli import main
from simulators.cli.hl7 import read_messages
from simulators.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "hl7"


def test_faults_run_writes_its_reports_into_report_dir_and_json_to_stdout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "matrix"
    code = main(["faults", "run", "--target", "builtin", "--only", "mpps.create-missing-type1",
                 "--report-dir", str(folder), "--json", "-"])
    assert code == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)  # stdout is the JSON alone: the text matrix went to stderr
    assert rows == json.loads((folder / "matrix.json").read_text(encoding="utf-8"))
    assert "mpps.create-missing-type1" in err
    assert (folder / "junit.xml").read_text(encoding="utf-8").startswith("<?xml")
    assert "<html" in (folder / "matrix.html").read_text(encoding="utf-8").lower()


def test_run_json_dash_keeps_stdout_pure_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(ROOT / "scenarios" / "golden-path-ct.yaml"), "--json", "-"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["passed"] is True and len(report["runs"]) == 1
    assert "PASS" in err  # the console report is still shown, on stderr


def test_hl7_send_feeds_a_running_ris_and_reports_each_ack(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(EXAMPLES.glob("*.hl7"))
    assert [f.name for f in files] == ["adt-a01-admit.hl7", "orm-o01-ct-chest.hl7"]
    with build_actor("ris", port=0, ae_title="RIS_TEST", extra={"hl7_port": 0}) as ris:
        host, port = ris.hl7_address
        assert main(["hl7", "send", *map(str, files), "--to", f"{host}:{port}"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split(": ", 1)[1] for line in lines] == ["ADT^A01 -> AA", "ORM^O01 -> AA"]
        assert [o.accession for o in ris.orders()] == ["AC0420000000"]

        # an order without OBR is refused by the RIS: exit 1, the code printed
        broken = tmp_path / "no-obr.hl7"
        broken.write_text("\n".join(line for line in files[1].read_text().splitlines()
                                    if not line.startswith("OBR")), encoding="utf-8")
        assert main(["hl7", "send", str(broken), "--to", f"{host}:{port}"]) == 1
        assert capsys.readouterr().out.strip().endswith("ORM^O01 -> AR")


def test_hl7_send_refuses_a_file_that_is_not_hl7_before_connecting(tmp_path: Path) -> None:
    junk = tmp_path / "junk.hl7"
    junk.write_text("PID|1||X\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="first segment must be MSH"):
        read_messages(junk)
    empty = tmp_path / "empty.hl7"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no HL7 message"):
        read_messages(empty)
    two = tmp_path / "two.hl7"
    two.write_text("MSH|^~\\&|A\r\nPID|1\r\n\r\nMSH|^~\\&|B\nPID|2\n", encoding="utf-8")
    assert read_messages(two) == ["MSH|^~\\&|A\rPID|1", "MSH|^~\\&|B\rPID|2"]
    # nothing listens on port 9 of 127.0.0.1: a bad file is still reported first
    assert main(["hl7", "send", str(junk), "--to", "127.0.0.1:9"]) == 2
