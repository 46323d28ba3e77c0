"""
EasyPost's trackers API as a Provider: a tracker is created once, then read by id; pushes are `tracker.updated` Events.

- Auth: `Authorization: Bearer <key>` (what EasyPost's own Python client sends; the API takes
  Basic too). Base URL includes the version: `https://api.easypost.com/v2`.
- `register` creates the tracker (`POST /trackers`, idempotent on code and carrier: the same
  tracker comes back) and remembers its id; `fetch` reads it (`GET /trackers/{id}`), creating
  it first when the id is not known yet (after a restart the create finds the same tracker,
  and its answer already is the current state, so that fetch costs one request too). A
  tracker that vanished (404) is created again. `find` lists trackers by tracking code
  (`GET /trackers?tracking_codes[]=…`, limited to 5 requests a second, which the client keeps).
- Pushes: `verify_push` checks `X-Hmac-Signature` (easypost_push.py); `parse_push` gives the
  Event id (the dedupe key) and the tracking it carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import httpx

from shiptrackd.config import ProviderConfig
from shiptrackd.errors import (
    InvalidResponseError,
    ProviderError,
    PushRejectedError,
    ShipmentNotFoundError,
)
from shiptrackd.models import TrackingInfo
from shiptrackd.providers import easypost_push
from shiptrackd.providers.base import (
    Limits,
    Parcel,
    ProviderBase,
    PushUpdate,
    Quota,
    Registration,
    RequestObserver,
    StatusMap,
    null_observer,
    per_number,
)
from shiptrackd.providers.easypost_parse import (
    STATUS_MAP,
    Tracker,
    easypost_carrier,
    error_details,
    parse_tracker_body,
    parse_tracker_list,
)
from shiptrackd.providers.endpoint_limits import SlidingWindow
from shiptrackd.providers.rest_calls import RestCalls, base_url_for, make_client
from shiptrackd.units import RateLimit

DEFAULT_BASE_URL = "https://api.easypost.com/v2"
LIST_LIMIT_PER_S = 5  # documented fixed limit on index endpoints (reference §2 "Rate limits")
T = TypeVar("T")


class EasyPostProvider(ProviderBase):
    """One EasyPost account (or the sandbox's `/v2`, via `base_url`)."""

    kind = "easypost"
    needs_registration = True
    detects_carrier = True  # a parcel registered without a carrier is auto-detected on creation
    # EasyPost's limiter is load-based (no documented account rate); index endpoints are 5/s.
    limits = Limits(rate=None, batch_size=1, endpoints={"GET /trackers": RateLimit(LIST_LIMIT_PER_S, 1.0)})

    def __init__(
        self,
        config: ProviderConfig,
        *,
        observer: RequestObserver | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = config.name
        self.status_map = StatusMap(STATUS_MAP)
        key = config.api_key.get()
        self._webhook_secret = config.webhook_secret.get()
        self._owns_client = client is None
        self._calls = RestCalls(
            self.kind,
            client or make_client(config.concurrency, config.timeout_s),
            base_url=base_url_for(config, DEFAULT_BASE_URL),
            headers={"Authorization": f"Bearer {key}"},
            secret=key,
            timeout_s=config.timeout_s,
            max_retry_after_s=config.max_retry_after_s,
            observer=observer or null_observer,
            error_text=error_message,
        )
        self._list_window = SlidingWindow(LIST_LIMIT_PER_S, 1.0)
        self._ids: dict[tuple[str, str], str] = {}  # (carrier_code, tracking_number) -> trk_… id, for fetch()

    def __repr__(self) -> str:
        return f"EasyPostProvider(name={self.name!r}, base_url={self._calls.base_url!r})"

    @property
    def quota_observer(self) -> Callable[[Quota], None] | None:
        return self._calls.quota_observer

    @quota_observer.setter
    def quota_observer(self, observer: Callable[[Quota], None] | None) -> None:
        self._calls.quota_observer = observer

    async def register(self, parcels: Sequence[Parcel]) -> Mapping[str, Registration | ProviderError]:
        """Create (or find again: creation is idempotent) the tracker for each parcel; its `trk_…` id is the ref."""
        return await per_number(parcels, self._register_one)  # batch_size is 1: one request per call

    async def _register_one(self, parcel: Parcel) -> Registration:
        tracker = await self._create(parcel.carrier_code, parcel.tracking_number)
        return Registration(ref=tracker.id, carrier_code=tracker.info.carrier_code)

    async def fetch_many(self, parcels: Sequence[Parcel]) -> Mapping[str, TrackingInfo | ProviderError]:
        """Read each parcel's tracker by its ref (`GET /trackers/{id}`); without one, create it."""
        return await per_number(parcels, self._fetch)

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """Ad-hoc fetch (tools, tests): by the tracker id this object learnt, else by creating the tracker."""
        ref = self._ids.get((carrier_code, tracking_number), "")
        return await self._fetch(Parcel(carrier_code, tracking_number, ref))

    async def find(self, tracking_number: str, carrier_code: str = "") -> list[Tracker]:
        """The account's trackers for this tracking code (and carrier, if given), newest first."""
        params = {"tracking_codes[]": tracking_number, "page_size": "100"}
        if carrier_code:
            params["carrier"] = easypost_carrier(carrier_code)
        await self._list_window.acquire()
        response = await self._calls.send("GET", "/trackers", f"list {tracking_number}", params=params)
        trackers, _ = self._parsed(lambda: parse_tracker_list(response.content), f"list {tracking_number}")
        for tracker in trackers:
            self._counted(tracker)
        return trackers

    async def unregister(self, parcels: Sequence[Parcel]) -> None:
        """Delete each parcel's tracker (by ref); one already gone is fine."""
        for parcel in parcels:
            ref = parcel.ref or self._ids.get((parcel.carrier_code, parcel.tracking_number), "")
            self._ids.pop((parcel.carrier_code, parcel.tracking_number), None)
            if not ref:
                continue
            try:
                await self._calls.send("DELETE", f"/trackers/{ref}", f"delete {parcel.tracking_number}")
            except ShipmentNotFoundError:
                pass

    async def subscribe(self, url: str) -> str:
        """Register a webhook for `url` signed with our webhook secret; returns its `hook_…` id."""
        body = {"webhook": {"url": url, "webhook_secret": self._webhook_secret}}
        response = await self._calls.send("POST", "/webhooks", "create webhook", json=body)
        try:
            hook_id = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            raise InvalidResponseError("easypost invalid response (create webhook): id: missing") from None
        if not isinstance(hook_id, str):
            raise InvalidResponseError("easypost invalid response (create webhook): id: not a string")
        return hook_id

    async def verify_push(self, headers: Mapping[str, str], body: bytes) -> None:
        """`X-Hmac-Signature` must prove the body came from EasyPost with our webhook secret."""
        if not easypost_push.verify(headers, body, self._webhook_secret):
            raise PushRejectedError(f"{self.name}: X-Hmac-Signature missing or wrong")

    def parse_push(self, body: bytes) -> list[PushUpdate]:
        """A verified Event: one update for a tracker event (its id is the dedupe key), none for others."""
        try:
            event = easypost_push.parse_event(body)
        except InvalidResponseError as exc:
            raise PushRejectedError(f"{self.name}: {exc.message}") from None
        if event.tracker is None:
            return []
        info = self._counted(event.tracker).info
        self._ids.setdefault((info.carrier_code, info.tracking_number), event.tracker.id)
        return [PushUpdate(info.tracking_number, info.carrier_code, info, event.description, event.id)]

    async def check_connectivity(self) -> float:
        """One cheap authenticated request (a one-item tracker list) and its latency in seconds."""
        await self._list_window.acquire()
        return await self._calls.check("GET", "/trackers", params={"page_size": "1"})

    async def aclose(self) -> None:
        if self._owns_client:
            await self._calls.aclose()

    async def _fetch(self, parcel: Parcel) -> TrackingInfo:
        if parcel.ref:
            what = f"{parcel.tracking_number} {parcel.ref}"
            try:
                response = await self._calls.send("GET", f"/trackers/{parcel.ref}", what)
            except ShipmentNotFoundError:
                pass  # the tracker is gone (deleted, expired): creating it again is the one way back
            else:
                return self._counted(self._parsed(lambda: parse_tracker_body(response.content), what)).info
        return self._counted(await self._create(parcel.carrier_code, parcel.tracking_number)).info

    async def _create(self, carrier_code: str, tracking_number: str) -> Tracker:
        tracker: dict[str, str] = {"tracking_code": tracking_number}
        if carrier_code:
            tracker["carrier"] = easypost_carrier(carrier_code)
        what = f"create {carrier_code} {tracking_number}".replace("  ", " ")
        response = await self._calls.send("POST", "/trackers", what, json={"tracker": tracker})
        created = self._parsed(lambda: parse_tracker_body(response.content), what)
        self._ids[(carrier_code, tracking_number)] = created.id
        return created

    def _parsed(self, parse: Callable[[], T], what: str) -> T:
        try:
            return parse()
        except InvalidResponseError as exc:
            raise InvalidResponseError(f"easypost invalid response ({what}): {exc.message}", status=200) from None

    def _counted(self, tracker: Tracker) -> Tracker:
        """Count an unknown status in the status map (its raw text is already kept)."""
        if not tracker.known_status:
            self.status_map.map(tracker.info.provider_status, tracker.info.provider_sub_status)
        return tracker


def error_message(response: httpx.Response) -> str:
    """`CODE: message` from an EasyPost error answer, for the text of the ProviderError."""
    code, message = error_details(response.content, response.reason_phrase or "error")
    return f"{code}: {message}" if code else message
