"""
Real receivers for Apprise on 127.0.0.1, for the alert tests: a JSON webhook and an SMTP server.

Both run on the test's own event loop (port 0); Apprise's synchronous plugins run in worker
threads, so the loop stays free to answer them. Each receiver records what arrived, and
`wait_for(n)` waits (with a deadline, no sleeps) until n messages are in.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio


class _Inbox:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = anyio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Any]:
        with anyio.fail_after(timeout_s):
            while len(self.items) < count:
                await self._changed.wait()
        return self.items


class Webhook(_Inbox):
    """A tiny HTTP/1.1 server taking Apprise's json:// POSTs; `fail_next` answers 500 that many times."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.fail_next = 0
        self.requests: list[dict[str, Any]] = []  # every POST, including the failed ones

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append({"method": method, "path": path, "headers": headers})
            if self.fail_next > 0:
                self.fail_next -= 1
                status = b"500 Internal Server Error"
            else:
                status = b"200 OK"
                self.add({"path": path, "headers": headers, "json": json.loads(body)})
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    server = await asyncio.start_server(hook._handle, "127.0.0.1", 0)
    hook.port = server.sockets[0].getsockname()[1]
    try:
        yield hook
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain", "html"))
        assert part is not None
        return str(part.get_content())


class Smtp(_Inbox):
    """aiosmtpd's SMTP protocol on the test's loop, keeping every message it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=shiptrackd@example.com&to=ops@example.com"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.add(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"


@asynccontextmanager
async def smtp() -> AsyncIterator[Smtp]:
    from aiosmtpd.smtp import SMTP

    sink = Smtp()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="localhost", loop=loop), "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): a dead channel."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
