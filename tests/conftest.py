"""Fixtures shared by every test; the helper functions live in tests/helpers.py."""

from __future__ import annotations

import pytest

from tests.helpers import free_port


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()
