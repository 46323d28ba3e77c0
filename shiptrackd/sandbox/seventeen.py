"""
17TRACK's Tracking API v2.2 dialect of the sandbox, served under `/track/v2.2/` beside ShipEngine's.

Wire format as reference/tracking-apis.md §4 and §6.4 say: every endpoint a POST of a JSON
array of `{"number", "carrier"?}` (at most 40, else top-level code -18010014), the key in the
`17token` header (else HTTP 401), HTTP 200 with `{"code": 0, "data": {"accepted": [...],
"rejected": [...]}}` even when some numbers fail. `register` costs one quota per new number
(duplicate -18019901, quota spent -18019908), `gettrackinfo` needs a registered number
(-18019902), `stoptrack` stops it (no more pushes), `getquota` reads the counters. A number
registered again with another carrier (an operator's correction) is registered anew with it, for
one more quota: the quota counts (number, carrier) pairs (§4), the sandbox keeps the newest. Pushes
POST `{"event": "TRACKING_UPDATED", "data": {number, carrier, param, tag, track_info}}` to
`push_url` with `sign` = sha256_hex(body + "/" + key); `push_faults` can forge the signature.

The parcels' stories are the ShipEngine dialect's lifecycles (lifecycle.py), told in 17TRACK's
words. Magic substrings of a number: OMIT (left out of gettrackinfo answers), STRAY (its
answer also carries a number nobody asked for), RENAMED (a main status we do not know),
NODETECT (register rejects it: carrier not detected).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from shiptrackd.providers import seventeentrack_wire as wire
from shiptrackd.sandbox import lifecycle
from shiptrackd.sandbox.server import Drop, Reply, Request
from shiptrackd.sandbox.state import SandboxStats, SimClock, TokenBucket, parse_rate_limit
from shiptrackd.units import RateLimit, format_rfc3339, parse_rfc3339

PREFIX = "/track/v2.2"
ENDPOINTS = ("/register", "/gettrackinfo", "/stoptrack", "/getquota")
FAULTS = ("500", "503", "429", "reset", "badjson")
# (our status, our detail) -> (17TRACK status, sub-status); by status alone when the detail has no entry.
_BY_DETAIL = {
    ("AC", "PICKED_UP"): ("InTransit", "InTransit_PickedUp"),
    ("IT", "OUT_FOR_DELIVERY"): ("OutForDelivery", "OutForDelivery_Other"),
    ("IT", "HUB_SCAN_IN"): ("InTransit", "InTransit_Arrival"),
    ("IT", "RECEIVED_LOCAL_DELIVERY_DEPOT"): ("InTransit", "InTransit_Arrival"),
    ("IT", "HUB_SCAN_OUT"): ("InTransit", "InTransit_Departure"),
    ("EX", "CARRIER_DELAYS"): ("Exception", "Exception_Delayed"),
    ("EX", "PARCEL_LOST"): ("Exception", "Exception_Lost"),
}
_BY_STATUS = {
    "UN": ("NotFound", "NotFound_Other"),
    "NY": ("InfoReceived", "InfoReceived"),
    "AC": ("InTransit", "InTransit_PickedUp"),
    "IT": ("InTransit", "InTransit_Other"),
    "AT": ("DeliveryFailure", "DeliveryFailure_NoBody"),
    "EX": ("Exception", "Exception_Other"),
    "SP": ("AvailableForPickup", "AvailableForPickup_Other"),
    "DE": ("Delivered", "Delivered_Other"),
}


@dataclass
class Registered:
    carrier: int
    registered_at: datetime
    stopped: bool = False
    pushed_status: str = ""  # the sub-status last pushed (a push goes out when it changes)


class SeventeenTrack:
    """The dialect's state and knobs; the Sandbox hands it every request under PREFIX."""

    def __init__(self, stats: SandboxStats, clock: SimClock, *, api_key: str | None = "TEST_17track") -> None:
        self.stats = stats
        self.clock = clock
        self.api_key = api_key
        self.quota_total = 100_000
        self.quota_used = 0
        self.today_used = 0
        self.registered: dict[str, Registered] = {}
        self.rate_limit: RateLimit | None = None
        self._bucket: TokenBucket | None = None
        self.faults: dict[str, float] = {}
        self.push_url: str | None = None
        self.push_key: str | None = None  # None: the api_key signs
        self.push_faults: dict[str, float] = {}  # {"badsign": p, "unsigned": p}
        self.by_endpoint: dict[str, int] = {}
        self.pushes_sent = 0
        self._rng = random.Random(17)

    def registrations(self) -> dict[str, list[Any]]:
        """The registered numbers, JSON-ready for a saved story: number -> [carrier, registered_at, stopped]."""
        # registered_at to the microsecond: a resumed parcel rounded down to the second told its
        # history up to a second earlier, so every event came back twice and answers looked stale.
        return {n: [r.carrier, format_rfc3339(r.registered_at), r.stopped] for n, r in self.registered.items()}

    def restore(self, saved: dict[str, Any]) -> None:
        """Registrations from registrations() (a resumed demo); ValueError on a malformed one, changing nothing."""
        try:
            restored = {
                str(n): Registered(int(c), parse_rfc3339(str(at)), bool(stopped))
                for n, (c, at, stopped) in saved.items()
            }
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not 17TRACK registrations ({exc})") from None
        self.registered = restored
        self.quota_used = max(self.quota_used, len(restored))

    def configure(self, **knobs: Any) -> None:
        """Knobs: api_key, quota_total, quota_used, rate_limit ('3/s'), faults, push_url, push_key, push_faults."""
        known = ("api_key", "quota_total", "quota_used", "rate_limit", "faults", "push_url", "push_key", "push_faults")
        unknown = set(knobs) - set(known)
        if unknown:
            raise ValueError(f"17track: unknown knob(s): {', '.join(sorted(unknown))} (known: {', '.join(known)})")
        for name in ("faults", "push_faults"):
            if name in knobs:
                rates = knobs[name]
                allowed = FAULTS if name == "faults" else ("badsign", "unsigned")
                if not isinstance(rates, dict) or any(k not in allowed or not 0 <= v <= 1 for k, v in rates.items()):
                    raise ValueError(f"17track: {name}: expected {{kind: probability}} with kinds {', '.join(allowed)}")
        for name in ("quota_total", "quota_used"):
            if name in knobs and (not isinstance(knobs[name], int) or isinstance(knobs[name], bool) or knobs[name] < 0):
                raise ValueError(f"17track: {name}: expected an integer >= 0")
        if "rate_limit" in knobs:
            self.rate_limit = parse_rate_limit(knobs["rate_limit"])
            limit = self.rate_limit
            self._bucket = TokenBucket(limit.per_second, limit.count) if limit is not None else None
        for name in ("api_key", "quota_total", "quota_used", "push_url", "push_key"):
            if name in knobs:
                setattr(self, name, knobs[name])
        self.faults = dict(knobs.get("faults", self.faults))
        self.push_faults = dict(knobs.get("push_faults", self.push_faults))

    def config(self) -> dict[str, Any]:
        return {
            "api_key_set": self.api_key is not None,
            "quota_total": self.quota_total,
            "quota_used": self.quota_used,
            "rate_limit": f"{self.rate_limit.count}/{self.rate_limit.period_s:g}s" if self.rate_limit else None,
            "faults": self.faults,
            "push_url": self.push_url,
            "push_faults": self.push_faults,
            "registered": len(self.registered),
            "stopped": sum(1 for r in self.registered.values() if r.stopped),
            "by_endpoint": dict(self.by_endpoint),
            "pushes_sent": self.pushes_sent,
        }

    # --- requests ------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply | Drop:
        endpoint = request.path[len(PREFIX) :]
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        if self.api_key is not None and request.headers.get("17token") != self.api_key:
            return _reply(401, {"code": wire.ERR_INVALID_KEY, "data": {"errors": [_error(wire.ERR_INVALID_KEY)]}})
        if self._bucket is not None and self._bucket.take(time.monotonic()):
            return _reply(429, {"code": 429, "message": "Too Many Requests"})
        if request.method != "POST" or endpoint not in ENDPOINTS:
            return _reply(404, {"code": 404, "message": "Not Found"})
        fault = self._fault()
        if fault in ("500", "503", "429"):
            return _reply(int(fault), {"code": int(fault), "message": "injected fault"})
        if fault == "reset":
            return Drop("reset")
        if endpoint == "/getquota":
            reply = self._getquota()
        else:
            items = _parse_numbers(request.body)
            if isinstance(items, Reply):
                return items
            if len(items) > wire.BATCH_SIZE:
                errors = [_error(wire.ERR_TOO_MANY, f"At most {wire.BATCH_SIZE} numbers per request.")]
                return _reply(200, {"code": wire.ERR_TOO_MANY, "data": {"errors": errors}})
            if endpoint == "/register":
                reply = self._register(items)
            elif endpoint == "/gettrackinfo":
                reply = self._gettrackinfo(items)
            else:
                reply = self._stoptrack(items)
        if fault == "badjson":
            return Reply(200, reply.body[: len(reply.body) // 2])
        return reply

    def _fault(self) -> str | None:
        for kind, p in self.faults.items():
            if p and self._rng.random() < p:
                self.stats.faults[f"17track:{kind}"] += 1
                return kind
        return None

    def _register(self, items: list[dict[str, Any]]) -> Reply:
        accepted, rejected = [], []
        for item in items:
            number = item["number"]
            known = self.registered.get(number)
            if known is not None and item.get("carrier") in (None, known.carrier):
                rejected.append(_rejected(number, wire.ERR_ALREADY_REGISTERED))
            elif "NODETECT" in number.upper():
                rejected.append(_rejected(number, wire.ERR_CARRIER_NOT_DETECTED))
            elif self.quota_used >= self.quota_total:
                rejected.append(_rejected(number, wire.ERR_QUOTA_EXHAUSTED))
            else:
                carrier = item.get("carrier") or _detect(number)
                self.registered[number] = Registered(carrier, self.clock.now())
                self.quota_used += 1
                self.today_used += 1
                accepted.append({"origin": 1, "number": number, "carrier": carrier})
        return _reply(200, {"code": 0, "data": {"accepted": accepted, "rejected": rejected}})

    def _gettrackinfo(self, items: list[dict[str, Any]]) -> Reply:
        accepted, rejected = [], []
        for item in items:
            number = item["number"]
            self.stats.by_number[number] += 1
            entry = self.registered.get(number)
            if entry is None:
                rejected.append(_rejected(number, wire.ERR_NOT_REGISTERED))
                continue
            if "OMIT" in number.upper():
                continue
            accepted.append(self.item(number))
            if "STRAY" in number.upper():
                accepted.append({**self.item(number), "number": number + "X"})
        return _reply(200, {"code": 0, "data": {"accepted": accepted, "rejected": rejected}})

    def _stoptrack(self, items: list[dict[str, Any]]) -> Reply:
        accepted, rejected = [], []
        for item in items:
            entry = self.registered.get(item["number"])
            if entry is None:
                rejected.append(_rejected(item["number"], wire.ERR_NOT_REGISTERED))
            else:
                entry.stopped = True
                accepted.append({"number": item["number"], "carrier": entry.carrier})
        return _reply(200, {"code": 0, "data": {"accepted": accepted, "rejected": rejected}})

    def _getquota(self) -> Reply:
        data = {
            "quota_total": self.quota_total,
            "quota_used": self.quota_used,
            "quota_remain": max(0, self.quota_total - self.quota_used),
            "today_used": self.today_used,
            "max_track_daily": self.quota_total,
        }
        return _reply(200, {"code": 0, "data": data})

    # --- bodies --------------------------------------------------------------------------

    def item(self, number: str) -> dict[str, Any]:
        """The accepted item for a registered number: {number, carrier, param, tag, track_info} as of now."""
        entry = self.registered[number]
        code = wire.CARRIER_CODES.get(entry.carrier, "usps")
        code = code if code in lifecycle.CARRIERS else "usps"
        body = lifecycle.tracking_body(code, number, first_seen_at=entry.registered_at, now=self.clock.now())
        status, sub_status = _words(body["status_code"], body["status_detail_code"])
        if "RENAMED" in number.upper():
            status, sub_status = "Teleported", "Teleported_Other"
        events = [_event(e) for e in body["events"]]  # newest first, as 17TRACK lists them
        estimate = body.get("estimated_delivery_date")
        track_info = {
            "shipping_info": {"shipper_address": {"country": "US"}, "recipient_address": {"country": "US"}},
            "latest_status": {"status": status, "sub_status": sub_status, "sub_status_descr": None},
            "latest_event": events[0] if events else None,
            "time_metrics": {
                "days_after_order": 0,
                "days_of_transit": 0,
                "days_after_last_update": 0,
                "estimated_delivery_date": {
                    "source": "Official" if estimate else None,
                    "from": estimate,
                    "to": estimate,
                },
            },
            "milestone": [],
            "misc_info": {},
            "tracking": {
                "providers_hash": 0,
                "providers": [
                    {
                        "provider": {"key": entry.carrier, "name": code.upper(), "alias": code, "country": "US"},
                        "latest_sync_status": "Success",
                        "latest_sync_time": _iso_utc(self.clock.now()),
                        "events": events,
                    }
                ],
            },
        }
        return {"number": number, "carrier": entry.carrier, "param": None, "tag": None, "track_info": track_info}

    # --- pushes --------------------------------------------------------------------------

    async def push(self, numbers: list[str] | None = None, *, only_changed: bool = True) -> int:
        """POST a TRACKING_UPDATED for each tracked (not stopped) number whose status moved; how many went out."""
        if not self.push_url:
            raise ValueError("17track: no push_url configured")
        sent = 0
        async with httpx.AsyncClient(timeout=10) as client:
            for number in numbers if numbers is not None else list(self.registered):
                entry = self.registered.get(number)
                if entry is None or entry.stopped:
                    continue
                item = self.item(number)
                latest = item["track_info"]["latest_status"]["sub_status"]
                if only_changed and latest == entry.pushed_status:
                    continue
                body = json.dumps({"event": wire.EVENT_UPDATED, "data": item}, separators=(",", ":")).encode()
                headers = {"content-type": "application/json"}
                fault = next((k for k, p in self.push_faults.items() if p and self._rng.random() < p), None)
                if fault != "unsigned":
                    key = self.push_key if self.push_key is not None else (self.api_key or "")
                    headers[wire.SIGN_HEADER] = wire.push_sign(body, key + ("x" if fault == "badsign" else ""))
                await client.post(self.push_url, content=body, headers=headers)
                entry.pushed_status = latest
                self.pushes_sent += 1
                sent += 1
        return sent


def _words(status: str, detail: str) -> tuple[str, str]:
    return _BY_DETAIL.get((status, detail)) or _BY_STATUS.get(status, ("NotFound", "NotFound_Other"))


def _event(event: dict[str, Any]) -> dict[str, Any]:
    """A ShipEngine event told as a 17TRACK one: time_iso with the offset, time_utc, stage and sub-status."""
    stage, sub_status = _words(event.get("status_code") or "NY", event.get("status_detail_code") or "")
    utc = event["occurred_at"]
    return {
        "time_iso": utc.replace("Z", "+00:00"),
        "time_utc": utc,
        "time_raw": {"date": utc[:10], "time": utc[11:19], "timezone": None},
        "description": event.get("description") or "",
        "description_translation": None,
        "location": ", ".join(filter(None, (event.get("city_locality"), event.get("state_province")))) or None,
        "stage": stage,
        "sub_status": sub_status,
        "address": {
            "country": event.get("country_code") or None,
            "state": event.get("state_province"),
            "city": event.get("city_locality"),
            "street": None,
            "postal_code": event.get("postal_code"),
            "coordinates": {"longitude": event.get("longitude"), "latitude": event.get("latitude")},
        },
    }


def _detect(number: str) -> int:
    """17TRACK's auto-detection, as the sandbox does it: 1Z... is UPS, anything else USPS."""
    return wire.CARRIER_IDS["ups"] if number.upper().startswith("1Z") else wire.CARRIER_IDS["usps"]


def _parse_numbers(body: bytes) -> list[dict[str, Any]] | Reply:
    try:
        items = json.loads(body or b"[]")
    except (ValueError, UnicodeDecodeError):
        items = None
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("number"), str) and i["number"] for i in items
    ):
        errors = [_error(wire.ERR_BAD_FORMAT, "The data format is incorrect.")]
        return _reply(200, {"code": wire.ERR_BAD_FORMAT, "data": {"errors": errors}})
    for item in items:
        carrier = item.get("carrier")
        if carrier is not None and (not isinstance(carrier, int) or isinstance(carrier, bool) or carrier <= 0):
            errors = [_error(wire.ERR_INVALID_DATA, "The carrier is invalid.")]
            return _reply(200, {"code": wire.ERR_INVALID_DATA, "data": {"errors": errors}})
    return items


_MESSAGES = {
    wire.ERR_INVALID_KEY: "Invalid access key.",
    wire.ERR_ALREADY_REGISTERED: "The tracking number '{}' has been registered, don't need to repeat registration.",
    wire.ERR_NOT_REGISTERED: "The tracking number '{}' does not register, please register first.",
    wire.ERR_CARRIER_NOT_DETECTED: "Unable to identify the carrier of '{}', please specify the carrier.",
    wire.ERR_QUOTA_EXHAUSTED: "The quota is exhausted, please recharge.",
}


def _error(code: int, message: str = "") -> dict[str, Any]:
    return {"code": code, "message": message or _MESSAGES.get(code, "error").format("")}


def _rejected(number: str, code: int) -> dict[str, Any]:
    return {"number": number, "error": {"code": code, "message": _MESSAGES[code].format(number)}}


def _reply(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(body, separators=(",", ":")).encode())


def _iso_utc(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["PREFIX", "SeventeenTrack"]
