"""
A real webhook receiver on 127.0.0.1 for the outbound tests: HTTP/1.1 with keep-alive, on the test's loop.

Every request is verified with the `standardwebhooks` reference library against the endpoint's
secret before it counts as delivered. `answer` decides each reply (status, headers) from the
request; the special status RESET closes the connection without answering. `wait_for(n)` waits
with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from standardwebhooks import Webhook, WebhookVerificationError

RESET = -1
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: Any  # parsed, only when the signature verified
    verified: bool
    at: float  # time.time() on arrival
    status: int  # what was answered (RESET for none)


@dataclass
class Receiver:
    secret: str = SECRET
    answer: Callable[[Received], tuple[int, dict[str, str]]] = lambda r: (204, {})
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def delivered(self) -> list[Received]:
        """Requests that verified and were answered 2xx: what the application took."""
        return [r for r in self.requests if r.verified and 200 <= r.status < 300]

    async def wait_for(self, count: int, timeout_s: float = 10.0, *, delivered: bool = True) -> list[Received]:
        with anyio.fail_after(timeout_s):
            while len(self.delivered() if delivered else self.requests) < count:
                await self._changed.wait()
        return self.delivered() if delivered else self.requests

    def _record(self, item: Received) -> None:
        self.requests.append(item)
        self._changed.set()
        self._changed = anyio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                try:
                    payload = Webhook(self.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    payload, verified = None, False
                item = Received(headers, body, payload, verified, time.time(), 0)
                status, extra = self.answer(item) if verified else (401, {})
                item.status = status
                self._record(item)
                if status == RESET:
                    writer.transport.abort()
                    return
                text = b"" if status in (204, 304) else json.dumps({"ok": 200 <= status < 300}).encode()
                out = [f"HTTP/1.1 {status} X", f"content-length: {len(text)}", "content-type: application/json"]
                out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + text)
                await writer.drain()
        finally:
            writer.close()

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


def outbound_toml(name: str, url: str, *, secret: str = SECRET, **keys: Any) -> str:
    """One [[outbound]] table as TOML text."""
    lines = ["[[outbound]]", f'name = "{name}"', f'url = "{url}"', f'secret = "{secret}"']
    for key, value in keys.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
