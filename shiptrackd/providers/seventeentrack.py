"""
17TRACK's Tracking API v2.2 as a Provider: register and gettrackinfo in batches of 40, stoptrack,
getquota, and pushes signed with `sign`.

Every endpoint is a POST of a JSON array; the answer is HTTP 200 even when some numbers fail,
each in `data.rejected` with its own code, so one request yields a result per number. A whole
request fails with HTTP 401/429/5xx or a non-zero top-level `code`. The key travels only in
the `17token` header and is scrubbed from every message we build.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from shiptrackd import __version__
from shiptrackd.clock import utcnow
from shiptrackd.config import ProviderConfig
from shiptrackd.errors import (
    InvalidResponseError,
    NotRegisteredError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    PushRejectedError,
    QuotaExhaustedError,
    RateLimitedError,
    ShipmentNotFoundError,
    TransientProviderError,
)
from shiptrackd.models import TrackingInfo
from shiptrackd.providers import seventeentrack_wire as wire
from shiptrackd.providers.base import (
    Limits,
    Parcel,
    ProviderBase,
    PushUpdate,
    Quota,
    QuotaStatus,
    Registration,
    RequestObserver,
    null_observer,
    quota_from_headers,
)
from shiptrackd.providers.rest_calls import transport_errors
from shiptrackd.providers.seventeentrack_parse import parse_push, parse_track_info
from shiptrackd.providers.transport import AiohttpTransport
from shiptrackd.units import RateLimit

USER_AGENT = f"shiptrackd/{__version__} (+https://github.com/shiptrackd)"
DEFAULT_BASE_URL = "https://api.17track.net/track/v2.2"
DEFAULT_RETRY_AFTER_S = 1.0  # 17TRACK documents no Retry-After; its limit is per second
MAX_PUSH_BYTES = 2 * 1024 * 1024


class SeventeenTrackProvider(ProviderBase):
    """Registers, tracks and stops numbers 40 at a time against 17TRACK (or the sandbox's dialect)."""

    kind = wire.KIND
    needs_registration = True
    detects_carrier = True  # a parcel registered without a carrier is auto-detected on creation
    # 3 requests/s per key (reference §4, secondary); 40 numbers a request; quota = registrations.
    limits = Limits(
        rate=RateLimit(3, 1.0),
        batch_size=wire.BATCH_SIZE,
        quota="registrations (1 per new number and carrier; 100 a month on the free plan)",
    )

    def __init__(
        self,
        config: ProviderConfig,
        *,
        observer: RequestObserver | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = config
        self.name = config.name
        self.status_map = wire.status_map()
        self._observer = observer or null_observer
        self.quota_observer: Callable[[Quota], None] | None = None
        # [provider] base_url defaults to ShipEngine's: a 17track entry without one means 17TRACK's own.
        base_url = config.base_url if config.base_url != ProviderConfig.base_url else DEFAULT_BASE_URL
        self._base_url = base_url.rstrip("/")
        self._api_key = config.api_key.get()
        # Pushes are signed with the account's key; a separate webhook secret, if configured, wins.
        self._push_key = config.webhook_secret.get() or self._api_key
        self._headers = {
            "17token": self._api_key,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self._owns_client = client is None
        if client is None:
            transport = AiohttpTransport(max_connections=config.concurrency + 2)
            client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(config.timeout_s))
        self._client = client

    def __repr__(self) -> str:
        return f"SeventeenTrackProvider(base_url={self._base_url!r}, api_key={self._config.api_key!r})"

    # --- tracking ------------------------------------------------------------------------

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """One number through gettrackinfo (it must be registered)."""
        got = (await self.fetch_many([Parcel(carrier_code, tracking_number)])).get(tracking_number)
        if got is None:
            raise InvalidResponseError(f"17track answered nothing for {tracking_number}", status=200)
        if isinstance(got, ProviderError):
            raise got
        return got

    async def fetch_many(self, parcels: Sequence[Parcel]) -> Mapping[str, TrackingInfo | ProviderError]:
        """gettrackinfo for up to 40 numbers: a TrackingInfo or an error for each number answered."""
        asked = {p.tracking_number: p for p in parcels}
        data = await self._post("/gettrackinfo", _numbers(parcels), f"gettrackinfo of {len(parcels)}")
        out: dict[str, TrackingInfo | ProviderError] = {}
        for item in _items(data, "accepted"):
            number = item.get("number")
            if not isinstance(number, str):
                continue
            parcel = asked.get(number)
            fallback = parcel.carrier_code if parcel else ""
            try:
                out[number] = parse_track_info(item, self.status_map, fallback_carrier=fallback)
            except InvalidResponseError as exc:
                out[number] = InvalidResponseError(f"17track invalid response ({number}): {exc.message}", status=200)
        for number, _, error in _rejections(data):
            out[number] = error
        return out

    async def register(self, parcels: Sequence[Parcel]) -> Mapping[str, Registration | ProviderError]:
        """register up to 40 numbers (1 quota each); one already registered counts as registered."""
        data = await self._post("/register", _numbers(parcels), f"register of {len(parcels)}")
        asked = {p.tracking_number: p for p in parcels}
        out: dict[str, Registration | ProviderError] = {}
        for item in _items(data, "accepted"):
            number = item.get("number")
            if isinstance(number, str):
                fallback = asked[number].carrier_code if number in asked else ""
                out[number] = _registration(item.get("carrier"), fallback)
        for number, code, error in _rejections(data):
            if code == wire.ERR_ALREADY_REGISTERED:
                out[number] = _registration(None, asked[number].carrier_code if number in asked else "")
            else:
                out[number] = error
        return out

    async def unregister(self, parcels: Sequence[Parcel]) -> None:
        """stoptrack: 17TRACK stops following these numbers (they stay registered, so no quota back)."""
        await self._post("/stoptrack", _numbers(parcels), f"stoptrack of {len(parcels)}")

    async def quota(self) -> QuotaStatus | None:
        """getquota: the account's registration quota, total, used and left."""
        data = await self._post("/getquota", None, "getquota")
        return _quota(data, utcnow())

    async def check_connectivity(self) -> float:
        """getquota (cheap, authenticated, costs no quota) and its latency in seconds."""
        started = time.perf_counter()
        try:
            await self._post("/getquota", None, "connectivity check")
        except (ProviderAuthError, TransientProviderError):
            raise
        except ProviderError as exc:
            raise TransientProviderError(exc.message, status=exc.status) from exc
        return time.perf_counter() - started

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- pushes --------------------------------------------------------------------------

    async def verify_push(self, headers: Mapping[str, str], body: bytes) -> None:
        """`sign` = hex SHA-256 of the raw body + "/" + key, compared in constant time."""
        if len(body) > MAX_PUSH_BYTES:
            raise PushRejectedError(f"17track push: body over {MAX_PUSH_BYTES} bytes")
        sign = {k.lower(): v for k, v in headers.items()}.get(wire.SIGN_HEADER)
        if not sign:
            raise PushRejectedError("17track push: no `sign` header")
        if not self._push_key or not wire.sign_matches(body, self._push_key, sign):
            raise PushRejectedError("17track push: `sign` does not match the body")

    def parse_push(self, body: bytes) -> list[PushUpdate]:
        return parse_push(body, self.status_map)

    # --- HTTP ----------------------------------------------------------------------------

    async def _post(self, path: str, payload: list[dict[str, Any]] | None, what: str) -> Any:
        """One POST; returns the envelope's `data` once `code` is 0, else raises what the engine acts on."""
        started = time.perf_counter()
        status: int | None = None
        try:
            response = await self._send(path, payload, what)
            status = response.status_code
            if status != 200:
                raise self._http_error(response, what)
            data = self._envelope(response, what)
        except ProviderError as exc:
            self._observer(status, time.perf_counter() - started, exc.kind)
            self._scrub(exc)
            raise
        self._observer(status, time.perf_counter() - started, None)
        return data

    async def _send(self, path: str, payload: list[dict[str, Any]] | None, what: str) -> httpx.Response:
        content = json.dumps(payload if payload is not None else [], separators=(",", ":")).encode()
        if payload is None:
            content = b""
        with transport_errors(self.name, self._config.timeout_s, what):
            response = await self._client.post(self._base_url + path, content=content, headers=self._headers)
        if self.quota_observer is not None and (quota := quota_from_headers(response.headers, time.time())):
            self.quota_observer(quota)
        return response

    def _http_error(self, response: httpx.Response, what: str) -> ProviderError:
        status = response.status_code
        message = f"{self.name} HTTP {status} ({what}): {_error_text(response)}"
        if status in (401, 403):
            return ProviderAuthError(message, status=status)
        if status == 429:
            return RateLimitedError(message, retry_after_s=_retry_after(response, self._config.max_retry_after_s))
        if status >= 500:
            return TransientProviderError(message, status=status)
        return PermanentProviderError(message, status=status)

    def _envelope(self, response: httpx.Response, what: str) -> Any:
        """`{"code": 0, "data": ...}` -> data; a non-zero code is the whole request's failure."""
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise InvalidResponseError(f"{self.name} invalid response ({what}): body is not JSON", status=200) from None
        if not isinstance(body, dict) or not isinstance(body.get("code"), int) or isinstance(body["code"], bool):
            raise InvalidResponseError(f"{self.name} invalid response ({what}): no integer `code`", status=200)
        code = body["code"]
        if code != 0:
            detail = _first_error(body.get("data")) or str(body.get("message") or "")
            message = f"{self.name} error {code} ({what}): {detail[:200]}"
            if code in wire.AUTH_ERRORS:
                raise ProviderAuthError(message, status=401)
            if code == wire.ERR_QUOTA_EXHAUSTED:
                raise QuotaExhaustedError(message, status=200)
            raise PermanentProviderError(message, status=200)
        return body.get("data")

    def _scrub(self, exc: ProviderError) -> None:
        if self._api_key and self._api_key in exc.message:
            exc.message = exc.message.replace(self._api_key, "***")
            exc.args = (exc.message,)


def _numbers(parcels: Sequence[Parcel]) -> list[dict[str, Any]]:
    """The request body: each number, with 17TRACK's carrier id when we know it (else auto-detection)."""
    out: list[dict[str, Any]] = []
    for parcel in parcels:
        item: dict[str, Any] = {"number": parcel.tracking_number}
        carrier = wire.carrier_id(parcel.carrier_code)
        if carrier is not None:
            item["carrier"] = carrier
        out.append(item)
    return out


def _items(data: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        raise InvalidResponseError("17track invalid response: `data` is not an object", status=200)
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidResponseError(f"17track invalid response: `data.{key}` is not a list", status=200)
    return [item for item in items if isinstance(item, dict)]


def _rejections(data: Any) -> list[tuple[str, object, ProviderError]]:
    """Each rejected number, 17TRACK's code for it, and the error that code means."""
    out: list[tuple[str, object, ProviderError]] = []
    for item in _items(data, "rejected"):
        number = item.get("number")
        if not isinstance(number, str):
            continue
        raw_error = item.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code = error.get("code")
        text = " ".join(str(error.get("message") or "rejected").split())[:200]
        message = f"17track rejected {number} ({code}): {text}"
        exc: ProviderError
        if code == wire.ERR_QUOTA_EXHAUSTED or "quota" in text.lower():
            exc = QuotaExhaustedError(message, status=200)
        elif code == wire.ERR_NOT_REGISTERED:
            exc = NotRegisteredError(message, status=200)
        elif code == wire.ERR_CARRIER_NOT_DETECTED:
            exc = ShipmentNotFoundError(message, status=200)
        else:
            exc = PermanentProviderError(message, status=200)
        out.append((number, code, exc))
    return out


def _registration(carrier: object, fallback: str) -> Registration:
    """What register said: the carrier 17TRACK settled on is the ref (digits), "auto" if it did not say."""
    code = wire.carrier_code(carrier, fallback)
    ref = str(carrier) if isinstance(carrier, int) and not isinstance(carrier, bool) and carrier > 0 else "auto"
    return Registration(ref=ref, carrier_code=code)


def _quota(data: Any, now: datetime) -> QuotaStatus:
    if not isinstance(data, dict):
        raise InvalidResponseError("17track invalid response: getquota `data` is not an object", status=200)

    def number(*keys: str) -> int | None:
        for key in keys:
            value = data.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                return int(value)
        return None

    total, used, remain = number("quota_total"), number("quota_used"), number("quota_remain", "quota_remaining")
    if total is None or (used is None and remain is None):
        raise InvalidResponseError("17track invalid response: getquota lacks quota_total/quota_used", status=200)
    used = used if used is not None else total - (remain or 0)
    remain = remain if remain is not None else total - used
    return QuotaStatus(total=total, used=used, remaining=remain, read_at=now, today_used=number("today_used"))


def _first_error(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        first = data["errors"][0]
        if isinstance(first, dict):
            return " ".join(str(first.get("message") or first.get("code") or "").split())
    return ""


def _error_text(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return " ".join(response.content[:200].decode("utf-8", "replace").split()) or response.reason_phrase
    if isinstance(body, dict):
        return _first_error(body.get("data")) or str(body.get("message") or response.reason_phrase)[:200]
    return response.reason_phrase


def _retry_after(response: httpx.Response, max_s: float) -> float:
    raw = response.headers.get("retry-after")
    try:
        seconds = float(raw) if raw else DEFAULT_RETRY_AFTER_S
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER_S
    return min(max(seconds if math.isfinite(seconds) else DEFAULT_RETRY_AFTER_S, 0.0), max_s)


def _describe(exc: BaseException) -> str:
    parts = [type(exc).__name__]
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None:
            break
        text = " ".join(str(cause).split())
        if text:
            parts.append(text[:200])
            break
        cause = cause.__cause__ or cause.__context__
    return ": ".join(parts)
