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

from collections.abc import Callable
from typing import TypeVar

import httpx

from shiptrackd.config import ProviderConfig
from shiptrackd.errors import InvalidResponseError, ShipmentNotFoundError
from shiptrackd.models import TrackingInfo
from shiptrackd.providers import easypost_push
from shiptrackd.providers.base import Quota, RequestObserver, null_observer
from shiptrackd.providers.easypost_parse import (
    Tracker,
    easypost_carrier,
    error_details,
    parse_tracker_body,
    parse_tracker_list,
)
from shiptrackd.providers.endpoint_limits import SlidingWindow
from shiptrackd.providers.http_headers import Headers
from shiptrackd.providers.rest_calls import RestCalls, make_client

DEFAULT_BASE_URL = "https://api.easypost.com/v2"
LIST_LIMIT_PER_S = 5  # documented fixed limit on index endpoints (reference §2 "Rate limits")
T = TypeVar("T")


class EasyPostProvider:
    """One EasyPost account (or the sandbox's `/v2`, via `base_url`)."""

    name = "easypost"
    batches = False

    def __init__(
        self,
        config: ProviderConfig,
        *,
        observer: RequestObserver | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        key = config.api_key.get()
        self._webhook_secret = config.webhook_secret.get()
        self._owns_client = client is None
        self._calls = RestCalls(
            self.name,
            client or make_client(config.concurrency, config.timeout_s),
            base_url=config.base_url,
            headers={"Authorization": f"Bearer {key}"},
            secret=key,
            timeout_s=config.timeout_s,
            max_retry_after_s=config.max_retry_after_s,
            observer=observer or null_observer,
            error_text=error_message,
        )
        self._list_window = SlidingWindow(LIST_LIMIT_PER_S, 1.0)
        self._ids: dict[tuple[str, str], str] = {}  # (carrier_code, tracking_number) -> trk_… id
        self.unknown_statuses = 0  # answers whose status was not in the map (stored as UN)

    def __repr__(self) -> str:
        return f"EasyPostProvider(base_url={self._calls.base_url!r})"

    @property
    def quota_observer(self) -> Callable[[Quota], None] | None:
        return self._calls.quota_observer

    @quota_observer.setter
    def quota_observer(self, observer: Callable[[Quota], None] | None) -> None:
        self._calls.quota_observer = observer

    async def register(self, carrier_code: str, tracking_number: str) -> str:
        """Create (or find again) the tracker for this shipment and return its id."""
        return (await self._create(carrier_code, tracking_number)).id

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """The shipment's tracking, by its tracker id when known, else by creating the tracker."""
        tracker_id = self._ids.get((carrier_code, tracking_number))
        if tracker_id is not None:
            try:
                tracker = await self._read(f"/trackers/{tracker_id}", f"{tracking_number} {tracker_id}")
            except ShipmentNotFoundError:
                del self._ids[(carrier_code, tracking_number)]
            else:
                return self._counted(tracker).info
        return self._counted(await self._create(carrier_code, tracking_number)).info

    async def find(self, tracking_number: str, carrier_code: str = "") -> list[Tracker]:
        """The account's trackers for this tracking code (and carrier, if given), newest first."""
        params = {"tracking_codes[]": tracking_number, "page_size": "100"}
        if carrier_code:
            params["carrier"] = easypost_carrier(carrier_code)
        await self._list_window.acquire()
        response = await self._calls.send("GET", "/trackers", f"list {tracking_number}", params=params)
        trackers, _ = self._parsed(lambda: parse_tracker_list(response.content), f"list {tracking_number}")
        return trackers

    async def unregister(self, carrier_code: str, tracking_number: str) -> None:
        """Delete the tracker, if we know it; an already gone tracker is fine."""
        tracker_id = self._ids.pop((carrier_code, tracking_number), None)
        if tracker_id is None:
            return
        try:
            await self._calls.send("DELETE", f"/trackers/{tracker_id}", f"delete {tracking_number}")
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

    def verify_push(self, headers: Headers, body: bytes) -> bool:
        """True if `X-Hmac-Signature` proves the body came from EasyPost with our webhook secret."""
        return easypost_push.verify(headers, body, self._webhook_secret)

    def parse_push(self, body: bytes) -> easypost_push.EasyPostEvent:
        """A verified Event; its tracker (if any) is remembered so the next fetch reads it by id."""
        event = easypost_push.parse_event(body)
        if event.tracker is not None:
            info = event.tracker.info
            self._ids.setdefault((info.carrier_code, info.tracking_number), event.tracker.id)
            self._counted(event.tracker)
        return event

    async def check_connectivity(self) -> float:
        """One cheap authenticated request (a one-item tracker list) and its latency in seconds."""
        await self._list_window.acquire()
        return await self._calls.check("GET", "/trackers", params={"page_size": "1"})

    async def aclose(self) -> None:
        if self._owns_client:
            await self._calls.aclose()

    async def _create(self, carrier_code: str, tracking_number: str) -> Tracker:
        tracker: dict[str, str] = {"tracking_code": tracking_number}
        if carrier_code:
            tracker["carrier"] = easypost_carrier(carrier_code)
        what = f"create {carrier_code} {tracking_number}".replace("  ", " ")
        response = await self._calls.send("POST", "/trackers", what, json={"tracker": tracker})
        created = self._parsed(lambda: parse_tracker_body(response.content), what)
        self._ids[(carrier_code, tracking_number)] = created.id
        return created

    async def _read(self, path: str, what: str) -> Tracker:
        response = await self._calls.send("GET", path, what)
        return self._parsed(lambda: parse_tracker_body(response.content), what)

    def _parsed(self, parse: Callable[[], T], what: str) -> T:
        try:
            return parse()
        except InvalidResponseError as exc:
            raise InvalidResponseError(f"easypost invalid response ({what}): {exc.message}", status=200) from None

    def _counted(self, tracker: Tracker) -> Tracker:
        if not tracker.known_status:
            self.unknown_statuses += 1
        return tracker


def error_message(response: httpx.Response) -> str:
    """`CODE: message` from an EasyPost error answer, for the text of the ProviderError."""
    code, message = error_details(response.content, response.reason_phrase or "error")
    return f"{code}: {message}" if code else message
