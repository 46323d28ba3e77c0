"""
AfterShip's Tracking API, version 2026-07, on the sandbox under `/tracking/2026-07` (tracking-apis.md §3, §6.3).

- Auth: the `as-api-key` header; a wrong or missing key is 401, type `Unauthorized`. Every
  answer is the `{"meta": {"code", "message", "type"}, "data": {...}}` envelope.
- `POST /trackings` with 2026-07's flat body `{"tracking_number", "slug"?}` -> 201; the same
  (slug, number) again is meta code 4003 "Tracking already exists." (HTTP 400 by default, the
  `duplicate_status` knob changes it: the vendor's pairing is undocumented) whose `data` names
  the existing tracking's id; `GET /trackings/{id}` (unknown: 404, code 4004, `NotFound`);
  `GET /trackings?tracking_numbers=a,b&slug=x`; `DELETE /trackings/{id}`.
- `POST /couriers/detect` with `{"tracking_number"}` -> `data: {"total", "couriers": [{"slug",
  "name"}]}` (AfterShip's SDK shape; tracking-apis.md does not describe it): 1Z... is UPS, 12
  or 15 digits FedEx, else USPS; a number containing NODETECT matches no courier (total 0).
- Per-endpoint limits per second (POST /trackings 20, GET /trackings 6, GET, PUT and DELETE
  /trackings/:id 5, POST /couriers/detect 3; the `rate_limits` knob overrides them): every answer carries
  `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix time the window
  ends); beyond the limit 429, type `TooManyRequests`.
- Tags and subtags follow the sandbox lifecycles; checkpoints (oldest first) carry a stable
  `hash`. A parcel with no scan after 30 days is `Expired`.
- Webhooks go to the `webhook_url` knob (AfterShip configures them in its admin, not over the
  API) as `{"ts", "event": "tracking_update", "event_id", "is_tracking_first_tag", "msg"}`,
  signed `aftership-hmac-sha256: base64(HMAC-SHA256(webhook_secret, raw body))`, whenever a
  tracking's tag or checkpoints change.
- Faults: faults.py's magic substrings in a tracking number, and the sandbox's random rates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shiptrackd.sandbox import faults as fault_kinds
from shiptrackd.sandbox.pushes import Push, Pusher
from shiptrackd.sandbox.scans import Scan, local_iso, story, utc_iso
from shiptrackd.sandbox.server import Drop, Reply, Request
from shiptrackd.sandbox.state import SandboxStats, SimClock

VERSION = "2026-07"
PREFIX = f"/tracking/{VERSION}/"
RATE_LIMITS: dict[str, int] = {
    "POST /trackings": 20,
    "GET /trackings": 6,
    "GET /trackings/:id": 5,
    "PUT /trackings/:id": 5,
    "DELETE /trackings/:id": 5,
    "POST /couriers/detect": 3,
}
EXPIRE_AFTER = timedelta(days=30)
# ShipEngine status / detail -> (tag, subtag, subtag_message).
_BY_DETAIL = {
    "PICKED_UP": ("InTransit", "InTransit_002", "Acceptance scan"),
    "HUB_SCAN_IN": ("InTransit", "InTransit_003", "Arrival scan"),
    "HUB_SCAN_OUT": ("InTransit", "InTransit_007", "Departure scan"),
    "OUT_FOR_DELIVERY": ("OutForDelivery", "OutForDelivery_001", "Out for Delivery"),
    "PARCEL_COLLECTED_FROM_PICKUP_POINT": ("Delivered", "Delivered_002", "Picked up by the customer"),
    "CARRIER_DELAYS": ("Exception", "Exception_005", "Delayed (External factors)"),
}
_BY_STATUS = {
    "NY": ("InfoReceived", "InfoReceived_001", "Info Received"),
    "AC": ("InTransit", "InTransit_002", "Acceptance scan"),
    "IT": ("InTransit", "InTransit_001", "In Transit"),
    "AT": ("AttemptFail", "AttemptFail_001", "Failed Attempt"),
    "SP": ("AvailableForPickup", "AvailableForPickup_001", "Available for pickup"),
    "DE": ("Delivered", "Delivered_001", "Delivered"),
    "EX": ("Exception", "Exception_001", "Exception"),
}
_PENDING = ("Pending", "Pending_001", "No information yet")
_EXPIRED = ("Expired", "Expired_001", "Expired")
_SLUG_TO_CARRIER = {"dhl": "dhl_express", "canada-post": "canada_post"}
_COURIER_NAMES = {"ups": "UPS", "fedex": "FedEx", "usps": "USPS"}


@dataclass
class TrackingRecord:
    id: str
    number: str
    slug: str
    created_at: datetime
    pushed: tuple[str, int] | None = None  # (tag, checkpoint count) last pushed
    tags_seen: set[str] = field(default_factory=set)


@dataclass
class _Window:
    second: int = 0
    used: int = 0


def sign(body: bytes, secret: str) -> str:
    """AfterShip's `aftership-hmac-sha256` value, written here independently of the client's verifier."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


class AfterShipDialect:
    """The `/tracking/2026-07` routes; shares the sandbox's clock, stats, pusher and random faults."""

    KNOBS = ("api_key", "webhook_url", "webhook_secret", "rate_limits", "duplicate_status")

    def __init__(
        self, clock: Callable[[], SimClock], stats: SandboxStats, pusher: Pusher, draw_fault: Callable[[], str | None]
    ) -> None:
        self.api_key: str | None = "asat_sandbox"
        self.webhook_url: str | None = None
        self.webhook_secret = ""
        self.rate_limits = dict(RATE_LIMITS)
        self.duplicate_status = 400
        self.trackings: dict[str, TrackingRecord] = {}
        self.detections: list[str] = []  # the numbers POST /couriers/detect was asked about, in order
        self._by_number: dict[tuple[str, str], str] = {}
        self._windows: dict[str, _Window] = {}
        self._clock = clock
        self._stats = stats
        self._pusher = pusher
        self._draw_fault = draw_fault
        pusher.add_scan(self.scan)

    def configure(self, knobs: dict[str, Any]) -> None:
        """Change knobs (names in KNOBS); validates all before changing any."""
        unknown = set(knobs) - set(self.KNOBS)
        if unknown:
            known = ", ".join(self.KNOBS)
            raise ValueError(f"unknown aftership knob(s): {', '.join(sorted(unknown))} (known: {known})")
        for name in ("api_key", "webhook_url"):
            if name in knobs and knobs[name] is not None and not isinstance(knobs[name], str):
                raise ValueError(f"{name}: expected a string or null")
        if not isinstance(knobs.get("webhook_secret", ""), str):
            raise ValueError("webhook_secret: expected a string")
        limits = knobs.get("rate_limits", {})
        if not isinstance(limits, dict) or any(
            name not in RATE_LIMITS or isinstance(n, bool) or not isinstance(n, int) or n < 1
            for name, n in limits.items()
        ):
            raise ValueError(f"rate_limits: expected {{endpoint: requests per second >= 1}} for {list(RATE_LIMITS)}")
        status = knobs.get("duplicate_status", self.duplicate_status)
        if status not in (400, 409, 422):
            raise ValueError("duplicate_status: expected 400, 409 or 422")
        self.api_key = knobs.get("api_key", self.api_key)
        self.webhook_url = knobs.get("webhook_url", self.webhook_url)
        self.webhook_secret = knobs.get("webhook_secret", self.webhook_secret)
        self.rate_limits.update(limits)
        self.duplicate_status = status

    # --- requests -------------------------------------------------------------------------

    async def handle(self, request: Request, request_id: str) -> Reply | Drop:
        key = request.headers.get("as-api-key")
        if not key or (self.api_key is not None and key != self.api_key):
            return _reply(401, 401, "Unauthorized", "Invalid API key.")
        parts = request.path[len(PREFIX) :].strip("/").split("/")
        if parts == ["couriers", "detect"]:
            endpoint = f"{request.method} /couriers/detect"
        elif parts[0] != "trackings" or len(parts) > 2:
            return _reply(404, 404, "NotFound", "The URL is not found.")
        else:
            endpoint = f"{request.method} /trackings" + ("/:id" if len(parts) == 2 else "")
        if endpoint not in self.rate_limits:
            return _reply(404, 404, "NotFound", "The URL is not found.")
        headers, allowed = self._take(endpoint)
        if not allowed:
            reply: Reply | Drop = _reply(429, 429, "TooManyRequests", "You have exceeded the API call rate limit.")
        elif parts[0] == "couriers":
            reply = self._detect(request)
        elif len(parts) == 1 and request.method == "POST":
            reply = self._create(request)
        elif len(parts) == 1:
            reply = self._list(request)
        else:
            reply = self._one(request, parts[1])
        if isinstance(reply, Reply):
            reply.headers.extend(headers)
        return reply

    def _take(self, endpoint: str) -> tuple[list[tuple[str, str]], bool]:
        """One request against the endpoint's per-second window, and the X-RateLimit-* headers after it."""
        now = time.time()
        second = math.floor(now)
        window = self._windows.setdefault(endpoint, _Window())
        if window.second != second:
            window.second, window.used = second, 0
        limit = self.rate_limits[endpoint]
        allowed = window.used < limit
        if allowed:
            window.used += 1
        headers = [
            ("X-RateLimit-Limit", str(limit)),
            ("X-RateLimit-Remaining", str(max(0, limit - window.used))),
            ("X-RateLimit-Reset", str(second + 1)),
        ]
        return headers, allowed

    def _create(self, request: Request) -> Reply | Drop:
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _reply(400, 4001, "BadRequest", "Invalid JSON data.")
        if isinstance(body, dict) and isinstance(body.get("tracking"), dict) and "tracking_number" not in body:
            body = body["tracking"]  # the 2024-04 SDKs' wrapped body; 2026-07 documents the flat one
        number = body.get("tracking_number") if isinstance(body, dict) else None
        if not isinstance(number, str) or not number.strip():
            return _reply(400, 4005, "BadRequest", "The value of `tracking_number` is invalid.")
        number = number.strip()
        slug = body.get("slug")
        if slug is None or slug == "":
            slug = _detect(number)
        if not isinstance(slug, str):
            return _reply(400, 4010, "BadRequest", "The value of `slug` is invalid.")
        self._stats.by_number[number] += 1
        fault = self._fault(number)
        if fault is not None:
            return fault
        existing = self._by_number.get((slug, number))
        if existing in self.trackings:  # (tests may clear `trackings` directly)
            data = {"id": existing, "slug": slug, "tracking_number": number}
            return _reply(self.duplicate_status, 4003, "BadRequest", "Tracking already exists.", data)
        record = TrackingRecord(uuid.uuid4().hex, number, slug, self._clock().now())
        record.pushed = self._push_key(record)
        record.tags_seen.add(record.pushed[0])
        self.trackings[record.id] = record
        self._by_number[(slug, number)] = record.id
        self._pusher.wake()
        return _reply(201, 201, "Created", "The request was successful.", self.tracking(record))

    def _detect(self, request: Request) -> Reply:
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _reply(400, 4001, "BadRequest", "Invalid JSON data.")
        number = body.get("tracking_number") if isinstance(body, dict) else None
        if not isinstance(number, str) or not number.strip():
            return _reply(400, 4005, "BadRequest", "The value of `tracking_number` is invalid.")
        self.detections.append(number.strip())
        slugs = [] if "NODETECT" in number.upper() else [_detect(number.strip())]
        couriers = [{"slug": slug, "name": _COURIER_NAMES.get(slug, slug)} for slug in slugs]
        return _reply(200, 200, "OK", "The request was successful.", {"total": len(couriers), "couriers": couriers})

    def _list(self, request: Request) -> Reply:
        wanted = {n for value in request.query.get("tracking_numbers", []) for n in value.split(",") if n}
        slugs = {s for value in request.query.get("slug", []) for s in value.split(",") if s}
        records = [
            r for r in self.trackings.values() if (not wanted or r.number in wanted) and (not slugs or r.slug in slugs)
        ]
        try:
            limit = max(1, min(200, int(request.query.get("limit", ["100"])[-1])))
        except ValueError:
            return _reply(400, 4001, "BadRequest", "The value of `limit` is invalid.")
        data = {
            "trackings": [self.tracking(r) for r in records[:limit]],
            "pagination": {"total": len(records), "next_cursor": None, "has_next_page": len(records) > limit},
        }
        return _reply(200, 200, "OK", "The request was successful.", data)

    def _one(self, request: Request, tracking_id: str) -> Reply | Drop:
        record = self.trackings.get(tracking_id)
        if record is None:
            return _reply(404, 4004, "NotFound", "Tracking does not exist.")
        self._stats.by_number[record.number] += 1
        fault = self._fault(record.number)
        if fault is not None:
            return fault
        data = self.tracking(record)
        if request.method == "DELETE":
            del self.trackings[record.id]
            self._by_number.pop((record.slug, record.number), None)
        return _reply(200, 200, "OK", "The request was successful.", data)

    def _fault(self, number: str) -> Reply | Drop | None:
        kind = fault_kinds.forced_fault(number, self._stats.by_number[number]) or self._draw_fault()
        if kind is None:
            return None
        self._stats.faults[kind] += 1
        if kind in ("reset", "hang"):
            return Drop(kind)
        if kind == "429":
            return _reply(429, 429, "TooManyRequests", "You have exceeded the API call rate limit.")
        if kind in ("500", "odd500", "503"):
            return _reply(int(kind[-3:]), 500, "InternalError", "Something went wrong on AfterShip's end.")
        if kind == "notfound":
            return _reply(404, 4004, "NotFound", "Tracking does not exist.")
        if kind == "forbidden":
            return _reply(403, 403, "Forbidden", "The API key has no access to this resource.")
        if kind == "badjson":
            return Reply(200, b'{"meta":{"code":200},"data":{"id":"cut')
        return None

    # --- bodies ---------------------------------------------------------------------------

    def tracking(self, record: TrackingRecord) -> dict[str, Any]:
        """The tracking object for `record` as of the sandbox's now."""
        now = self._clock().now()
        carrier_code = _SLUG_TO_CARRIER.get(record.slug, record.slug.replace("-", "_"))
        told = story(carrier_code, record.number, first_seen_at=record.created_at, now=now)
        if told.scans:
            tag, subtag, message = _tags(told.status, told.detail)
        else:
            tag, subtag, message = _EXPIRED if now - record.created_at >= EXPIRE_AFTER else _PENDING
        checkpoints = [_checkpoint(record, scan) for scan in told.scans]
        picked_up = next((s.at for s in told.scans if s.status not in ("NY", "UN")), None)
        delivered = [s.at for s in told.scans if s.status == "DE"] if tag == "Delivered" else []
        eta = told.estimated_delivery_at
        return {
            "id": record.id,
            "tracking_number": record.number,
            "slug": record.slug,
            "active": tag not in ("Delivered", "Expired"),
            "tag": tag,
            "subtag": subtag,
            "subtag_message": message,
            "title": record.number,
            "created_at": utc_iso(record.created_at),
            "updated_at": utc_iso(max(now, record.created_at)),
            "shipment_pickup_date": local_iso(picked_up, timedelta(0)) if picked_up else None,
            "shipment_delivery_date": local_iso(delivered[-1], timedelta(0)) if delivered else None,
            "courier_estimated_delivery_date": {
                "estimated_delivery_date": eta.date().isoformat() if eta else None,
                "estimated_delivery_date_min": None,
                "estimated_delivery_date_max": None,
            },
            "signed_by": "J DOE" if tag == "Delivered" else None,
            "courier_tracking_link": None,
            "origin_country_region": "USA",
            "destination_country_region": "USA",
            "shipment_dimensions": None,
            "checkpoints": checkpoints,
        }

    # --- pushes ---------------------------------------------------------------------------

    def _push_key(self, record: TrackingRecord) -> tuple[str, int]:
        data = self.tracking(record)
        return data["tag"], len(data["checkpoints"])

    def scan(self) -> list[Push]:
        """A `tracking_update` webhook per tracking whose tag or checkpoints moved since the last push."""
        pushes: list[Push] = []
        if not self.webhook_url:
            return pushes
        for record in list(self.trackings.values()):
            key = self._push_key(record)
            if key == record.pushed:
                continue
            record.pushed = key
            first_tag = key[0] not in record.tags_seen
            record.tags_seen.add(key[0])
            event_id = str(uuid.uuid4())
            payload = {
                "ts": int(self._clock().now().timestamp()),
                "event": "tracking_update",
                "event_id": event_id,
                "is_tracking_first_tag": first_tag,
                "msg": self.tracking(record),
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers = (("content-type", "application/json"),)
            good = (*headers, ("aftership-hmac-sha256", sign(body, self.webhook_secret)))
            forged = (*headers, ("aftership-hmac-sha256", sign(body, self.webhook_secret + "-wrong")))
            pushes.append(Push("aftership", event_id, self.webhook_url, body, good, forged))
        return pushes


def _tags(status: str, detail: str) -> tuple[str, str, str]:
    return _BY_DETAIL.get(detail) or _BY_STATUS.get(status, _PENDING)


def _checkpoint(record: TrackingRecord, scan: Scan) -> dict[str, Any]:
    tag, subtag, message = _tags(scan.status, scan.detail)
    at = local_iso(scan.at, scan.offset)
    digest = hashlib.sha256(f"{record.id}|{at}|{scan.description}".encode()).hexdigest()[:32]
    return {
        "created_at": utc_iso(scan.at),
        "slug": record.slug,
        "checkpoint_time": at,
        "location": ", ".join(p for p in (scan.city, scan.state, scan.postal_code) if p) or None,
        "city": scan.city or None,
        "state": scan.state or None,
        "zip": scan.postal_code or None,
        "coordinate": None,
        "country_region": "USA" if scan.country_code == "US" else (scan.country_code or None),
        "country_region_name": "United States" if scan.country_code == "US" else None,
        "message": scan.description,
        "tag": tag,
        "subtag": subtag,
        "subtag_message": message,
        "raw_tag": scan.detail or "MP",
        "events": [],
        "source": "Carrier",
        "hash": digest,
    }


def _detect(number: str) -> str:
    if number.upper().startswith("1Z"):
        return "ups"
    if number.isdigit() and len(number) in (12, 15):
        return "fedex"
    return "usps"


def _reply(status: int, code: int, kind: str, message: str, data: dict[str, Any] | None = None) -> Reply:
    body = {"meta": {"code": code, "message": message, "type": kind}, "data": data or {}}
    return Reply(status, json.dumps(body, separators=(",", ":")).encode())
