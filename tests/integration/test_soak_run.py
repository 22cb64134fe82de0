"""One short real soak (benchmarks/soak.py): the built-in RIS and archive under every
kind of load for ~15 s, sampled each second and judged.

What it checks is the harness, not a verdict (15 s cannot show a leak): every traffic
kind ran without errors, the samples are this process's real figures, and the
report files hold what the run printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.soak import run_soak


@pytest.mark.slow
def test_short_soak_runs_every_kind_of_traffic_and_reports(tmp_path: Path) -> None:
    document = run_soak(0.25, modalities=6, interval=1.0, report_dir=tmp_path)
    load = document["load"]
    for kind in ("mwl.query", "modality.perform", "echo", "dicom.c-store", "dicom.n-create",
                 "dicom.c-find", "hl7.send"):
        assert load.get(kind, {}).get("count", 0) > 0, kind
        assert load[kind]["errors"] == 0, (kind, load[kind])
    web = document["dicomweb"]
    assert web["ok"].get("stow", 0) > 0 and web["ok"].get("qido", 0) > 0 and web["errors"] == {}
    assert document["archive"]["instances"] >= load["dicom.c-store"]["count"]
    samples = document["samples"]
    assert len(samples) >= 10
    assert all(s["rss_mb"] > 10 and s["open_fds"] > 3 and s["threads"] >= 2 for s in samples)
    saved = json.loads((tmp_path / "soak.json").read_text())
    assert saved["verdict"] == document["verdict"]
    assert "soak verdict:" in (tmp_path / "soak.txt").read_text()
