"""
Connections over the daemon's real Unix socket that misbehave or outlive their answer: an event
subscriber that stops reading, a request whose body is never read, and clients still connected
when the daemon shuts down. Each ends promptly and quietly.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from conftest import Running
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from test_lifecycle import daemon_env, daemon_process

from shiptrackd.api.server import Listeners, build_app, serve, serve_tcp
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio


def noisy(lines: list[str]) -> list[str]:
    """The log lines that would page someone or flood the journal: tracebacks and errors."""
    return [line for line in lines if "Traceback" in line or line.startswith(("ERROR", "CRITICAL"))]


async def read_head(stream: SocketStream) -> tuple[bytes, bytes]:
    """An HTTP answer's head, and whatever of the body came with it."""
    data = b""
    with anyio.fail_after(5):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


async def read_to_eof(stream: SocketStream, timeout_s: float) -> bytes:
    """Everything until the daemon closes the connection; fails if it has not within *timeout_s*."""
    data = b""
    with anyio.fail_after(timeout_s):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


async def test_a_subscriber_that_stops_reading_is_dropped_with_one_line_and_its_answer_ends(
    running: Running, logs: list[str]
) -> None:
    """A /v1/events client that stops reading is cut off: one log line, no traceback, its answer ends and closes."""
    bus = running.daemon.bus
    stream = await anyio.connect_unix(running.config.daemon.socket)
    async with stream:
        await stream.send(b"GET /v1/events?heartbeat=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await read_head(stream)
        assert head.startswith(b"HTTP/1.1 200")
        pad = "x" * 4000  # fills the socket buffers in a few hundred events, then the bus's 1000
        with anyio.fail_after(20):
            while not any("event stream dropped" in line for line in logs):
                for _ in range(50):
                    bus.publish("test.flood", pad=pad)
                await anyio.sleep(0.01)
        rest = await read_to_eof(stream, 10)  # the client reads again: the answer ends, the connection closes
    assert rest.endswith(b"0\r\n\r\n")  # the chunked body was ended properly, not cut mid-line
    assert len([line for line in logs if "event stream dropped" in line]) == 1
    assert noisy(logs) == []
    assert (await running.client.status()).state == "running"


async def test_a_client_that_leaves_the_event_stream_is_let_go_quietly(running: Running, logs: list[str]) -> None:
    """A /v1/events client that hangs up mid-stream leaves no traceback and no subscription behind."""
    bus = running.daemon.bus
    before = len(bus._subscribers)  # the daemon's own (the metrics recorder)
    for _ in range(3):
        stream = await anyio.connect_unix(running.config.daemon.socket)
        await stream.send(b"GET /v1/events?heartbeat=0.05 HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_head(stream)
        await stream.aclose()
    with anyio.fail_after(5):
        while True:  # each stream's subscription ends once the daemon notices its client is gone
            bus.publish("test.tick")
            if len(bus._subscribers) == before:
                break
            await anyio.sleep(0.02)
    assert noisy(logs) == []


async def test_an_answer_before_the_body_is_read_says_connection_close(running: Running, logs: list[str]) -> None:
    """A keep-alive request answered without reading its body (a 415) gets Connection: close and is closed."""
    stream = await anyio.connect_unix(running.config.daemon.socket)
    async with stream:
        await stream.send(
            b"POST /v1/shipments HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 1000000\r\n\r\n" + b"x" * 65536
        )
        answer = await read_to_eof(stream, 2)
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 415") and b"connection: close" in head
    assert noisy(logs) == []


@pytest.mark.parametrize("path", ["/v1/shipments", "/v1/nowhere", "/v1/status"])
async def test_an_unread_body_with_connection_close_is_answered_and_closed_at_once(
    running: Running, logs: list[str], path: str
) -> None:
    """A request whose body the daemon never reads, sent with Connection: close, is answered and closed within 2 s."""
    stream = await anyio.connect_unix(running.config.daemon.socket)
    async with stream:
        await stream.send(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            "Content-Length: 1000000\r\n\r\n".encode()
            + b"x" * 65536
        )
        started = time.monotonic()
        answer = await read_to_eof(stream, 2)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 2
    assert noisy(logs) == []


async def test_shutdown_with_clients_connected_is_quiet_and_prompt(short_tmp: Path, tmp_path: Path) -> None:
    """SIGTERM with an event stream, an idle keep-alive, a half-sent body and half-sent headers open: exit 0 at once."""
    env = daemon_env(short_tmp, SHIPTRACK_DAEMON__SHUTDOWN_GRACE="2s")
    async with daemon_process(env, tmp_path / "log") as daemon:
        await daemon.wait_ready()
        events = await anyio.connect_unix(daemon.socket)
        await events.send(b"GET /v1/events?heartbeat=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_head(events)
        idle = await anyio.connect_unix(daemon.socket)
        await idle.send(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then kept alive
        await read_head(idle)
        half_body = await anyio.connect_unix(daemon.socket)
        await half_body.send(b"POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        half_head = await anyio.connect_unix(daemon.socket)
        await half_head.send(b"GET /v1/sta")
        started = time.monotonic()
        assert await daemon.stop(signal.SIGTERM, timeout_s=10) == 0
        took = time.monotonic() - started
        clients = [events, idle, half_body, half_head]
        answers = [await read_to_eof(stream, 1) for stream in clients]  # each was closed on the way out
        for stream in clients:
            await stream.aclose()
        output = daemon.output()
    assert answers[2].startswith(b"HTTP/1.1 503") and b'"stopping"' in answers[2]
    assert took < 1.5, output  # not the 2 s hypercorn would wait for the half-sent body
    assert "Traceback" not in output and "Exception in callback" not in output and "ERROR" not in output, output


async def test_shutdown_with_a_stalled_event_reader_is_quiet_and_bounded(
    short_tmp: Path, sandbox: Sandbox, logs: list[str]
) -> None:
    """A dropped subscriber that never reads again cannot be flushed: shutdown still ends in time, with no traceback."""
    from conftest import daemon_config

    from shiptrackd.daemon import Daemon

    config = daemon_config(short_tmp, sandbox.base_url)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        stream = await anyio.connect_unix(config.daemon.socket)
        await stream.send(b"GET /v1/events?heartbeat=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_head(stream)
        with anyio.fail_after(20):
            while not any("event stream dropped" in line for line in logs):
                for _ in range(50):
                    daemon.bus.publish("test.flood", pad="x" * 4000)
                await anyio.sleep(0.01)
        started = time.monotonic()
        daemon.stop()
    took = time.monotonic() - started
    await stream.aclose()
    assert took < 4.0  # the server's 2 s graceful timeout, then the connection is given up
    assert noisy(logs) == [], noisy(logs)


async def test_listeners_stop_waits_for_every_server_so_the_daemon_ends_quietly(short_tmp: Path) -> None:
    """A request still running on a TCP listener after the socket's server has closed: stop() waits out
    both closes, so the task group the daemon then cancels holds nothing in hypercorn's graceful close
    (cancelled there, hypercorn raised InvalidStateError: a traceback at `shiptrackd --demo`'s Ctrl-C)."""

    async def hang(request: Request) -> Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    app = build_app([Route("/hang", hang)], openapi=False)
    listeners = Listeners()
    async with anyio.create_task_group() as tg:
        await tg.start(listeners.run, serve, app, short_tmp / "ctl.sock", 0o600)
        address: str = await tg.start(listeners.run, serve_tcp, app, "127.0.0.1:0")
        host, _, port = address.rpartition(":")
        stream = await anyio.connect_tcp(host, int(port))
        await stream.send(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(10):
            await listeners.stop(within_s=10)
        tg.cancel_scope.cancel()  # what the daemon does next: nothing is left in a close to cancel
    answer = b""
    with anyio.fail_after(10):
        while b"}}" not in answer:
            answer += await stream.receive()
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 503") and b'"stopping"' in answer  # ended by the grace, answered
