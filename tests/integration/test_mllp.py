"""MLLP server and clients over real loopback sockets, with python-hl7 as a second peer.

Every robustness case ends the same way: a fresh, well-formed message must still
get its AA from the same server, proving a broken peer never stops the listener.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Callable

import hl7
import hl7.mllp
import pytest

from simulators.errors import MllpError
from simulators.events import EventBus, Exchange
from simulators.hl7.ack import ack
from simulators.hl7.er7 import Hl7Error, ack_code, err_code, msa_field, read_header
from simulators.hl7.framing import FrameDecoder, encode_frame
from simulators.hl7.messages import adt, parse, patient_from_message
from simulators.hl7.mllp import AsyncMllpClient, MllpClient, MllpServer
from tests.unit.test_hl7_messages import sample_patient

DEADLINE = 5.0  # seconds any single wait in this file may take


class Recorder:
    """Handler that keeps every message and answers AA (or raises on request); a "SLOW"
    message sets ``holding`` and is answered only once ``release`` is set."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.lock = threading.Lock()
        self.holding, self.release = threading.Event(), threading.Event()

    def __call__(self, text: str) -> str:
        with self.lock:
            self.messages.append(text)
        if "BOOM" in text:
            raise RuntimeError("handler bug")
        if "REJECTME" in text:
            raise Hl7Error("unsupported message type", hl7_code=200, location="MSH^1^9")
        if "SLOW" in text:
            self.holding.set()
            self.release.wait(3 * DEADLINE)  # longer than any client here waits
        return ack(text, "AA")


@pytest.fixture
def events() -> tuple[EventBus, list[Exchange]]:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    return bus, seen


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder, events: tuple[EventBus, list[Exchange]]) -> Iterator[MllpServer]:
    with MllpServer(recorder, max_frame=64 * 1024, read_timeout=0.5, events=events[0]) as srv:
        yield srv


def message(marker: str = "") -> str:
    text = adt("A01", sample_patient())
    return text + (f"\rNTE|1||{marker}" if marker else "")


def assert_still_serving(server: MllpServer) -> None:
    with MllpClient(*server.address, timeout=DEADLINE) as client:
        assert ack_code(client.send(message())) == "AA"


def read_reply(sock: socket.socket) -> str | None:
    """One whole reply frame from a raw socket; None if the server closed."""
    decoder = FrameDecoder()
    sock.settimeout(DEADLINE)
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        frames = decoder.feed(data).frames
        if frames:
            return frames[0].decode()


def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# -- normal traffic ------------------------------------------------------------------
def test_many_messages_on_one_connection(server: MllpServer, recorder: Recorder,
                                         events: tuple[EventBus, list[Exchange]]) -> None:
    sent = [message() for _ in range(50)]
    with MllpClient(*server.address, timeout=DEADLINE, events=events[0]) as client:
        replies = [client.send(text) for text in sent]
    assert [ack_code(r) for r in replies] == ["AA"] * 50
    assert [msa_field(r, 2) for r in replies] == [read_header(t).control_id for t in sent]
    assert recorder.messages == sent
    received = [e for e in events[1] if e.kind == "hl7.receive"]
    assert len(received) == 50 and {e.status for e in received} == {"AA"}
    assert len({e.peer for e in received}) == 1  # one connection carried them all
    sends = [e for e in events[1] if e.kind == "hl7.send"]
    assert len(sends) == 50 and {e.status for e in sends} == {"AA"}
    assert sends[0].peer == "%s:%d" % server.address


def test_frames_split_across_writes_and_batched_in_one_write(server: MllpServer) -> None:
    first, second = message(), message()
    data = encode_frame(first)
    with socket.create_connection(server.address, timeout=DEADLINE) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(data), 7):
            sock.sendall(data[start:start + 7])
            time.sleep(0.002)
        assert msa_field(read_reply(sock) or "", 2) == read_header(first).control_id
        sock.sendall(encode_frame(second) + encode_frame(first))
        decoder, frames = FrameDecoder(), []
        while len(frames) < 2:
            frames += decoder.feed(sock.recv(65536)).frames
    assert [msa_field(f.decode(), 2) for f in frames] == \
        [read_header(second).control_id, read_header(first).control_id]


def test_lf_separated_message_reaches_handler_with_cr(server: MllpServer,
                                                      recorder: Recorder) -> None:
    text = message()
    with socket.create_connection(server.address, timeout=DEADLINE) as sock:
        sock.sendall(b"\x0b" + text.replace("\r", "\r\n").encode() + b"\r\n\x1c\r")
        assert ack_code(read_reply(sock) or "") == "AA"
    assert recorder.messages[-1] == text


def test_non_ascii_names_cross_the_wire(server: MllpServer, recorder: Recorder) -> None:
    patient = sample_patient(family="Þórsdóttir", given="Ása")
    with MllpClient(*server.address, timeout=DEADLINE) as client:
        assert ack_code(client.send(adt("A01", patient))) == "AA"
    assert patient_from_message(parse(recorder.messages[-1])) == patient


def test_slow_handler_does_not_block_other_connections(server: MllpServer,
                                                       recorder: Recorder) -> None:
    """The slow message's handler is held until the test lets it go, so the fast message
    can get its AA meanwhile only if handlers run side by side: behind the slow one it
    would time out (DEADLINE) before the hold ends (3 x DEADLINE). Ordering, no stopwatch."""
    slow_done = threading.Event()

    def slow() -> None:
        with MllpClient(*server.address, timeout=DEADLINE) as client:
            client.send(message("SLOW"))
        slow_done.set()

    worker = threading.Thread(target=slow)
    worker.start()
    try:
        assert recorder.holding.wait(DEADLINE)  # the slow handler runs, and is held
        assert_still_serving(server)
        assert not slow_done.is_set()  # the fast AA came while the slow one was held
    finally:
        recorder.release.set()
    worker.join(DEADLINE)
    assert slow_done.is_set()


def test_async_client_many_connections_many_messages(server: MllpServer,
                                                     recorder: Recorder) -> None:
    async def one_client(count: int) -> list[str]:
        async with AsyncMllpClient(*server.address, timeout=DEADLINE) as client:
            return [ack_code(await client.send(message())) for _ in range(count)]

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(one_client(10) for _ in range(8)))

    results = asyncio.run(main())
    assert results == [["AA"] * 10] * 8
    assert len(recorder.messages) == 80


# -- errors become ACKs ------------------------------------------------------------
def test_handler_exception_becomes_ae_with_err_207(server: MllpServer,
                                                   events: tuple[EventBus, list[Exchange]]) -> None:
    with MllpClient(*server.address, timeout=DEADLINE) as client:
        reply = client.send(message("BOOM"))
        assert (ack_code(reply), err_code(reply)) == ("AE", 207)
        assert ack_code(client.send(message())) == "AA"  # same connection still open
    failed = [e for e in events[1] if e.kind == "hl7.receive" and e.status == "AE"]
    assert len(failed) == 1 and failed[0].outcome == "failed"


def test_hl7_error_from_handler_picks_ar_and_code(server: MllpServer) -> None:
    with MllpClient(*server.address, timeout=DEADLINE) as client:
        reply = client.send(message("REJECTME"))
    assert (ack_code(reply), err_code(reply)) == ("AR", 200)


def test_message_without_msh_still_gets_a_nack(server: MllpServer) -> None:
    def refuse_unparseable(text: str) -> str:
        parse(text)
        return ack(text, "AA")

    with MllpServer(refuse_unparseable) as strict, \
            MllpClient(*strict.address, timeout=DEADLINE) as client:
        reply = client.send("PID|1||X")
    assert (ack_code(reply), err_code(reply)) == ("AE", 100)


# -- robustness --------------------------------------------------------------------
def test_garbage_between_frames_is_discarded(server: MllpServer) -> None:
    with socket.create_connection(server.address, timeout=DEADLINE) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n\x00\xff" * 10)
        sock.sendall(encode_frame(message()))
        assert ack_code(read_reply(sock) or "") == "AA"
    assert_still_serving(server)


def test_truncated_frame_then_disconnect(server: MllpServer) -> None:
    data = encode_frame(message())
    with socket.create_connection(server.address, timeout=DEADLINE) as sock:
        sock.sendall(data[: len(data) // 2])
    assert wait_for(lambda: server.connection_count == 0)
    assert_still_serving(server)


def test_oversize_frame_closes_only_that_connection(server: MllpServer) -> None:
    with socket.create_connection(server.address, timeout=DEADLINE) as sock:
        try:
            sock.sendall(b"\x0bMSH|^~\\&|" + b"X" * (server.max_frame + 10_000))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close while we are still writing
        try:
            assert read_reply(sock) is None  # closed, no reply
        except ConnectionResetError:
            pass
    assert_still_serving(server)


def test_stalled_frame_times_out(server: MllpServer, caplog: pytest.LogCaptureFixture) -> None:
    """The server closes a stalled frame because of its 0.5 s read timeout: the close
    comes (read_reply's None, before the socket's own DEADLINE), the server says why,
    and not before the timeout (lower bound). No ceiling: a busy machine closes later."""
    with caplog.at_level(logging.WARNING, logger="simulators.hl7.mllp"):
        with socket.create_connection(server.address, timeout=DEADLINE) as sock:
            sock.sendall(b"\x0bMSH|^~\\&|half a message")
            began = time.monotonic()
            assert read_reply(sock) is None
            waited = time.monotonic() - began
    assert waited > 0.3, waited  # read_timeout is 0.5s
    assert any("not completed in 0.5s" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]
    assert_still_serving(server)


def test_idle_connection_between_messages_is_kept(server: MllpServer) -> None:
    with MllpClient(*server.address, timeout=DEADLINE) as client:
        assert ack_code(client.send(message())) == "AA"
        time.sleep(0.8)  # longer than read_timeout, but no frame is pending
        assert ack_code(client.send(message())) == "AA"
    assert server.connection_count <= 1


# -- client behaviour against hostile servers ------------------------------------------
def raw_server(behaviour: Callable[[socket.socket], None]) -> tuple[socket.socket, threading.Thread]:
    """A bare TCP server running ``behaviour`` for each accepted connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(DEADLINE)

    def serve() -> None:
        for _ in range(5):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                behaviour(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def read_frame_from(conn: socket.socket) -> str:
    decoder = FrameDecoder()
    conn.settimeout(DEADLINE)
    while True:
        frames = decoder.feed(conn.recv(65536)).frames
        if frames:
            return frames[0].decode()


def test_client_reads_an_ack_split_over_several_segments() -> None:
    def split_reply(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = encode_frame(ack(read_frame_from(conn), "AA"))
        for start in range(0, len(data), 5):
            conn.sendall(data[start:start + 5])
            time.sleep(0.005)

    listener, _ = raw_server(split_reply)
    with listener, MllpClient(*listener.getsockname()[:2], timeout=DEADLINE) as client:
        text = message()
        reply = client.send(text)
    assert ack_code(reply) == "AA"
    assert msa_field(reply, 2) == read_header(text).control_id


def test_client_reconnects_once_when_server_closed_kept_connection() -> None:
    def one_reply_then_close(conn: socket.socket) -> None:
        conn.sendall(encode_frame(ack(read_frame_from(conn), "AA")))

    listener, _ = raw_server(one_reply_then_close)
    with listener, MllpClient(*listener.getsockname()[:2], timeout=DEADLINE) as client:
        codes = []
        for _ in range(3):
            codes.append(ack_code(client.send(message())))
            time.sleep(0.05)  # let the server's close arrive
    assert codes == ["AA", "AA", "AA"]


def test_client_times_out_on_a_silent_server() -> None:
    """The server keeps the connection open and silent until the test lets go, so the
    client raising while it still does can only be its own 0.3 s timeout (a client
    waiting on would see the close, after DEADLINE); it did wait that long."""
    release, closed = threading.Event(), threading.Event()

    def never_answer(conn: socket.socket) -> None:
        read_frame_from(conn)
        release.wait(DEADLINE)
        closed.set()

    listener, _ = raw_server(never_answer)
    try:
        with listener, MllpClient(*listener.getsockname()[:2], timeout=0.3) as client:
            began = time.monotonic()
            with pytest.raises(MllpError, match="no complete reply"):
                client.send(message())
            waited = time.monotonic() - began
            assert not closed.is_set()  # raised while the server still held on
    finally:
        release.set()
    assert waited >= 0.3


def test_client_refused_raises_mllp_error(port: int) -> None:
    with pytest.raises(MllpError, match="cannot connect"):
        MllpClient("127.0.0.1", port, timeout=1.0).send(message())


# -- python-hl7 as the second library ----------------------------------------------------
def test_python_hl7_client_talks_to_our_server(server: MllpServer, recorder: Recorder) -> None:
    sent = [message() for _ in range(5)]

    async def talk() -> list[hl7.Message]:
        reader, writer = await hl7.mllp.open_hl7_connection(*server.address, encoding="utf-8")
        replies = []
        try:
            for text in sent:
                writer.writemessage(hl7.parse(text))
                await writer.drain()
                replies.append(await asyncio.wait_for(reader.readmessage(), DEADLINE))
        finally:
            writer.close()
            await writer.wait_closed()
        return replies

    replies = asyncio.run(talk())
    assert [str(r.segment("MSA")[1]) for r in replies] == ["AA"] * 5
    assert [str(r.segment("MSA")[2]) for r in replies] == \
        [read_header(t).control_id for t in sent]
    assert len(recorder.messages) == 5


def test_our_client_talks_to_python_hl7_server() -> None:
    received: list[str] = []
    ready = threading.Event()
    state: dict[str, object] = {}

    async def handle(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while True:
                incoming = await reader.readmessage()
                received.append(str(incoming))
                writer.writemessage(incoming.create_ack("AA"))
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    async def serve() -> None:
        server = await hl7.mllp.start_hl7_server(handle, "127.0.0.1", 0, encoding="utf-8")
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = asyncio.Event()
        ready.set()
        async with server:
            await state["stop"].wait()  # type: ignore[union-attr]

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(DEADLINE)
    try:
        sent = [message() for _ in range(5)]
        with MllpClient("127.0.0.1", state["port"], timeout=DEADLINE) as client:  # type: ignore[arg-type]
            replies = [client.send(text) for text in sent]
    finally:
        loop.call_soon_threadsafe(state["stop"].set)  # type: ignore[union-attr]
        thread.join(DEADLINE)
    assert [ack_code(r) for r in replies] == ["AA"] * 5
    assert [msa_field(r, 2) for r in replies] == [read_header(t).control_id for t in sent]
    assert len(received) == 5


def test_stop_closes_open_connections_and_is_idempotent(recorder: Recorder) -> None:
    server = MllpServer(recorder)
    server.start()
    server.start()
    with socket.create_connection(server.address, timeout=DEADLINE) as sock:
        sock.sendall(encode_frame(message()))
        assert ack_code(read_reply(sock) or "") == "AA"
        server.stop()
        server.stop()
        assert read_reply(sock) is None  # the server closed our kept connection
    with pytest.raises(MllpError):
        server.address
