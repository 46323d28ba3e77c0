"""
One HTTP call to a JSON tracking API, its failure already a ProviderError: shared by the EasyPost and AfterShip clients.

The mapping is the contract the sync engine reacts to (DESIGN.md "Sync semantics", as in
shipengine.py): no connection at all is ProviderUnreachableError (the circuit breaker counts
it), timeouts, resets and 5xx are TransientProviderError, 401/403 ProviderAuthError, 404
ShipmentNotFoundError, 429 RateLimitedError, any other 4xx PermanentProviderError. The API
key is scrubbed from every message, in case a server echoed it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from shiptrackd import __version__
from shiptrackd.config import ProviderConfig
from shiptrackd.errors import (
    InvalidResponseError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachableError,
    RateLimitedError,
    ShipmentNotFoundError,
    TransientProviderError,
)
from shiptrackd.providers.base import Quota, RequestObserver, quota_from_headers
from shiptrackd.providers.transport import AiohttpTransport
from shiptrackd.units import retry_after_s

USER_AGENT = f"shiptrackd/{__version__} (+https://github.com/shiptrackd)"
DEFAULT_RETRY_AFTER_S = 1.0  # neither EasyPost nor AfterShip documents Retry-After; their windows are a second


def base_url_for(config: ProviderConfig, default: str) -> str:
    """The configured base URL, or the provider's own default when the config kept ShipEngine's."""
    if not config.base_url or config.base_url == ProviderConfig.base_url:
        return default
    return config.base_url


def make_client(concurrency: int, timeout_s: float) -> httpx.AsyncClient:
    """httpx over aiohttp's pool (providers/transport.py says why), with headroom for health checks."""
    transport = AiohttpTransport(max_connections=concurrency + 2)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s), headers={"User-Agent": USER_AGENT})


class RestCalls:
    """Sends requests for one provider account; every outcome is observed, every failure mapped."""

    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        headers: Mapping[str, str],
        secret: str,
        timeout_s: float,
        max_retry_after_s: float,
        observer: RequestObserver,
        error_text: Callable[[httpx.Response], str] | None = None,
    ) -> None:
        """Args: secret is scrubbed from every message; error_text reads a failure's message from its body."""
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.quota_observer: Callable[[Quota], None] | None = None
        self._client = client
        self._headers = {**headers, "Accept": "application/json"}
        self._secret = secret
        self._timeout_s = timeout_s
        self._max_retry_after_s = max_retry_after_s
        self._observer = observer
        self._error_text = error_text

    async def send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        ok: Callable[[httpx.Response], bool] | None = None,
        on_answer: Callable[[httpx.Response], None] | None = None,
    ) -> httpx.Response:
        """One request; a 2xx (or an answer `ok` accepts) is returned, anything else raised as a ProviderError.

        `on_answer` sees every answer, failures included (a 429's X-RateLimit-* matter most).
        """
        started = time.perf_counter()
        status: int | None = None
        try:
            response = await self._request(method, path, what, params, json)
            status = response.status_code
            if on_answer is not None:
                on_answer(response)
            if not (200 <= status < 300 or (ok is not None and ok(response))):
                raise self.error_for(response, what)
        except ProviderError as exc:
            self._observer(status, time.perf_counter() - started, exc.kind)
            self.scrub(exc)
            raise
        self._observer(status, time.perf_counter() - started, None)
        return response

    async def _request(
        self, method: str, path: str, what: str, params: Mapping[str, str] | None, body: Any
    ) -> httpx.Response:
        url = self.base_url + path
        with transport_errors(self.name, self._timeout_s, what):
            response = await self._client.request(method, url, params=params, json=body, headers=self._headers)
        if self.quota_observer is not None and (quota := quota_from_headers(response.headers, time.time())):
            self.quota_observer(quota)
        return response

    def error_for(self, response: httpx.Response, what: str) -> ProviderError:
        """Map a non-2xx answer to the error class the sync engine acts on."""
        status = response.status_code
        detail = self._error_text(response) if self._error_text is not None else ""
        message = f"{self.name} HTTP {status} ({what}): {detail or response.reason_phrase or 'error'}"
        if status in (401, 403):
            return ProviderAuthError(message, status=status)
        if status == 404:
            return ShipmentNotFoundError(message, status=status)
        if status == 429:
            return RateLimitedError(message, retry_after_s=self.retry_after_s(response), status=status)
        if status >= 500:
            return TransientProviderError(message, status=status)
        return PermanentProviderError(message, status=status)

    def retry_after_s(self, response: httpx.Response) -> float:
        """Retry-After if sent, else X-RateLimit-Reset (Unix time or seconds), else a second; clamped."""
        seconds = retry_after_s(response.headers.get("retry-after"), datetime.now(UTC))
        if seconds is None:
            quota = quota_from_headers(response.headers, time.time())
            seconds = quota.reset_s if quota is not None else None
        if seconds is None or not math.isfinite(seconds):
            seconds = DEFAULT_RETRY_AFTER_S
        return min(max(seconds, 0.0), self._max_retry_after_s)

    def scrub(self, exc: ProviderError) -> None:
        """Mask the API key in place, in case a server or library echoed it back."""
        if self._secret and self._secret in exc.message:
            exc.message = exc.message.replace(self._secret, "***")
            exc.args = (exc.message,)

    async def check(self, method: str, path: str, *, params: Mapping[str, str] | None = None) -> float:
        """A health check's request: its latency, or ProviderAuthError, ProviderUnreachableError or
        TransientProviderError (the only three kinds the health check tells apart)."""
        started = time.perf_counter()
        try:
            await self.send(method, path, "connectivity check", params=params)
        except (ProviderAuthError, TransientProviderError):
            raise
        except ProviderError as exc:
            raise TransientProviderError(exc.message, status=exc.status) from exc
        return time.perf_counter() - started

    async def aclose(self) -> None:
        await self._client.aclose()


@contextmanager
def transport_errors(name: str, timeout_s: float, what: str) -> Iterator[None]:
    """httpx's transport failures as the ProviderErrors the engine acts on: one table for every provider."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ProviderUnreachableError(f"{name} unreachable ({what}): {describe(exc)}") from exc
    except httpx.TimeoutException as exc:
        raise TransientProviderError(f"{name} timed out after {timeout_s:g}s ({what}): {describe(exc)}") from exc
    except httpx.DecodingError as exc:
        raise InvalidResponseError(f"body: cannot be decoded ({what}): {describe(exc)}") from exc
    except httpx.UnsupportedProtocol as exc:
        raise PermanentProviderError(f"{name} base_url is unusable: {describe(exc)}") from exc
    except httpx.HTTPError as exc:  # resets, protocol errors, read/write errors
        raise TransientProviderError(f"{name} connection failed ({what}): {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """An httpx exception as short text: httpx often has an empty str(), the OSError beneath does not."""
    parts = [type(exc).__name__]
    cause = exc
    for _ in range(5):
        text = " ".join(str(cause).split())
        if text:
            parts.append(text[:200])
            break
        beneath = cause.__cause__ or cause.__context__
        if beneath is None:
            break
        cause = beneath
    return ": ".join(parts)
