"""
A small HTTP/1.1 keep-alive server: h11 on raw non-blocking sockets, one anyio task per connection.

Why not hypercorn or anyio's SocketStream: the sandbox must misbehave at the TCP level. A
reset needs SO_LINGER 0 and a close() with no FIN before it, and anyio's stream aclose()
always sends a FIN first (write_eof). Owning the socket makes resets real RSTs, hangs real
silences (we keep reading until the client gives up and closes), and keeps per-request
overhead low enough for a few thousand requests a second on one core.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import anyio
import h11
from anyio.abc import TaskStatus

logger = logging.getLogger("shiptrackd.sandbox")

MAX_BODY_BYTES = 1 << 20
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    on_done: Callable[[], None] | None = None  # called once the reply was sent (or failed)


@dataclass(slots=True)
class Drop:
    """Answer nothing: "reset" sends a TCP RST, "hang" waits until the client closes."""

    kind: str
    on_done: Callable[[], None] | None = None


Handler = Callable[[Request], Awaitable[Reply | Drop]]


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking socket (IPv4 or IPv6, whatever `host` resolves to)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)  # benchmarks open 128+ connections at once
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    handler: Handler,
    sock: socket.socket,
    *,
    on_connect: Callable[[], None] | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on the listening `sock` until cancelled; closes it on the way out."""
    try:
        async with anyio.create_task_group() as tg:
            task_status.started()
            while True:
                await anyio.wait_readable(sock)
                while True:
                    try:
                        conn, _ = sock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:  # EMFILE and friends: keep serving the ones we have
                        logger.warning("sandbox accept failed: %s", exc)
                        await anyio.sleep(0.05)
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if on_connect is not None:
                        on_connect()
                    tg.start_soon(_serve_connection, handler, conn)
    finally:
        sock.close()


async def _serve_connection(handler: Handler, sock: socket.socket) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                request = await _read_request(conn, sock)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    await _send_all(sock, _encode(conn, Reply(status, f"{exc}\n".encode(), content_type="text/plain")))
                return
            if request is None:
                return
            try:
                outcome = await handler(request)
            except Exception:
                logger.exception("sandbox handler failed for %s %s", request.method, request.path)
                outcome = Reply(500, b"sandbox bug, see its log\n", content_type="text/plain")
            try:
                if isinstance(outcome, Reply):
                    await _send_all(sock, _encode(conn, outcome))
                elif outcome.kind == "reset":
                    # linger 0 makes close() send RST right away, without a FIN before it.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                else:
                    while await _recv(sock):  # hang: say nothing, notice when the client leaves
                        pass
                    return
            finally:
                if outcome.on_done is not None:
                    outcome.on_done()
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except OSError:
        pass  # the client went away mid-exchange; nothing to tell it
    finally:
        sock.close()


async def _read_request(conn: h11.Connection, sock: socket.socket) -> Request | None:
    """The next complete request on this connection, or None if the client closed it."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await _recv(sock))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            target = urlsplit(head.target.decode("latin-1"))
            return Request(
                method=head.method.decode("ascii"),
                path=target.path,
                query=parse_qs(target.query, keep_blank_values=True),
                headers={name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers},
                body=bytes(body),
            )
        else:  # ConnectionClosed (or PAUSED, which our flow never reaches)
            return None


def _encode(conn: h11.Connection, reply: Reply) -> bytes:
    headers = [
        ("content-type", reply.content_type),
        ("content-length", str(len(reply.body))),
        ("date", _http_date()),
        *reply.headers,
    ]
    response = h11.Response(status_code=reply.status, headers=headers, reason=_REASONS.get(reply.status, b""))
    return conn.send(response) + conn.send(h11.Data(data=reply.body)) + conn.send(h11.EndOfMessage())


async def _recv(sock: socket.socket) -> bytes:
    """Up to 64 KiB from the socket; b"" at end of stream, a reset counting as one."""
    while True:
        try:
            return sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            await anyio.wait_readable(sock)
        except ConnectionError:
            return b""


async def _send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except (BlockingIOError, InterruptedError):
            await anyio.wait_writable(sock)
        else:
            view = view[sent:]


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header, formatted once a second rather than once a request."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]
