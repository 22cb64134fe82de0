"""The main job (`pacsim demo`): one scheduled exam end to end, for every modality type."""

from __future__ import annotations

import io

import pytest

from simulators.cli.demo import run_demo


@pytest.mark.parametrize("modality", ["CT", "MR", "CR", "DX", "MG", "US"])
def test_demo_workflow_passes_for_each_modality(modality: str) -> None:
    out = io.StringIO()
    code = run_demo(seed=7, modality=modality, out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "8 passed, 0 failed" in text
    # the narration shows each IHE transaction on the wire, from both sides
    for kind in ("hl7.send", "dicom.c-find", "dicom.n-create", "dicom.c-store",
                 "dicom.n-action", "dicom.n-event-report", "dicom.n-set"):
        assert kind in text, kind
