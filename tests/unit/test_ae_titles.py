"""AE titles follow PS3.5 everywhere a user gives one (issue 18): 1-16 characters, no
backslash (the VR's value separator), no control characters."""

from __future__ import annotations

import pytest

from simulators.actors.registry import build_actor
from simulators.cli import main
from simulators.common.fields import ae_title_problem
from simulators.dicom.address import parse_ae_address
from simulators.errors import ConfigError


@pytest.mark.parametrize("title", ["PACS", "MY PACS", "A-B_C.D", "X" * 16])
def test_valid_titles_pass(title: str) -> None:
    assert ae_title_problem(title) is None


@pytest.mark.parametrize(("title", "word"), [
    ("A\\B", "backslash"), ("A\tB", "control"), ("A\x00", "control"), ("", "1 to 16"),
    ("    ", "1 to 16"), ("X" * 17, "1 to 16")])
def test_invalid_titles_say_why(title: str, word: str) -> None:
    assert word in (ae_title_problem(title) or "")


def test_target_address_with_a_backslash_is_refused() -> None:
    with pytest.raises(ConfigError, match="backslash"):
        parse_ae_address("NEW\\PACS@127.0.0.1:104", "--target")


def test_an_actors_ae_title_is_checked_from_flags_and_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="backslash"):
        build_actor("archive", ae_title="ARC\\1")
    settings = tmp_path / "arc.yaml"
    settings.write_text('ae_title: "ARC\\u0007"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="control characters"):
        build_actor("archive", config_file=settings)


def test_serve_with_a_bad_ae_title_exits_2(capsys) -> None:
    assert main(["serve", "archive", "--port", "0", "--ae-title", "ARC\\1"]) == 2
    assert "backslash" in capsys.readouterr().err
