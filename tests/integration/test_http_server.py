"""pacsim's one HTTP server base and one JSON client, on real loopback sockets.

What must hold: a taken port is a PortInUse naming host and port; a client that
stalls cannot keep others waiting and loses its connection after the idle timeout;
the DICOMweb server, the control API and the trainer API answer errors with the same
JSON body; the client tells "nobody there", "no answer in time" and "answered an
error" apart, and rebuilds the error the body names.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from simulators.actors.ehr import Ehr, EhrConfig
from simulators.dicom.store import DicomStore
from simulators.dicomweb.server import DicomWebServer
from simulators.errors import (
    ConfigError, PacsimError, PeerUnreachable, PortInUse, ScenarioError, Timeout,
)
from simulators.events import EventBus
from simulators.http.client import Answer, JsonClient, answers
from simulators.http.problem import Refused
from simulators.http.server import JsonHttpServer, Request, Route
from simulators.runtime.control import ControlServer
from simulators.sandbox.api import TrainerApi
from simulators.cli.sandbox import load_environment
from simulators.sandbox.sandbox import Sandbox

SITE = """
environment:
  seed: 5
  target: builtin
  actors:
    ehr: {kind: ehr}
    ris: {kind: ris, ae_title: HTTP_RIS}
"""


class Echo(JsonHttpServer):
    """A tiny server with a route per kind of answer the base must produce."""

    what = "echo API"
    idle_timeout = 0.5

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("GET", "/hello"): lambda request: {"hello": request.client.split(":")[0]},
                ("POST", "/echo"): lambda request: request.body,
                ("POST", "/refuse"): self._refuse,
                ("GET", "/scenario"): self._scenario,
                ("GET", "/bug"): self._bug}

    def _refuse(self, request: Request) -> Any:
        raise Refused(409, ConfigError("no, thanks", reason="testing"), {"extra": [1, 2]})

    def _scenario(self, request: Request) -> Any:
        raise ScenarioError("unknown step", file="a.yaml", line=3, field="steps[0]")

    def _bug(self, request: Request) -> Any:
        raise ZeroDivisionError("a bug")


@pytest.fixture
def echo() -> Iterator[Echo]:
    with Echo() as server:
        yield server


def _client(server: JsonHttpServer, timeout: float = 10.0) -> JsonClient:
    host, port = server.address
    return JsonClient(f"http://{host}:{port}", timeout=timeout, name=server.what)


def _raw(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------- the server base
def test_a_taken_port_is_port_in_use_naming_host_and_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse) as raised:
            Echo("127.0.0.1", port).start()
    assert (raised.value.host, raised.value.port) == ("127.0.0.1", port)
    assert str(raised.value).startswith(f"127.0.0.1:{port} is already in use")
    assert raised.value.context["server"] == "echo API"
    assert isinstance(raised.value, ConfigError)


def test_port_0_binds_loopback_and_routes_answer_json(echo: Echo) -> None:
    assert echo.address[0] == "127.0.0.1" and echo.port > 0
    client = _client(echo)
    assert client.get("/hello") == {"hello": "127.0.0.1"}
    assert client.post("/echo", {"a": [1, "b"]}) == {"a": [1, "b"]}


def test_errors_are_one_json_body(echo: Echo) -> None:
    client = _client(echo)
    refused = client.exchange("POST", "/refuse", json_body={})
    assert refused.status == 409
    assert refused.body == {"error": {"status": 409, "type": "ConfigError",
                                      "message": "no, thanks",
                                      "context": {"reason": "testing"}}, "extra": [1, 2]}
    missing = client.exchange("GET", "/nowhere")
    assert missing.status == 404 and missing.body["error"]["type"] == "ConfigError"
    assert "GET /nowhere" in missing.body["error"]["message"]
    assert client.exchange("DELETE", "/hello").status == 405
    bug = client.exchange("GET", "/bug")
    assert bug.status == 500 and bug.body["error"]["type"] == "PacsimError"
    not_json = client.exchange("POST", "/echo", data=b"{nope")
    assert not_json.status == 400 and "not JSON" in not_json.body["error"]["message"]
    assert client.get("/hello") == {"hello": "127.0.0.1"}  # still serving


def test_the_client_rebuilds_the_error_a_body_names(echo: Echo) -> None:
    client = _client(echo)
    with pytest.raises(ConfigError) as refused:
        client.post("/refuse", {})
    assert refused.value.message == "no, thanks"
    assert refused.value.context == {"reason": "testing"}
    with pytest.raises(ScenarioError) as scenario:
        client.get("/scenario")
    assert str(scenario.value) == "a.yaml:3: steps[0]: unknown step"


def test_a_stalled_client_neither_blocks_others_nor_keeps_its_connection(echo: Echo) -> None:
    stalled = socket.create_connection(echo.address, timeout=10)
    try:
        stalled.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        # The stalled request holds one thread; everyone else is answered meanwhile.
        results: list[Any] = []
        workers = [threading.Thread(target=lambda: results.append(_client(echo).get("/hello")))
                   for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert results == [{"hello": "127.0.0.1"}] * 4
        # After the idle timeout the server gives up on it: an error answer, then EOF.
        received = b""
        while chunk := stalled.recv(4096):
            received += chunk
        assert received.startswith(b"HTTP/1.1 408")
    finally:
        stalled.close()


def test_a_keep_alive_connection_serves_several_requests(echo: Echo) -> None:
    body = b'{"n": 1}'
    one = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    last = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = _raw(echo.address, one + one + last)
    assert answer.count(b"HTTP/1.1 200") == 3


def test_an_oversized_body_is_413_and_the_connection_closes(echo: Echo) -> None:
    answer = _raw(echo.address, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % (echo.max_body + 1))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"Connection: close" in head
    assert json.loads(body)["error"]["context"]["limit"] == echo.max_body


# ---------------------------------------------------------------------- the three servers
def test_the_three_servers_answer_errors_with_the_same_body(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE, encoding="utf-8")
    ehr = Ehr(EhrConfig(), events=EventBus())
    store = DicomStore(tmp_path / "store")
    try:
        with DicomWebServer(store, events=EventBus()) as web, ControlServer(ehr) as control, \
                TrainerApi(Sandbox(load_environment(site), seed=1)) as trainer:
            bodies = {
                "dicomweb": _client(web).exchange("GET", "/dicom-web/nothing-here"),
                "control": _client(control).exchange("POST", "/v1/op/_stop", json_body={}),
                "trainer": _client(trainer).exchange("POST", "/nowhere", json_body={}),
            }
    finally:
        store.close()
    for name, answer in bodies.items():
        assert answer.status == 404, name
        error = answer.body["error"]
        assert set(error) >= {"status", "type", "message", "context"}, name
        assert (error["status"], error["type"]) == (404, "ConfigError"), name


# ---------------------------------------------------------------------- the client's failures
def test_nobody_listening_is_unreachable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    client = JsonClient(f"http://127.0.0.1:{port}", timeout=5, name="gone")
    with pytest.raises(PeerUnreachable) as raised:
        client.get("/")
    assert raised.value.context["peer"] == f"127.0.0.1:{port}"
    assert "cannot be reached" in raised.value.message
    assert answers(f"http://127.0.0.1:{port}/", timeout=5) is False


def test_a_peer_that_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        client = JsonClient(f"http://127.0.0.1:{port}", timeout=0.3, name="silent")
        with pytest.raises(Timeout) as raised:
            client.get("/")
    assert "did not answer within 0.3s" in raised.value.message


def test_a_foreign_error_answer_is_a_protocol_error_quoting_it(echo: Echo) -> None:
    # Not a pacsim error body: what a proxy or another server in the way would answer.
    client = _client(echo)
    error = client.error_of(Answer(502, None, "<html>Bad gateway</html>"))
    assert isinstance(error, PacsimError)
    assert "HTTP 502 Bad Gateway" in error.message and error.context["status"] == 502


def test_port_in_use_survives_the_wire() -> None:
    class Taken(JsonHttpServer):
        def routes(self) -> dict[tuple[str, str], Route]:
            return {("GET", "/"): self._fail}

        def _fail(self, request: Request) -> Any:
            raise Refused(409, PortInUse("10.0.0.1:104 is already in use",
                                         host="10.0.0.1", port=104))

    with Taken() as server:
        with pytest.raises(PortInUse) as raised:
            _client(server).get("/")
    assert (raised.value.host, raised.value.port) == ("10.0.0.1", 104)
    assert str(raised.value) == "10.0.0.1:104 is already in use"


def test_a_stalled_stow_upload_is_408_and_one_failed_exchange(tmp_path: Path) -> None:
    events = EventBus()
    seen: list[Any] = []
    events.subscribe(seen.append)
    store = DicomStore(tmp_path / "store")
    try:
        web = DicomWebServer(store, events=events)
        web.idle_timeout = 0.5
        with web, socket.create_connection(web.address, timeout=10) as stalled:
            stalled.sendall(b"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n"
                            b'Content-Type: multipart/related; type="application/dicom"; '
                            b"boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\n")
            received = b""
            while chunk := stalled.recv(4096):
                received += chunk
            assert received.startswith(b"HTTP/1.1 408")
            assert _client(web).exchange("GET", "/dicom-web/studies").status == 200
    finally:
        store.close()
    stow = [event for event in seen if event.kind == "dicomweb.stow"]
    assert [(event.outcome, event.status) for event in stow] == [("failed", "408")]
