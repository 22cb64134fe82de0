"""Shared test helpers: free ports and external tools that must exist in CI.

A test that needs DCMTK, dicom3tools or Orthanc skips with a clear reason on a
developer machine without them, but *fails* when ``CI=true``: CI installs them, so a
skip there would hide a broken install step.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(*names: str) -> dict[str, str]:
    """Return the paths of command-line tools, skipping (or failing in CI) if absent."""
    found: dict[str, str] = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            message = f"{name} is not installed (apt-get install dcmtk dicom3tools orthanc)"
            if in_ci():
                pytest.fail(f"CI=true but {message}")
            pytest.skip(message)
        found[name] = path
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (never hard-code ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

