"""
EasyPost's trackers API on the sandbox, under `/v2` (reference/tracking-apis.md §2 and §6.2).

- Auth: `Authorization: Bearer <key>` or `Basic base64(<key>:)`; anything else is 401 with
  EasyPost's `{"error": {"code", "message", "errors"}}`. A key starting `EZAK` is a
  production key, any other a test key; a tracker's `mode` says which created it.
- `POST /v2/trackers` `{"tracker": {"tracking_code", "carrier"?}}`: idempotent on (code,
  carrier), answered 200 with `Location` (the recorded cassette's status); a blank code is 422
  `PARAMETER.REQUIRED`. `GET /v2/trackers/{id}`; `GET /v2/trackers` with `tracking_codes[]`,
  `carrier`, `page_size`, `before_id` -> `{"trackers": [...], "has_more"}` newest first, limited
  to 5 requests/s (429 beyond); `DELETE /v2/trackers/{id}`.
- `POST|GET /v2/webhooks`, `DELETE /v2/webhooks/{id}`: where `tracker.updated` Events go,
  signed `X-Hmac-Signature: hmac-sha256-hex=<hex HMAC-SHA256 of the body, NFKD secret>`.
- Test-mode codes EZ1000000001 … EZ7000000007 (carrier USPS) sit at pre_transit, in_transit,
  out_for_delivery, delivered, return_to_sender, failure and unknown; other codes follow the
  sandbox lifecycles (lifecycle.py pins included), re-dressed in EasyPost's vocabulary.
- Faults: the magic substrings of faults.py in a tracking code (RATELIMIT, FAIL500, FAIL503,
  RESET, HANG, BADJSON, NOTFOUND, FORBIDDEN), and the sandbox's random `faults` rates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shiptrackd.sandbox import faults as fault_kinds
from shiptrackd.sandbox.pushes import Push, Pusher
from shiptrackd.sandbox.scans import Scan, local_iso, story, utc_iso
from shiptrackd.sandbox.server import Drop, Reply, Request
from shiptrackd.sandbox.state import SandboxStats, SimClock, TokenBucket

PREFIX = "/v2/"
LIST_RATE_PER_S = 5.0  # documented fixed limit on index (list) endpoints
# Test-mode tracking codes -> (status, status_detail), all carrier USPS.
TEST_CODES: dict[str, tuple[str, str]] = {
    "EZ1000000001": ("pre_transit", "label_created"),
    "EZ2000000002": ("in_transit", "arrived_at_facility"),
    "EZ3000000003": ("out_for_delivery", "out_for_delivery"),
    "EZ4000000004": ("delivered", "arrived_at_destination"),
    "EZ5000000005": ("return_to_sender", "return"),
    "EZ6000000006": ("failure", "delivery_exception"),
    "EZ7000000007": ("unknown", "unknown"),
}
# The history each test code shows, oldest first (one detail every 6 h up to its creation).
_TEST_STEPS: dict[str, tuple[str, ...]] = {
    "pre_transit": ("pre_transit",),
    "in_transit": ("pre_transit", "in_transit"),
    "out_for_delivery": ("pre_transit", "in_transit", "out_for_delivery"),
    "delivered": ("pre_transit", "in_transit", "out_for_delivery", "delivered"),
    "return_to_sender": ("pre_transit", "in_transit", "return_to_sender"),
    "failure": ("pre_transit", "in_transit", "failure"),
    "unknown": (),
}
_TEST_DETAIL = {status: detail for status, detail in TEST_CODES.values()}
# ShipEngine status (+ detail) -> EasyPost status, status_detail.
_STATUS = {
    "NY": ("pre_transit", "label_created"),
    "AC": ("in_transit", "arrived_at_facility"),
    "IT": ("in_transit", "status_update"),
    "AT": ("in_transit", "delivery_exception"),
    "SP": ("available_for_pickup", "arrived_at_pickup_location"),
    "DE": ("delivered", "arrived_at_destination"),
    "EX": ("failure", "delivery_exception"),
    "UN": ("unknown", "unknown"),
}
_DETAILS = {
    "OUT_FOR_DELIVERY": ("out_for_delivery", "out_for_delivery"),
    "HUB_SCAN_IN": ("in_transit", "arrived_at_facility"),
    "HUB_SCAN_OUT": ("in_transit", "departed_facility"),
    "CARRIER_DELAYS": ("in_transit", "weather_delay"),
    "PARCEL_LOST": ("failure", "lost"),
}
_CARRIERS = {"USPS": "usps", "UPS": "ups", "FedEx": "fedex", "DHLExpress": "dhl_express", "CanadaPost": "canada_post"}


@dataclass
class TrackerRecord:
    id: str
    code: str
    carrier: str
    mode: str
    created_at: datetime
    pushed: tuple[str, int] | None = None  # (status, detail count) last pushed


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    secret: str
    mode: str
    created_at: datetime


def sign(body: bytes, secret: str) -> str:
    """EasyPost's `X-Hmac-Signature` value, written here independently of the client's verifier."""
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class EasyPostDialect:
    """The `/v2` routes; shares the sandbox's clock, stats, pusher and random faults."""

    def __init__(
        self, clock: Callable[[], SimClock], stats: SandboxStats, pusher: Pusher, draw_fault: Callable[[], str | None]
    ) -> None:
        self.api_key: str | None = "EZTK_sandbox"
        self.trackers: dict[str, TrackerRecord] = {}
        self.webhooks: dict[str, Webhook] = {}
        self._by_code: dict[tuple[str, str], str] = {}
        self._clock = clock
        self._stats = stats
        self._pusher = pusher
        self._draw_fault = draw_fault
        self._list_bucket = TokenBucket(LIST_RATE_PER_S, LIST_RATE_PER_S)
        pusher.add_scan(self.scan)

    def configure(self, knobs: dict[str, Any]) -> None:
        """`api_key` (None accepts any key) is this dialect's one knob."""
        unknown = set(knobs) - {"api_key"}
        if unknown:
            raise ValueError(f"unknown easypost knob(s): {', '.join(sorted(unknown))} (known: api_key)")
        key = knobs.get("api_key", self.api_key)
        if key is not None and not isinstance(key, str):
            raise ValueError("api_key: expected a string or null")
        self.api_key = key

    # --- requests -------------------------------------------------------------------------

    async def handle(self, request: Request, request_id: str) -> Reply | Drop:
        reply = self._route(request)
        if isinstance(reply, Reply):
            reply.headers.append(("x-ep-request-uuid", request_id))
        return reply

    def _route(self, request: Request) -> Reply | Drop:
        key = self._key(request)
        if key is None:
            return _error(401, "APIKEY.REQUIRED", "A valid API key is required (Bearer or Basic auth).")
        mode = "production" if key.startswith("EZAK") else "test"
        parts = request.path[len(PREFIX) :].strip("/").split("/")
        method = request.method
        if parts[0] == "trackers":
            if len(parts) == 1 and method == "POST":
                return self._create(request, mode)
            if len(parts) == 1 and method == "GET":
                return self._list(request)
            if len(parts) == 2 and method in ("GET", "DELETE"):
                record = self.trackers.get(parts[1])
                if record is None:
                    return _error(404, "NOT_FOUND", "The requested resource could not be found.")
                fault = self._fault(record.code)
                if fault is not None:
                    return fault
                if method == "DELETE":
                    del self.trackers[record.id]
                    self._by_code.pop((record.code, record.carrier), None)
                    return Reply(200, b"{}")
                return Reply(200, _json(self.tracker(record)))
        if parts[0] == "webhooks":
            return self._webhooks(request, parts, mode)
        return _error(404, "NOT_FOUND", "The requested resource could not be found.")

    def _key(self, request: Request) -> str | None:
        """The API key from Bearer or Basic auth, if it is the accepted one."""
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                return None
        if not key or (self.api_key is not None and key != self.api_key):
            return None
        return key

    def _create(self, request: Request, mode: str) -> Reply | Drop:
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _error(400, "BAD_REQUEST", "The request body is not valid JSON.")
        tracker = body.get("tracker") if isinstance(body, dict) else None
        code = tracker.get("tracking_code") if isinstance(tracker, dict) else None
        if not isinstance(code, str) or not code.strip():
            errors = [{"field": "tracker.tracking_code", "message": "cannot be blank"}]
            return _error(422, "PARAMETER.REQUIRED", "Missing required parameter.", errors)
        code = code.strip()
        carrier = tracker.get("carrier") if isinstance(tracker, dict) else None
        if not isinstance(carrier, str) or not carrier.strip():
            carrier = _detect(code)
        self._stats.by_number[code] += 1
        fault = self._fault(code)
        if fault is not None:
            return fault
        existing = self._by_code.get((code, carrier))
        if existing not in self.trackers:  # never made, or deleted (tests clear `trackers` directly)
            record = TrackerRecord(f"trk_{uuid.uuid4().hex}", code, carrier, mode, self._clock().now())
            record.pushed = self._push_key(record)
            self.trackers[record.id] = record
            self._by_code[(code, carrier)] = record.id
            existing = record.id
        record = self.trackers[existing]
        return Reply(200, _json(self.tracker(record)), [("location", f"/api/v2/trackers/{record.id}")])

    def _list(self, request: Request) -> Reply:
        if self._list_bucket.take(time.monotonic()):
            return _error(429, "RATE_LIMITED", "You have exceeded the rate limit for this endpoint.")
        # `tracking_codes[]=A`, `tracking_codes[0]=A`, `tracking_codes=A,B`: clients spell arrays differently.
        codes = {
            code
            for name, values in request.query.items()
            if name.startswith("tracking_codes") or name == "tracking_code"
            for value in values
            for code in value.split(",")
            if code
        }
        carrier = request.query.get("carrier", [""])[-1]
        try:
            page_size = max(1, min(100, int(request.query.get("page_size", ["20"])[-1])))
        except ValueError:
            return _error(422, "PARAMETER.INVALID", "page_size must be an integer.")
        before_id = request.query.get("before_id", [""])[-1]
        records = sorted(self.trackers.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        if before_id in self.trackers:
            cut = self.trackers[before_id]
            records = [r for r in records if (r.created_at, r.id) < (cut.created_at, cut.id)]
        records = [r for r in records if (not codes or r.code in codes) and (not carrier or r.carrier == carrier)]
        page = records[:page_size]
        body = {"trackers": [self.tracker(r) for r in page], "has_more": len(records) > page_size}
        return Reply(200, _json(body))

    def _webhooks(self, request: Request, parts: list[str], mode: str) -> Reply:
        now = self._clock().now()
        if len(parts) == 1 and request.method == "POST":
            try:
                body = json.loads(request.body or b"{}")
                webhook = body["webhook"]
                url = webhook["url"]
            except (ValueError, KeyError, TypeError):
                errors = [{"field": "webhook.url", "message": "cannot be blank"}]
                return _error(422, "PARAMETER.REQUIRED", "Missing required parameter.", errors)
            secret = webhook.get("webhook_secret") or ""
            if not isinstance(url, str) or not url or not isinstance(secret, str):
                return _error(422, "PARAMETER.INVALID", "webhook.url and webhook_secret must be strings.")
            hook = Webhook(f"hook_{uuid.uuid4().hex}", url, secret, mode, now)
            self.webhooks[hook.id] = hook
            return Reply(201, _json(_webhook_json(hook)))
        if len(parts) == 1 and request.method == "GET":
            return Reply(200, _json({"webhooks": [_webhook_json(h) for h in self.webhooks.values()]}))
        if len(parts) == 2 and request.method == "DELETE" and parts[1] in self.webhooks:
            del self.webhooks[parts[1]]
            return Reply(200, b"{}")
        return _error(404, "NOT_FOUND", "The requested resource could not be found.")

    def _fault(self, code: str) -> Reply | Drop | None:
        kind = fault_kinds.forced_fault(code, self._stats.by_number[code]) or self._draw_fault()
        if kind is None:
            return None
        self._stats.faults[kind] += 1
        if kind in ("reset", "hang"):
            return Drop(kind)
        if kind == "429":
            return _error(429, "RATE_LIMITED", "You have exceeded the rate limit.")
        if kind in ("500", "odd500"):
            return _error(500, "INTERNAL_SERVER_ERROR", "Something went wrong on our end.")
        if kind == "503":
            return _error(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable.")
        if kind == "notfound":
            return _error(404, "NOT_FOUND", "The requested resource could not be found.")
        if kind == "forbidden":
            return _error(403, "FORBIDDEN", "This API key may not access trackers.")
        if kind == "badjson":
            return Reply(200, b'{"id":"trk_cut","object":"Tracker","tracking_')
        return None

    # --- bodies ---------------------------------------------------------------------------

    def tracker(self, record: TrackerRecord) -> dict[str, Any]:
        """The Tracker object for `record` as of the sandbox's now."""
        now = self._clock().now()
        status, detail, details, eta = self._state(record, now)
        return {
            "id": record.id,
            "object": "Tracker",
            "mode": record.mode,
            "tracking_code": record.code,
            "status": status,
            "status_detail": detail,
            "signed_by": "J DOE" if status == "delivered" else None,
            "weight": None,
            "est_delivery_date": utc_iso(eta) if eta else None,
            "shipment_id": None,
            "carrier": record.carrier,
            "tracking_details": details,
            "carrier_detail": {
                "object": "CarrierDetail",
                "service": "First-Class Package Service",
                "container_type": None,
                "est_delivery_date_local": None,
                "est_delivery_time_local": None,
                "origin_location": None,
                "origin_tracking_location": None,
                "destination_location": None,
                "destination_tracking_location": None,
                "guaranteed_delivery_date": None,
                "alternate_identifier": None,
                "initial_delivery_attempt": None,
            },
            "finalized": status in ("delivered", "return_to_sender", "failure", "cancelled", "error"),
            "is_return": status == "return_to_sender",
            "public_url": f"https://track.easypost.com/{base64.urlsafe_b64encode(record.id.encode()).decode()}",
            "created_at": utc_iso(record.created_at),
            "updated_at": utc_iso(max(now, record.created_at)),
        }

    def _state(self, record: TrackerRecord, now: datetime) -> tuple[str, str, list[dict[str, Any]], datetime | None]:
        """(status, status_detail, tracking_details oldest first, estimated delivery) as of now."""
        if record.mode == "test" and record.code in TEST_CODES:
            status, detail = TEST_CODES[record.code]
            steps = _TEST_STEPS[status]
            base = record.created_at - timedelta(hours=6 * len(steps))
            details = [
                _detail(base + timedelta(hours=6 * i), step, _TEST_DETAIL[step], None) for i, step in enumerate(steps)
            ]
            return status, detail, details, record.created_at + timedelta(days=2)
        carrier_code = _CARRIERS.get(record.carrier, record.carrier.lower())
        told = story(carrier_code, record.code, first_seen_at=record.created_at, now=now)
        status, detail = _DETAILS.get(told.detail) or _STATUS.get(told.status, ("unknown", "unknown"))
        details = [_detail(scan.at, *_scan_status(scan), scan) for scan in told.scans]
        return status, detail, details, told.estimated_delivery_at

    # --- pushes ---------------------------------------------------------------------------

    def _push_key(self, record: TrackerRecord) -> tuple[str, int]:
        status, _, details, _ = self._state(record, self._clock().now())
        return status, len(details)

    def scan(self) -> list[Push]:
        """A `tracker.updated` Event per tracker whose status or history moved since the last push."""
        pushes: list[Push] = []
        if not self.webhooks:
            return pushes
        for record in list(self.trackers.values()):
            key = self._push_key(record)
            if key == record.pushed:
                continue
            previous = record.pushed[0] if record.pushed else None
            record.pushed = key
            hooks = [h for h in self.webhooks.values() if h.mode == record.mode]
            now = utc_iso(self._clock().now())
            event_id = f"evt_{uuid.uuid4().hex}"
            event = {
                "id": event_id,
                "object": "Event",
                "mode": record.mode,
                "description": "tracker.updated",
                "previous_attributes": {"status": previous} if previous and previous != key[0] else {},
                "result": self.tracker(record),
                "status": "pending",
                "pending_urls": [h.url for h in hooks],
                "completed_urls": [],
                "user_id": "user_sandbox",
                "created_at": now,
                "updated_at": now,
            }
            body = _json(event)
            for hook in hooks:
                headers = (("content-type", "application/json"), ("user-agent", "EasyPost WebHook Agent 1.0"))
                good = (*headers, ("X-Hmac-Signature", sign(body, hook.secret)))
                forged = (*headers, ("X-Hmac-Signature", sign(body, hook.secret + "-wrong")))
                pushes.append(Push("easypost", event_id, hook.url, body, good, forged))
        return pushes


def _scan_status(scan: Scan) -> tuple[str, str]:
    return _DETAILS.get(scan.detail) or _STATUS.get(scan.status, ("unknown", "unknown"))


def _detail(at: datetime, status: str, detail: str, scan: Scan | None) -> dict[str, Any]:
    """One TrackingDetail; local time with its offset when the place is known, else UTC."""
    known = scan is not None and bool(scan.city)
    return {
        "object": "TrackingDetail",
        "message": scan.description if scan else status.replace("_", " ").capitalize(),
        "description": "",
        "status": status,
        "status_detail": detail,
        "datetime": local_iso(at, scan.offset) if scan is not None and known else utc_iso(at),
        "source": "USPS",
        "carrier_code": "",
        "tracking_location": {
            "object": "TrackingLocation",
            "city": scan.city if known and scan else None,
            "state": scan.state if known and scan else None,
            "country": scan.country_code if known and scan else None,
            "zip": scan.postal_code if known and scan else None,
        },
        "est_delivery_date": None,
    }


def _detect(code: str) -> str:
    """EasyPost's carrier auto-detection, roughly: 1Z… is UPS, 12 or 15 digits FedEx, else USPS."""
    if code.upper().startswith("1Z"):
        return "UPS"
    if code.isdigit() and len(code) in (12, 15):
        return "FedEx"
    return "USPS"


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "object": "Webhook",
        "mode": hook.mode,
        "url": hook.url,
        "created_at": utc_iso(hook.created_at),
        "disabled_at": None,
    }


def _error(status: int, code: str, message: str, errors: list[Any] | None = None) -> Reply:
    return Reply(status, _json({"error": {"code": code, "message": message, "errors": errors or []}}))


def _json(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
