"""
A real webhook receiver on 127.0.0.1 for the sandbox's pushes: records raw headers (case kept) and raw bodies.

Runs on the test's own event loop (port 0); `wait_for(n)` waits with a deadline, no sleeps.
`status` is what it answers; `fail_next` answers 500 that many times first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass(frozen=True)
class Received:
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Receiver:
    port: int = 0
    status: int = 200
    fail_next: int = 0
    received: list[Received] = field(default_factory=list)
    _changed: anyio.Event | None = None

    def url(self, path: str = "/hooks/test") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        with anyio.fail_after(timeout_s):
            while len(self.received) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        return self.received

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = head.decode("latin-1").split("\r\n")
                _, path, _ = lines[0].split(" ", 2)
                headers = [(k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:] if x)]
                length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
                body = await reader.readexactly(length)
                if self.fail_next > 0:
                    self.fail_next -= 1
                    status = 500
                else:
                    status = self.status
                    self.received.append(Received(path, headers, body))
                    if self._changed is not None:
                        self._changed.set()
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\n{{}}".encode())
                await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A Receiver listening on a free loopback port for the duration of the block."""
    box = Receiver()
    server = await asyncio.start_server(box._handle, "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
