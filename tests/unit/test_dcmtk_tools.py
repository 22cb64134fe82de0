"""DCMTK peers are found by absolute path and checked by ``--version`` (issue 19 item 6).

In the venv pynetdicom's console scripts (``findscu``, ``storescu``...) come first on
``PATH``; a benchmark or test that meant DCMTK must not run them. These tests use
fake executables, so they need no DCMTK installed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from simulators.errors import ConfigError
from simulators.peers import dcmtk


def _script(folder: Path, name: str, version_text: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{version_text}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    dcmtk.find_dcmtk_tool.cache_clear()
    yield
    dcmtk.find_dcmtk_tool.cache_clear()


def test_a_shadowing_non_dcmtk_tool_first_on_path_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shadow, real = tmp_path / "venv", tmp_path / "dcmtk"
    shadow.mkdir(), real.mkdir()
    _script(shadow, "pacsim-fake-scu", "pacsim-fake-scu: pynetdicom app 2.1")
    genuine = _script(real, "pacsim-fake-scu", "$dcmtk: pacsim-fake-scu v3.6.7 2022-04-22 $")
    monkeypatch.setattr(dcmtk, "DCMTK_DIRS", ())
    monkeypatch.delenv("PACSIM_DCMTK_BIN", raising=False)
    monkeypatch.setenv("PATH", f"{shadow}{os.pathsep}{real}")
    assert dcmtk.find_dcmtk_tool("pacsim-fake-scu") == str(genuine)
    assert dcmtk.dcmtk_argv(["pacsim-fake-scu", "-v"]) == [str(genuine), "-v"]
    assert not dcmtk.is_dcmtk(str(shadow / "pacsim-fake-scu"))


def test_only_a_shadow_means_no_dcmtk_tool_and_a_named_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _script(tmp_path, "pacsim-fake-scu", "usage: pacsim-fake-scu [options] addr port")
    monkeypatch.setattr(dcmtk, "DCMTK_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    assert dcmtk.find_dcmtk_tool("pacsim-fake-scu") is None
    with pytest.raises(ConfigError) as raised:
        dcmtk.dcmtk_tool("pacsim-fake-scu")
    assert raised.value.context["tool"] == "pacsim-fake-scu"


def test_pacsim_dcmtk_bin_is_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = _script(tmp_path, "pacsim-fake-scu", "OFFIS DICOM toolkit, pacsim-fake-scu")
    monkeypatch.setenv("PACSIM_DCMTK_BIN", str(tmp_path))
    monkeypatch.setenv("PATH", "")
    assert dcmtk.find_dcmtk_tool("pacsim-fake-scu") == str(chosen)
