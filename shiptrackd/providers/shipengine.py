"""
ShipEngine's `GET /v1/tracking` as a Provider: one request per call, every failure a ProviderError.

The mapping from HTTP outcomes to error classes is the contract the sync engine reacts to
(DESIGN.md "Sync semantics"): 401/403 stop the run, 404 marks the shipment, 429 pauses the
provider for Retry-After, 5xx and broken connections are retried, no connection at all
counts towards the circuit breaker. The API key travels only in a header and is scrubbed
from every message we build, so no log line or error can leak it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

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
from shiptrackd.models import TrackingInfo
from shiptrackd.providers.base import (
    Limits,
    ProviderBase,
    Quota,
    RequestObserver,
    StatusMap,
    null_observer,
    quota_from_headers,
)
from shiptrackd.providers.rest_calls import transport_errors
from shiptrackd.providers.shipengine_parse import parse_tracking
from shiptrackd.providers.transport import AiohttpTransport, client_headers
from shiptrackd.units import RateLimit, retry_after_s
from shiptrackd.wire.names import STATUS_CODES

USER_AGENT = f"shiptrackd/{__version__} (+https://github.com/shiptrackd)"
DEFAULT_RETRY_AFTER_S = 5.0  # what ShipEngine's .NET SDK assumes when the header is missing
# ShipEngine answers some unknown or malformed tracking numbers with 400 instead of 404.
NOT_FOUND_ERROR_CODES = frozenset({"tracking_not_supported", "invalid_identifier"})


# ShipEngine's codes are ours (wire.names.STATUS_CODES was taken from them): the map is the identity.
STATUS_MAP = {code: (code, "") for code in STATUS_CODES}


class ShipEngineProvider(ProviderBase):
    """Tracks one shipment per request against ShipEngine (or the sandbox, via `base_url`)."""

    kind = "shipengine"
    # 200 requests a minute on production keys (reference/tracking-apis.md §1.10); one number a request.
    limits = Limits(rate=RateLimit(200, 60.0), batch_size=1)

    def __init__(
        self,
        config: ProviderConfig,
        *,
        observer: RequestObserver | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = config
        self.name = config.name
        self.status_map = StatusMap(STATUS_MAP)
        self._observer = observer or null_observer
        # Set by the throttle: ShipEngine documents no X-RateLimit-* headers, but if they come, they are used.
        self.quota_observer: Callable[[Quota], None] | None = None
        self._base_url = config.base_url.rstrip("/")
        self._api_key = config.api_key.get()
        # Headers go on each request, so an injected client (tests, shared pools) works too.
        self._headers = {"API-Key": self._api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        self._owns_client = client is None
        # The GETs of a sync go straight to our transport when the client is ours (AiohttpTransport.get
        # says why), with the headers and timeouts the client would have given them; an injected
        # client is used as it is.
        self._direct: AiohttpTransport | None = None
        if client is None:
            # aiohttp's pool under httpx's API (providers/transport.py says why); two connections of
            # headroom on top of `concurrency`, so a health check never waits behind a busy sync.
            transport = AiohttpTransport(max_connections=config.concurrency + 2)
            client = httpx.AsyncClient(
                transport=transport, timeout=httpx.Timeout(config.timeout_s), headers={"User-Agent": USER_AGENT}
            )
            if self._base_url.startswith(("http://", "https://")):  # else the client's UnsupportedProtocol
                self._direct = transport
        self._client = client
        self._direct_headers = client_headers(client, self._headers)
        self._direct_timeout = client.timeout.as_dict()

    def __repr__(self) -> str:
        return f"ShipEngineProvider(base_url={self._base_url!r}, api_key={self._config.api_key!r})"

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """Fetch one shipment's tracking; raises the ProviderError subclass that says what to do next."""
        params = {"carrier_code": carrier_code, "tracking_number": tracking_number}
        what = f"{carrier_code} {tracking_number}"
        started = time.perf_counter()
        status: int | None = None
        try:
            response = await self._get("/v1/tracking", params, what)
            status = response.status_code
            if not 200 <= status < 300:
                raise self._error_for(response, what)
            try:
                info = parse_tracking(response.content, carrier_code=carrier_code, tracking_number=tracking_number)
            except InvalidResponseError as exc:
                message = f"shipengine invalid response ({what}): {exc.message}"
                raise InvalidResponseError(message, status=status) from None
        except ProviderError as exc:
            self._observer(status, time.perf_counter() - started, exc.kind)
            self._scrub(exc)
            raise
        self._observer(status, time.perf_counter() - started, None)
        return info

    async def check_connectivity(self) -> float:
        """GET /v1/carriers (cheap, authenticated) and return its latency in seconds."""
        started = time.perf_counter()
        status: int | None = None
        try:
            try:
                response = await self._get("/v1/carriers", None, "connectivity check")
                status = response.status_code
                if not 200 <= status < 300:
                    raise self._error_for(response, "connectivity check")
            except (ProviderAuthError, TransientProviderError):
                raise
            except ProviderError as exc:  # the health check only distinguishes auth, unreachable, other
                raise TransientProviderError(exc.message, status=exc.status) from exc
        except ProviderError as exc:
            self._observer(status, time.perf_counter() - started, exc.kind)
            self._scrub(exc)
            raise
        elapsed_s = time.perf_counter() - started
        self._observer(status, elapsed_s, None)
        return elapsed_s

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- push: subscriptions and the webhook (reference/tracking-apis.md §1.11) ----------

    async def subscribe(self, carrier_code: str, tracking_number: str) -> None:
        """Subscribe one parcel to pushes: `POST /v1/tracking/start` (204)."""
        await self._tracking_call("start", carrier_code, tracking_number)

    async def unsubscribe(self, carrier_code: str, tracking_number: str) -> None:
        """End one parcel's pushes: `POST /v1/tracking/stop` (204); an unknown parcel is not an error."""
        try:
            await self._tracking_call("stop", carrier_code, tracking_number)
        except ShipmentNotFoundError:
            pass

    async def _tracking_call(self, action: str, carrier_code: str, tracking_number: str) -> None:
        params = {"carrier_code": carrier_code, "tracking_number": tracking_number}
        what = f"tracking/{action} {carrier_code} {tracking_number}"
        await self._call("POST", f"/v1/tracking/{action}", params, None, what)

    async def webhooks(self) -> list[dict[str, Any]]:
        """`GET /v1/environment/webhooks`: the account's webhooks (a bare JSON array)."""
        response = await self._call("GET", "/v1/environment/webhooks", None, None, "webhook list")
        data = _json_body(response)
        return [w for w in data if isinstance(w, dict)] if isinstance(data, list) else []

    async def ensure_webhook(self, url: str) -> dict[str, Any]:
        """
        Point the account's `track` webhook at *url*: create it, or on 409 (one URL per event) find it and update it.

        Returns {"webhook_id", "url", "action": "created" | "updated" | "unchanged"}.
        """
        body = {"event": "track", "url": url, "name": "shiptrackd"}
        try:
            response = await self._call("POST", "/v1/environment/webhooks", None, body, "webhook create")
        except PermanentProviderError as exc:
            if exc.status != 409:
                raise
        else:
            created = _json_body(response)
            webhook_id = created.get("webhook_id") if isinstance(created, dict) else None
            return {"webhook_id": webhook_id, "url": url, "action": "created"}
        existing = next((w for w in await self.webhooks() if w.get("event") == "track"), None)
        if existing is None:
            raise PermanentProviderError("shipengine answered 409 for the track webhook but lists none", status=409)
        webhook_id = str(existing.get("webhook_id") or "")
        if existing.get("url") == url:
            return {"webhook_id": webhook_id, "url": url, "action": "unchanged"}
        path = f"/v1/environment/webhooks/{quote(webhook_id, safe='')}"
        await self._call("PUT", path, None, {"url": url}, "webhook update")
        return {"webhook_id": webhook_id, "url": url, "action": "updated", "previous_url": existing.get("url")}

    async def _call(
        self, method: str, path: str, params: dict[str, str] | None, body: Any, what: str
    ) -> httpx.Response:
        """One request besides tracking: observed, mapped to ProviderError, the key scrubbed."""
        url = f"{self._base_url}{path}?{urlencode(params, quote_via=quote)}" if params else self._base_url + path
        started = time.perf_counter()
        status: int | None = None
        headers = {**self._headers, "Content-Type": "application/json"} if body is not None else self._headers
        try:
            try:
                response = await self._client.request(
                    method, url, headers=headers, content=json.dumps(body).encode() if body is not None else None
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise ProviderUnreachableError(f"shipengine unreachable ({what}): {_describe(exc)}") from exc
            except httpx.HTTPError as exc:
                raise TransientProviderError(f"shipengine connection failed ({what}): {_describe(exc)}") from exc
            status = response.status_code
            if not 200 <= status < 300:
                raise self._error_for(response, what)
        except ProviderError as exc:
            self._observer(status, time.perf_counter() - started, exc.kind)
            self._scrub(exc)
            raise
        self._observer(status, time.perf_counter() - started, None)
        return response

    async def _get(self, path: str, params: dict[str, str] | None, what: str) -> httpx.Response:
        """One GET, transport failures translated; the body is read before returning."""
        # The query string built here, not by httpx: its URL merging is a third of its cost per request.
        url = f"{self._base_url}{path}?{urlencode(params, quote_via=quote)}" if params else self._base_url + path
        with transport_errors("shipengine", self._config.timeout_s, what):
            if self._direct is not None:
                response = await self._direct.get(url, self._direct_headers, self._direct_timeout)
            else:
                response = await self._client.get(url, headers=self._headers)
        if self.quota_observer is not None and (quota := quota_from_headers(response.headers, time.time())):
            self.quota_observer(quota)
        return response

    def _error_for(self, response: httpx.Response, what: str) -> ProviderError:
        """Map a non-2xx response to the error class the sync engine acts on."""
        status = response.status_code
        error_code, detail = _error_details(response)
        message = f"shipengine HTTP {status} ({what}): {detail}"
        request_id = response.headers.get("x-shipengine-requestid")
        if request_id:
            message += f" [request_id {request_id[:64]}]"
        if status in (401, 403):
            return ProviderAuthError(message, status=status)
        if status == 404 or (status == 400 and error_code in NOT_FOUND_ERROR_CODES):
            return ShipmentNotFoundError(message, status=status)
        if status == 429:
            retry_after_s = parse_retry_after(response.headers.get("retry-after"), self._config.max_retry_after_s)
            return RateLimitedError(message, retry_after_s=retry_after_s, status=status)
        if status >= 500:
            return TransientProviderError(message, status=status)
        return PermanentProviderError(message, status=status)

    def _scrub(self, exc: ProviderError) -> None:
        """Mask the API key in place, in case a server or library echoed it back."""
        if self._api_key and self._api_key in exc.message:
            exc.message = exc.message.replace(self._api_key, "***")
            exc.args = (exc.message,)


def parse_retry_after(value: str | None, max_s: float) -> float:
    """Retry-After as seconds (an integer, a decimal or an HTTP-date), clamped to [0, max_s]; else 5 s."""
    seconds = retry_after_s(value, datetime.now(UTC))
    return min(max(DEFAULT_RETRY_AFTER_S if seconds is None else seconds, 0.0), max_s)


def _error_details(response: httpx.Response) -> tuple[str, str]:
    """(error_code, message) from a ShipEngine error body, tolerating every variant seen in the wild."""
    fallback = response.reason_phrase or "error"
    try:
        data: Any = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        text = " ".join(response.content[:300].decode("utf-8", "replace").split())
        return "", text[:200] or fallback
    first: Any = None
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
        elif isinstance(data.get("error"), dict):  # the JS SDK's singular `error` variant
            first = data["error"]
    if not isinstance(first, dict):
        return "", fallback
    error_code = first.get("error_code")
    message = first.get("message")
    return (
        error_code if isinstance(error_code, str) else "",
        " ".join(message.split())[:300] if isinstance(message, str) and message.strip() else fallback,
    )


def _json_body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return None


def _describe(exc: BaseException) -> str:
    """An httpx exception as short text: httpx often has an empty str(), the OSError beneath does not."""
    parts = [type(exc).__name__]
    cause = exc
    for _ in range(5):  # httpx -> httpcore -> anyio -> OSError
        text = " ".join(str(cause).split())
        if text:
            parts.append(text[:200])
            break
        beneath = cause.__cause__ or cause.__context__
        if beneath is None:
            break
        cause = beneath
    return ": ".join(parts)
