"""
The HTTP transport under the providers' httpx clients: aiohttp's connection pool behind httpx's API.

Why (issue 9 item 27, figures in bench/README.md): at 32 requests in flight httpx's own pool
(httpcore) cost ~0.8 ms of client CPU per request even split into pools of four, most of the
engine's CPU per synced shipment; over aiohttp the same requests cost a fraction of that. The
provider and its tests keep httpx's API (requests, responses, errors); only this layer changes.

Not httpx-aiohttp's AiohttpTransport as it is: it maps aiohttp's errors coarsely (a connection
reset mid-answer becomes httpx.ConnectTimeout, which the provider would read as "unreachable"
and count towards the circuit breaker) and streams the body through two wrappers. Here the
whole body is read inside the request, so every I/O error surfaces in one place and maps to the
httpx error httpcore raises for the same fault; resets, timeouts and malformed answers reach the
provider exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aiohttp
import httpx


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp ClientSession (opened on first use, inside the running loop) for an httpx.AsyncClient."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300)
        # httpx sets Host, Accept, Accept-Encoding and User-Agent, so aiohttp adds none of its own;
        # httpx decodes the body (auto_decompress off), as it would over its own pool. Cookies are
        # httpx.AsyncClient's to keep (no tracking API needs them): aiohttp keeps none of its own.
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
        # aiohttp silently resends an idempotent request once when a reused connection is reset or
        # closed; httpcore does not, and the throttle's retries (counted, backed off) are the only
        # ones we want: the sandbox's RESET fault would see 6 requests instead of 3. No public
        # switch exists; aiohttp's own test client turns it off the same way (test_utils.py).
        session._retry_connection = False
        self._session = session
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{request.url.scheme}://'.")
        timeout = request.extensions.get("timeout", {})
        return await self._send(
            request.method, str(request.url), request.headers.multi_items(), request.content or None, timeout, request
        )

    async def get(
        self, url: str, headers: Sequence[tuple[str, str]], timeouts: Mapping[str, float | None]
    ) -> httpx.Response:
        """
        One GET straight to aiohttp, without an httpx.Request: the sync's hot path (a request a shipment).

        httpx.AsyncClient's own work per request (parsing the URL, merging headers, the auth and
        redirect generators, its cookie jar) was a third of the engine's CPU per synced shipment
        (bench/README.md "CPU per synced shipment"). The answer, and every failure, is what
        handle_async_request gives for the same request (the errors carry no `request`). The
        caller passes the headers the client would have merged in (`client_headers`) and the
        client's timeouts (`httpx.Timeout.as_dict()`).
        """
        return await self._send("GET", url, headers, None, timeouts, None)

    async def _send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        timeouts: Mapping[str, float | None],
        request: httpx.Request | None,
    ) -> httpx.Response:
        session = self._session or self._open()
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeouts.get("pool"), timeouts.get("connect"), timeouts.get("read")),
            ) as answer:
                content = await answer.read()
                status, reason = answer.status, answer.reason or ""
                raw_headers = answer.raw_headers
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc, request) from exc
        except TimeoutError as exc:  # a timeout outside aiohttp's own classes (older aiohttp)
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        return httpx.Response(
            status,
            headers=raw_headers,  # bytes pairs: httpx keeps them raw and decodes a header when read
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason.encode("latin-1", "replace")},
        )

    def _timeout(self, pool: float | None, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for httpx's (a client has one, so this is built once, not per request)."""
        key = (pool, connect, read)
        if self._timeouts.get(key) is None:
            self._timeouts[key] = aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)
        return self._timeouts[key]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def client_headers(client: httpx.AsyncClient, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The headers `client` would send with *headers* (its defaults merged under them), for AiohttpTransport.get."""
    merged = httpx.Headers(client.headers)
    merged.update(headers)
    return merged.multi_items()


def _httpx_error(exc: aiohttp.ClientError, request: httpx.Request | None) -> httpx.TransportError:
    """The httpx error httpcore raises for the same fault, so the provider's mapping stays as it is."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError  # closed before a whole answer, or not HTTP at all
    else:
        kind = httpx.ReadError  # resets and other OS errors on an open connection
    return kind(message, request=request)
