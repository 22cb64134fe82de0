"""A failed C-MOVE says which AE, host and port to register on the target (issue 18)."""

from __future__ import annotations

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.cli import main


def test_probe_cmove_to_an_unregistered_destination_names_what_to_register(tmp_path,
                                                                           capsys) -> None:
    # An archive that knows no C-MOVE destination: it answers 0xA801.
    with Archive(ArchiveConfig(ae_title="SITE_PACS")) as archive:
        code = main(["probe", "--target", f"SITE_PACS@127.0.0.1:{archive.port}", "--once",
                     "--probes", "store_to_queryable,load_cmove", "--move-port", "0",
                     "--ae-title", "QA_PROBE", "--store", str(tmp_path / "store")])
    out = capsys.readouterr().out
    assert code == 1, out
    line = next(line for line in out.splitlines() if line.strip().startswith("load_cmove:"))
    assert "0xA801" in line and "register AE" in line and "on the target" in line, line
    assert "127.0.0.1:" in line  # the host and port of the probe's storage SCP
