"""Layered actor settings: defaults < file < env < flags, and loud errors for typos."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulators.config import build_config
from simulators.errors import ConfigError


@dataclass
class Sample:
    name: str = "sample"
    port: int = 0
    verbose: bool = False
    allowed: frozenset[str] = field(default_factory=frozenset)
    peer: tuple[str, int] | None = None
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)


def test_layers_apply_in_order(tmp_path: Path) -> None:
    file = tmp_path / "actor.yaml"
    file.write_text("name: from-file\nport: 104\nallowed: [CT1, MR1]\npeer: [pacs, 11112]\n"
                    "destinations: {STORESCP: [127.0.0.1, 4242]}\n")
    config = build_config(Sample, file=file, environ={"PACSIM_PORT": "2104", "PACSIM_VERBOSE": "yes"},
                          overrides={"name": "from-flag"})
    assert config == Sample(name="from-flag", port=2104, verbose=True,
                            allowed=frozenset({"CT1", "MR1"}), peer=("pacs", 11112),
                            destinations={"STORESCP": ("127.0.0.1", 4242)})


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    file = tmp_path / "typo.yaml"
    file.write_text("name: x\n\nprot: 104\n")
    with pytest.raises(ConfigError) as err:
        build_config(Sample, file=file, environ={})
    assert f"{file}:3: prot: unknown setting" in str(err.value)


def test_wrong_type_is_reported_with_its_line(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("port: one-o-four\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:1: port: cannot use 'one-o-four'"):
        build_config(Sample, file=file, environ={})


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("name: x\nport: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        build_config(Sample, file=file, environ={})
    assert err.value.context["file"] == str(file)
    assert err.value.context["line"] >= 2


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_config(Sample, file=tmp_path / "absent.yaml", environ={})


def test_archive_lenient_uids_comes_from_yaml_and_the_environment(tmp_path: Path) -> None:
    """A legacy archive keeps malformed UIDs only when its config says so (issue 13)."""
    from simulators.actors.archive import ArchiveConfig

    assert build_config(ArchiveConfig, environ={}).lenient_uids is False
    file = tmp_path / "legacy.yaml"
    file.write_text("lenient_uids: true\n", encoding="utf-8")
    assert build_config(ArchiveConfig, file=file, environ={}).lenient_uids is True
    assert build_config(ArchiveConfig, environ={"PACSIM_LENIENT_UIDS": "no"}).lenient_uids is False
    with pytest.raises(ConfigError):
        ArchiveConfig(lenient_uids="yes")  # type: ignore[arg-type]
