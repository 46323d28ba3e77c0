"""
AfterShip's Tracking API (version 2026-07) as a Provider: create a tracking once, then read it by id.

- Auth: the `as-api-key` header. Base URL includes the version:
  `https://api.aftership.com/tracking/2026-07`.
- `register` creates the tracking (`POST /trackings`, 2026-07's flat body `{"tracking_number",
  "slug"}`); if AfterShip says it exists (meta code 4003, whatever HTTP status it pairs with)
  the id comes from the answer's `data`, or from a list by number. `fetch` reads by id
  (`GET /trackings/{id}`), registering first when the id is not known yet (the create's
  answer already is the current state). A tracking that vanished (404) is created again.
- Carrier detection: a parcel registered without a carrier is first sent to `POST
  /couriers/detect` (flat body `{"tracking_number"}`, answer `data.couriers[].slug`, best
  match first: AfterShip's SDK for the dated versions; tracking-apis.md does not describe it),
  then created with the first slug. No courier found fails that number alone (not_found).
- Limits are per endpoint (20 creates, 6 lists, 5 reads, 3 detections a second) and every
  answer says where that endpoint stands: endpoint_limits.py keeps one window per endpoint
  and waits for its reset instead of earning a 429.
- Pushes: `verify_push` checks `aftership-hmac-sha256`; `parse_push` gives `event_id` (the
  dedupe key, nothing time-bound is signed) and the tracking in `msg`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from shiptrackd.config import ProviderConfig
from shiptrackd.errors import (
    InvalidResponseError,
    ProviderError,
    PushRejectedError,
    RateLimitedError,
    ShipmentNotFoundError,
)
from shiptrackd.models import TrackingInfo
from shiptrackd.providers import aftership_push
from shiptrackd.providers import json_fields as jf
from shiptrackd.providers.aftership_parse import (
    SUBTAG_MAP,
    TAG_MAP,
    Tracking,
    error_details,
    parse_detected,
    parse_tracking,
    slug_for,
    unwrap,
)
from shiptrackd.providers.base import (
    Limits,
    Parcel,
    ProviderBase,
    PushUpdate,
    Registration,
    RequestObserver,
    StatusMap,
    null_observer,
    per_number,
)
from shiptrackd.providers.endpoint_limits import EndpointLimits
from shiptrackd.providers.rest_calls import RestCalls, base_url_for, make_client
from shiptrackd.units import RateLimit

DEFAULT_BASE_URL = "https://api.aftership.com/tracking/2026-07"
# Documented per-endpoint limits from 2024-07 on (reference §3 "Rate limits"); answers refine them.
ENDPOINT_LIMITS = {
    "POST /trackings": 20,
    "GET /trackings": 6,
    "GET /trackings/:id": 5,
    "DELETE /trackings/:id": 5,
    "POST /couriers/detect": 3,  # AfterShip's rate-limit page, 2024-07 on
}
ALREADY_EXISTS = 4003
T = TypeVar("T")


class AfterShipProvider(ProviderBase):
    """One AfterShip account (or the sandbox's `/tracking/2026-07`, via `base_url`)."""

    kind = "aftership"
    needs_registration = True
    detects_carrier = True
    # Reads by id (5/s) are what polling spends; creates have 20/s of their own.
    limits = Limits(
        rate=RateLimit(ENDPOINT_LIMITS["GET /trackings/:id"], 1.0),
        batch_size=1,
        endpoints={name: RateLimit(count, 1.0) for name, count in ENDPOINT_LIMITS.items()},
    )

    def __init__(
        self,
        config: ProviderConfig,
        *,
        observer: RequestObserver | None = None,
        client: httpx.AsyncClient | None = None,
        limits: EndpointLimits | None = None,
    ) -> None:
        self.name = config.name
        self.status_map = StatusMap(TAG_MAP, SUBTAG_MAP)
        key = config.api_key.get()
        self._webhook_secret = config.webhook_secret.get()
        self._owns_client = client is None
        self._calls = RestCalls(
            self.kind,
            client or make_client(config.concurrency, config.timeout_s),
            base_url=base_url_for(config, DEFAULT_BASE_URL),
            headers={"as-api-key": key, "Content-Type": "application/json"},
            secret=key,
            timeout_s=config.timeout_s,
            max_retry_after_s=config.max_retry_after_s,
            observer=observer or null_observer,
            error_text=error_message,
        )
        # X-RateLimit-* here are per endpoint: they move these windows, not the account-wide pace
        # (no `quota_observer`): a read window at 1 of 5 left is normal at full speed, not pressure.
        self.windows = limits or EndpointLimits({name: rate.count for name, rate in self.limits.endpoints.items()})
        self._ids: dict[tuple[str, str], str] = {}  # (carrier_code, tracking_number) -> tracking id, for fetch()

    def __repr__(self) -> str:
        return f"AfterShipProvider(name={self.name!r}, base_url={self._calls.base_url!r})"

    async def register(self, parcels: Sequence[Parcel]) -> Mapping[str, Registration | ProviderError]:
        """Create each parcel's tracking (or find the existing one); the tracking id is the ref."""
        return await per_number(parcels, self._register_one)  # batch_size is 1: one request per call

    async def _register_one(self, parcel: Parcel) -> Registration:
        tracking = await self._create(parcel.carrier_code, parcel.tracking_number)
        return Registration(ref=tracking.id, carrier_code=tracking.info.carrier_code)

    async def fetch_many(self, parcels: Sequence[Parcel]) -> Mapping[str, TrackingInfo | ProviderError]:
        """Read each parcel's tracking by its ref (`GET /trackings/{id}`); without one, create it."""
        return await per_number(parcels, self._fetch)

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """Ad-hoc fetch (tools, tests): by the id this object learnt, else by creating (or finding) it."""
        ref = self._ids.get((carrier_code, tracking_number), "")
        return await self._fetch(Parcel(carrier_code, tracking_number, ref))

    async def find(self, tracking_number: str, carrier_code: str = "") -> list[Tracking]:
        """The account's trackings for this number (and courier, if given)."""
        params = {"tracking_numbers": tracking_number}
        if carrier_code:
            params["slug"] = slug_for(carrier_code)
        what = f"list {tracking_number}"
        response = await self._send("GET /trackings", "GET", "/trackings", what, params=params)

        def parse() -> list[Tracking]:
            items = jf.items(unwrap(response.content), "trackings")
            return [parse_tracking(item, where=f"data.trackings[{i}]") for i, item in enumerate(items)]

        return [self._counted(tracking) for tracking in self._parsed(parse, what)]

    async def detect(self, tracking_number: str) -> list[str]:
        """The carrier codes AfterShip's `POST /couriers/detect` finds for this number, best match first."""
        what = f"detect {tracking_number}"
        body = {"tracking_number": tracking_number}
        response = await self._send("POST /couriers/detect", "POST", "/couriers/detect", what, json=body)
        return self._parsed(lambda: parse_detected(response.content), what)

    async def unregister(self, parcels: Sequence[Parcel]) -> None:
        """Delete each parcel's tracking (by ref); one already gone is fine."""
        for parcel in parcels:
            ref = parcel.ref or self._ids.get((parcel.carrier_code, parcel.tracking_number), "")
            self._ids.pop((parcel.carrier_code, parcel.tracking_number), None)
            if not ref:
                continue
            try:
                await self._send(
                    "DELETE /trackings/:id", "DELETE", f"/trackings/{ref}", f"delete {parcel.tracking_number}"
                )
            except ShipmentNotFoundError:
                pass

    async def verify_push(self, headers: Mapping[str, str], body: bytes) -> None:
        """`aftership-hmac-sha256` must prove the body came from AfterShip with our webhook secret."""
        if not aftership_push.verify(headers, body, self._webhook_secret):
            raise PushRejectedError(f"{self.name}: aftership-hmac-sha256 missing or wrong")

    def parse_push(self, body: bytes) -> list[PushUpdate]:
        """A verified webhook: one update for a tracking event (`event_id` is the dedupe key), none for others."""
        try:
            event = aftership_push.parse_event(body)
        except InvalidResponseError as exc:
            raise PushRejectedError(f"{self.name}: {exc.message}") from None
        if event.tracking is None:
            return []
        info = self._counted(event.tracking).info
        self._ids.setdefault((info.carrier_code, info.tracking_number), event.tracking.id)
        return [PushUpdate(info.tracking_number, info.carrier_code, info, event.event, event.id)]

    async def check_connectivity(self) -> float:
        """One cheap authenticated request (a list of one) and its latency in seconds."""
        await self.windows.acquire("GET /trackings")
        return await self._calls.check("GET", "/trackings", params={"limit": "1"})

    async def aclose(self) -> None:
        if self._owns_client:
            await self._calls.aclose()

    async def _fetch(self, parcel: Parcel) -> TrackingInfo:
        if parcel.ref:
            try:
                return self._counted(await self._get(parcel.ref, parcel.tracking_number)).info
            except ShipmentNotFoundError:
                pass  # deleted or expired at AfterShip: creating it again is the one way back
        return self._counted(await self._create(parcel.carrier_code, parcel.tracking_number)).info

    async def _create(self, carrier_code: str, tracking_number: str) -> Tracking:
        asked = carrier_code
        if not carrier_code:
            detected = await self.detect(tracking_number)
            if not detected:
                raise ShipmentNotFoundError(
                    f"aftership detected no courier for {tracking_number}: name its carrier", status=200
                )
            carrier_code = detected[0]
        body: dict[str, str] = {"tracking_number": tracking_number, "slug": slug_for(carrier_code)}
        what = f"create {carrier_code} {tracking_number}"
        response = await self._send("POST /trackings", "POST", "/trackings", what, json=body, ok=_already_exists)
        if 200 <= response.status_code < 300:
            created = self._parsed(lambda: parse_tracking(unwrap(response.content)), what)
        else:
            created = await self._existing(response, carrier_code, tracking_number)
        self._ids[(carrier_code, tracking_number)] = self._ids[(asked, tracking_number)] = created.id
        return created

    async def _existing(self, response: httpx.Response, carrier_code: str, tracking_number: str) -> Tracking:
        """The tracking a 4003 answer is about: by the id it names, else by listing the number."""
        existing_id = _named_id(response)
        if existing_id:
            return await self._get(existing_id, tracking_number)
        found = await self.find(tracking_number, carrier_code)
        if not found:
            raise InvalidResponseError(f"aftership said {tracking_number} exists, but no list has it", status=400)
        return found[0]

    async def _get(self, tracking_id: str, tracking_number: str) -> Tracking:
        what = f"{tracking_number} {tracking_id}"
        response = await self._send("GET /trackings/:id", "GET", f"/trackings/{tracking_id}", what)
        return self._parsed(lambda: parse_tracking(unwrap(response.content)), what)

    async def _send(self, endpoint: str, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """One request inside the endpoint's window; the answer's X-RateLimit-* moves the window.

        A 429 is this endpoint's (AfterShip limits each apart): its window is held for the
        Retry-After and the error names the endpoint, so the throttle pauses only it, not the account.
        """
        await self.windows.acquire(endpoint)

        def observe(answer: httpx.Response) -> None:
            self.windows.observe(endpoint, answer.headers)

        try:
            return await self._calls.send(method, path, what, on_answer=observe, **kwargs)
        except RateLimitedError as exc:
            self.windows.hold(endpoint, exc.retry_after_s)
            exc.endpoint = endpoint
            raise

    def _parsed(self, parse: Callable[[], T], what: str) -> T:
        try:
            return parse()
        except InvalidResponseError as exc:
            raise InvalidResponseError(f"aftership invalid response ({what}): {exc.message}", status=200) from None

    def _counted(self, tracking: Tracking) -> Tracking:
        """Count an unknown tag in the status map (its raw text is already kept)."""
        if not tracking.known_status:
            self.status_map.map(tracking.info.provider_status, tracking.info.provider_sub_status)
        return tracking


def _already_exists(response: httpx.Response) -> bool:
    """A 4xx whose meta code is 4003: not a failure, the tracking is there already."""
    return 400 <= response.status_code < 500 and error_details(response.content, "")[0] == ALREADY_EXISTS


def _named_id(response: httpx.Response) -> str:
    """The existing tracking's id in a 4003 answer's data (`data.id`, or 2024-era `data.tracking.id`)."""
    try:
        data = unwrap(response.content, status=response.status_code)
        return jf.text(data, "id") or jf.text(jf.obj(data, "tracking"), "id")
    except InvalidResponseError:
        return ""


def error_message(response: httpx.Response) -> str:
    """`type code: message` from an AfterShip error envelope, for the text of the ProviderError."""
    code, kind, message = error_details(response.content, response.reason_phrase or "error")
    prefix = " ".join(part for part in (kind, str(code) if code is not None else "") if part)
    return f"{prefix}: {message}" if prefix else message
