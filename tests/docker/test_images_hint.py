"""An image build whose base cannot be fetched suggests --local-base (issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulators.errors import ConfigError
from simulators.runtime.images import OFFLINE_HINT, _build


def test_a_base_image_that_cannot_be_fetched_suggests_local_base(docker: Any,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        _build(docker, tmp_path, "pacsim/dockertest-hint:none",
               "pacsim/no-such-base-anywhere:none", progress=lambda _line: None)
    assert OFFLINE_HINT in str(caught.value)
    with pytest.raises(ConfigError) as again:  # already building on local bases: no hint
        _build(docker, tmp_path, "pacsim/dockertest-hint:none",
               "pacsim/no-such-base-anywhere:none", progress=lambda _line: None, hint=False)
    assert OFFLINE_HINT not in str(again.value)
