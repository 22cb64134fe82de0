"""How the HTTP listeners (DICOMweb, control API) report a request that failed."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest

from simulators.http.server import _Listener


def test_client_gone_is_not_a_traceback_but_a_bug_is_logged(
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Regression (socket fuzzer, issue 13): a client closing before reading its answer
    printed a BrokenPipeError traceback to stderr per request, and real handler bugs
    bypassed logging (so the fuzzer's crash check could not see them)."""
    listener = _Listener(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        with caplog.at_level("DEBUG", logger="simulators.http.server"):
            for gone in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")):
                try:
                    raise gone
                except ConnectionError:
                    listener.handle_error(None, ("127.0.0.1", 1))
            try:
                raise RuntimeError("handler bug")
            except RuntimeError:
                listener.handle_error(None, ("127.0.0.1", 2))
    finally:
        listener.server_close()
    assert "Traceback" not in capfd.readouterr().err
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info and errors[0].exc_info[0] is RuntimeError
