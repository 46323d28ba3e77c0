"""
The sync's tracking GET goes straight to the aiohttp transport (AiohttpTransport.get); on the wire it
must be the request httpx.AsyncClient would have sent over the same transport, header for header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from shiptrackd.config import ProviderConfig, Secret
from shiptrackd.providers import ShipEngineProvider
from shiptrackd.providers.shipengine import USER_AGENT
from shiptrackd.providers.transport import AiohttpTransport

BODY = b'{"status_code": "IT", "events": []}'


class HeadRecorder:
    """A loopback HTTP/1.1 server that keeps each request's head and answers 200 with a tracking body."""

    def __init__(self) -> None:
        self.heads: list[tuple[str, list[tuple[str, str]]]] = []
        self.port = 0

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        buffer += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):  # the client closed its connection
                        return
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                line, *fields = head.decode("latin-1").split("\r\n")
                headers = [(name.strip().lower(), value.strip()) for name, value in (f.split(":", 1) for f in fields)]
                self.heads.append((line, headers))
                await stream.send(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(BODY)}\r\n\r\n".encode()
                    + BODY
                )


@pytest.fixture
async def recorder() -> AsyncIterator[HeadRecorder]:
    rec = HeadRecorder()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    rec.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, rec.handle)
        yield rec
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_the_direct_get_sends_what_the_client_would(recorder: HeadRecorder) -> None:
    """The same request line and the same headers, through our transport directly and through httpx's client."""
    config = ProviderConfig(api_key=Secret("k3y"), base_url=f"http://127.0.0.1:{recorder.port}", timeout_s=2)
    direct = ShipEngineProvider(config)
    client = httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=4), timeout=httpx.Timeout(2), headers={"User-Agent": USER_AGENT}
    )
    through_client = ShipEngineProvider(config, client=client)
    try:
        first = await direct.fetch("ups", "1Z 1/2")  # a space and a slash: the query string is quoted alike
        second = await through_client.fetch("ups", "1Z 1/2")
    finally:
        await direct.aclose()
        await client.aclose()
    assert first == second and first.status_code == "IT"
    (line_a, headers_a), (line_b, headers_b) = recorder.heads
    assert line_a == line_b and line_a.startswith("GET /v1/tracking?carrier_code=ups&tracking_number=1Z%201")
    assert sorted(headers_a) == sorted(headers_b)
    names = {name for name, _ in headers_a}
    assert {"host", "api-key", "user-agent", "accept", "accept-encoding"} <= names
    assert ("user-agent", USER_AGENT) in headers_a and ("accept", "application/json") in headers_a
