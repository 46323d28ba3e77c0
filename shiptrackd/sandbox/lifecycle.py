"""
Deterministic shipment lifecycles: (carrier, number, first seen, now) -> a ShipEngine tracking body.

Pure functions, so the sandbox, the tests and the demo agree on what a number does. A SHA-256
of carrier and number picks the scenario, the route and a timing jitter; the scan timeline
runs from the moment the sandbox first saw the number (in simulated time). Bodies follow
reference/tracking-apis.md §1.8 on purpose: events newest first, zone-less
`carrier_occurred_at`, `null` mixed with `""`, integer `carrier_id`, `stamps_com` answered
as `usps`, so the provider is tested against the API's quirks and not a tidied version.

Scenario pins (substrings of the upper-cased tracking number) override the hash:
LCNORMAL, LCEXCEPTION, LCATTEMPT, LCPICKUP, LCSTUCK, LCLOST progress like the scenario of that
name; DELIVERED, INTRANSIT, EXCEPTION, ATTEMPTED, PICKUP, NOTYET, LOST freeze the number at
that status forever (with a stable history), for tests that need one status now.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SCENARIOS = ("delivered", "exception", "attempt", "pickup", "stuck", "lost")
_WEIGHTS = (("delivered", 50), ("exception", 12), ("attempt", 12), ("pickup", 10), ("stuck", 8), ("lost", 8))
_PROGRESS_PINS = {
    "LCNORMAL": "delivered",
    "LCEXCEPTION": "exception",
    "LCATTEMPT": "attempt",
    "LCPICKUP": "pickup",
    "LCSTUCK": "stuck",
    "LCLOST": "lost",
}
# token -> (scenario, status to freeze at); checked after the LC tokens, which contain some of them.
_FROZEN_PINS = {
    "DELIVERED": ("delivered", "DE"),
    "INTRANSIT": ("delivered", "IT"),
    "EXCEPTION": ("exception", "EX"),
    "ATTEMPTED": ("attempt", "AT"),
    "PICKUP": ("pickup", "SP"),
    "NOTYET": ("stuck", "NY"),
    "LOST": ("lost", "EX"),
}


@dataclass(frozen=True)
class Carrier:
    carrier_id: int
    body_code: str  # what the body says: ShipEngine answers a stamps_com query as usps
    url: str


CARRIERS = {
    "usps": Carrier(1, "usps", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
    "stamps_com": Carrier(1, "usps", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
    "ups": Carrier(3, "ups", "https://www.ups.com/track?tracknum={}"),
    "fedex": Carrier(4, "fedex", "https://www.fedex.com/fedextrack/?trknbr={}"),
    "dhl_express": Carrier(5, "dhl_express", "https://www.dhl.com/en/express/tracking.html?AWB={}"),
    "ontrac": Carrier(6, "ontrac", "https://www.ontrac.com/tracking/?number={}"),
    "canada_post": Carrier(7, "canada_post", "https://www.canadapost-postescanada.ca/track-reperage/en#/details/{}"),
}

STATUS_DESCRIPTIONS = {
    "UN": "Unknown",
    "NY": "Not Yet In System",
    "AC": "Accepted",
    "IT": "In Transit",
    "AT": "Delivery Attempt",
    "EX": "Exception",
    "SP": "Delivered To Collection Location",
    "DE": "Delivered",
}


@dataclass(frozen=True)
class Stage:
    """One scan: when (hours after first seen, before jitter) and what it does to the status."""

    at_h: float
    status: str  # the shipment's status_code once this scan happened
    detail: str  # status_detail_code
    description: str
    event_code: str
    carrier_status: str
    place: str  # "origin" | "hub" | "dest" | "" (no location, like a label scan)
    event_status: str | None = None  # the event's own status_code when it differs ("" for a label)


_LABEL = Stage(-3, "NY", "SHIPMENT_CREATED", "Shipper created a label", "MP", "M", "", event_status="")
_PICKED_UP = Stage(5, "AC", "PICKED_UP", "Picked up by carrier", "PU", "P", "origin")
_DEPARTED = Stage(9, "IT", "HUB_SCAN_OUT", "Departed from facility", "DP", "I", "origin")
_AT_HUB = Stage(20, "IT", "HUB_SCAN_IN", "Arrived at facility", "AR", "I", "hub")
_LEFT_HUB = Stage(26, "IT", "HUB_SCAN_OUT", "Departed from facility", "DP", "I", "hub")
_AT_DEPOT = Stage(40, "IT", "RECEIVED_LOCAL_DELIVERY_DEPOT", "Arrived at local facility", "AR", "I", "dest")
_OUT = Stage(48, "IT", "OUT_FOR_DELIVERY", "Out for delivery today", "OT", "I", "dest")
_DONE = Stage(54, "DE", "DELIVERED", "Delivered - front door", "KB", "D", "dest")
_FIRST_LEGS = (_LABEL, _PICKED_UP, _DEPARTED, _AT_HUB)

TIMELINES: dict[str, tuple[Stage, ...]] = {
    "delivered": (*_FIRST_LEGS, _LEFT_HUB, _AT_DEPOT, _OUT, _DONE),
    "exception": (
        *_FIRST_LEGS,
        Stage(28, "EX", "CARRIER_DELAYS", "Severe weather conditions have delayed delivery", "WX", "X", "hub"),
        Stage(52, "IT", "IN_TRANSIT", "Departed from facility after a delay", "DP", "I", "hub"),
        Stage(66, "IT", "RECEIVED_LOCAL_DELIVERY_DEPOT", "Arrived at local facility", "AR", "I", "dest"),
        Stage(72, "IT", "OUT_FOR_DELIVERY", "Out for delivery today", "OT", "I", "dest"),
        Stage(78, "DE", "DELIVERED", "Delivered - front door", "KB", "D", "dest"),
    ),
    "attempt": (
        *_FIRST_LEGS,
        _LEFT_HUB,
        _AT_DEPOT,
        _OUT,
        Stage(52, "AT", "ATTEMPTED_DELIVERY", "Delivery attempted - no one available", "NA", "X", "dest"),
        Stage(72, "IT", "OUT_FOR_DELIVERY", "Out for delivery today", "OT", "I", "dest"),
        Stage(76, "DE", "DELIVERED", "Delivered - handed to resident", "KB", "D", "dest"),
    ),
    "pickup": (
        *_FIRST_LEGS,
        _LEFT_HUB,
        _AT_DEPOT,
        Stage(50, "SP", "DELIVERED_TO_PICKUP_POINT", "Delivered to access point for pickup", "AP", "D", "dest"),
        Stage(80, "DE", "PARCEL_COLLECTED_FROM_PICKUP_POINT", "Picked up by customer", "KB", "D", "dest"),
    ),
    "stuck": (),
    "lost": (
        *_FIRST_LEGS,
        _LEFT_HUB,
        Stage(72, "EX", "PARCEL_LOST", "Package lost in transit; a claim may be filed", "LS", "X", "hub"),
    ),
}

_DETAIL_DESCRIPTIONS = {
    "NOT_YET_RECEIVED_BY_CARRIER": "The carrier has not received the parcel yet.",
    "SHIPMENT_CREATED": "A label was created; the parcel has not been handed over yet.",
    "PICKED_UP": "The carrier picked the parcel up.",
    "HUB_SCAN_IN": "The parcel arrived at a carrier facility.",
    "HUB_SCAN_OUT": "The parcel left a carrier facility.",
    "IN_TRANSIT": "The parcel is on its way.",
    "RECEIVED_LOCAL_DELIVERY_DEPOT": "The parcel reached the local delivery depot.",
    "OUT_FOR_DELIVERY": "The parcel is out for delivery.",
    "DELIVERED": "Parcel handed to the recipient.",
    "CARRIER_DELAYS": "The carrier reports a delay.",
    "ATTEMPTED_DELIVERY": "Delivery was attempted; the carrier will try again.",
    "DELIVERED_TO_PICKUP_POINT": "The parcel is waiting at a pickup point.",
    "PARCEL_COLLECTED_FROM_PICKUP_POINT": "The recipient collected the parcel.",
    "PARCEL_LOST": "The carrier reports the parcel lost.",
}

# (city, state, postal code, UTC offset in hours, latitude, longitude); DST ignored on purpose.
_PLACES = (
    ("AUSTIN", "TX", "78756", -6, 30.3172, -97.7431),
    ("DENVER", "CO", "80202", -7, 39.7527, -104.9992),
    ("SEATTLE", "WA", "98109", -8, 47.6275, -122.3462),
    ("CHICAGO", "IL", "60607", -6, 41.8757, -87.6505),
    ("ATLANTA", "GA", "30318", -5, 33.7866, -84.4146),
    ("BROOKLYN", "NY", "11201", -5, 40.6959, -73.9956),
    ("PHOENIX", "AZ", "85004", -7, 33.4510, -112.0686),
    ("MIAMI", "FL", "33130", -5, 25.7663, -80.2056),
)
_HUBS = (
    ("LOUISVILLE", "KY", "40209", -5, 38.1744, -85.7360),
    ("MEMPHIS", "TN", "38118", -6, 35.0424, -89.9767),
    ("INDIANAPOLIS", "IN", "46241", -5, 39.7173, -86.2944),
)


@dataclass(frozen=True)
class Plan:
    """What a number does: its scenario, and the status it is frozen at (None = it progresses)."""

    scenario: str
    frozen_status: str | None = None


def _digest(carrier_code: str, tracking_number: str) -> bytes:
    return hashlib.sha256(f"{carrier_code}\0{tracking_number}".encode()).digest()


def plan_for(carrier_code: str, tracking_number: str) -> Plan:
    """The scenario for a number: a pin token if it has one, else a weighted pick by hash."""
    upper = tracking_number.upper()
    for token, scenario in _PROGRESS_PINS.items():
        if token in upper:
            return Plan(scenario)
    for token, (scenario, status) in _FROZEN_PINS.items():
        if token in upper:
            return Plan(scenario, status)
    roll = int.from_bytes(_digest(carrier_code, tracking_number)[:4], "big") % 100
    for scenario, weight in _WEIGHTS:
        if roll < weight:
            return Plan(scenario)
        roll -= weight
    raise AssertionError("weights must add up to 100")


def timeline(carrier_code: str, tracking_number: str) -> list[tuple[timedelta, Stage]]:
    """Each scan's offset from first sight, jittered per number but always in order."""
    digest = _digest(carrier_code, tracking_number)
    stretch = 0.8 + digest[4] / 255 * 0.6  # 0.8x..1.4x: not every parcel moves in lock-step
    stages = TIMELINES[plan_for(carrier_code, tracking_number).scenario]
    return [
        (timedelta(hours=stage.at_h * stretch, minutes=digest[8 + i % 20] % 50), stage)
        for i, stage in enumerate(stages)
    ]


def tracking_body(carrier_code: str, tracking_number: str, *, first_seen_at: datetime, now: datetime) -> dict[str, Any]:
    """The full `GET /v1/tracking` body for this number as of `now` (aware UTC datetimes)."""
    plan = plan_for(carrier_code, tracking_number)
    scans = timeline(carrier_code, tracking_number)
    first_seen_at = first_seen_at.astimezone(UTC)
    anchor, elapsed = first_seen_at, now - first_seen_at
    if plan.frozen_status is not None and scans:
        # Frozen: pretend it was first seen just after the pinned scan, anchored on first sight
        # so every poll returns the same event times (the store deduplicates on them).
        offset = next(at for at, stage in scans if stage.status == plan.frozen_status) + timedelta(minutes=1)
        anchor, elapsed = first_seen_at - offset, offset
    reached = [(anchor + at, stage) for at, stage in scans if at <= elapsed]
    digest = _digest(carrier_code, tracking_number)
    route = {
        "origin": _PLACES[digest[12] % len(_PLACES)],
        "hub": _HUBS[digest[13] % len(_HUBS)],
        "dest": _PLACES[(digest[12] + 1 + digest[14] % (len(_PLACES) - 1)) % len(_PLACES)],
    }
    carrier = CARRIERS.get(carrier_code, Carrier(0, carrier_code, ""))
    events = [_event(at, stage, route, carrier_code, i) for i, (at, stage) in enumerate(reached)]
    events.reverse()  # newest first, as ShipEngine sends them

    current = reached[-1][1] if reached else None
    status = current.status if current else "NY"
    accepted = [at for at, stage in reached if stage.status == "AC"]
    planned_delivery = anchor + (scans[-1][0] if scans and scans[-1][1].status == "DE" else timedelta(days=3))
    delivered = [at for at, stage in reached if stage.status == "DE"]
    detail = current.detail if current else "NOT_YET_RECEIVED_BY_CARRIER"
    return {
        "tracking_number": tracking_number,
        "tracking_url": carrier.url.format(tracking_number) if carrier.url else None,
        "status_code": status,
        "status_detail_code": detail,
        "carrier_code": carrier.body_code,
        "carrier_id": carrier.carrier_id,
        "status_description": STATUS_DESCRIPTIONS[status],
        "status_detail_description": _DETAIL_DESCRIPTIONS.get(detail, ""),
        "carrier_status_code": current.carrier_status if current else "",
        "carrier_detail_code": "FS" if status == "DE" else None,
        "carrier_status_description": current.description.upper() if current else "",
        "ship_date": _iso(_midnight(accepted[0])) if accepted else None,
        "estimated_delivery_date": _iso(_midnight(planned_delivery + timedelta(days=1))) if accepted else None,
        "actual_delivery_date": _iso(delivered[-1]) if delivered else None,
        "exception_description": current.description if current and status == "EX" else None,
        "events": events,
    }


def _event(at: datetime, stage: Stage, route: dict[str, tuple[Any, ...]], carrier_code: str, i: int) -> dict[str, Any]:
    """One event in ShipEngine's shape, with the nulls and empty strings real carriers send."""
    city, state, postal, utc_offset_h, lat, lon = route.get(stage.place) or (None, None, None, 0, None, None)
    local = at + timedelta(hours=utc_offset_h)
    event: dict[str, Any] = {
        "occurred_at": _iso(at),
        "carrier_occurred_at": local.strftime("%Y-%m-%dT%H:%M:%S"),  # carrier local time, no zone
        "description": stage.description.upper() if carrier_code == "ups" else stage.description,
        "city_locality": city,
        "state_province": state,
        "postal_code": postal,
        "country_code": "US" if city else "",
        "company_name": "" if i % 2 else None,
        "signer": "FRONT DOOR" if stage.status == "DE" else ("" if i % 2 else None),
        "event_code": stage.event_code,
        "carrier_detail_code": "FS" if stage.status == "DE" else None,
        "status_code": stage.status if stage.event_status is None else stage.event_status,
        "carrier_status_code": stage.carrier_status,
        "carrier_status_description": stage.description,
        "latitude": lat if stage.place == "dest" else None,
        "longitude": lon if stage.place == "dest" else None,
    }
    if stage.event_status is None:  # like the SDK fixtures, a label scan lacks the newer fields
        event["status_detail_code"] = stage.detail
        event["status_description"] = STATUS_DESCRIPTIONS[stage.status]
    if stage.status == "DE" and carrier_code == "fedex":
        event["proof_of_delivery_url"] = "https://www.fedex.com/trackingCal/retrievePDF.jsp?trackingNumber=0"
    return event


def _midnight(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
