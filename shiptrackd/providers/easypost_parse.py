"""
EasyPost Tracker JSON -> TrackingInfo, and EasyPost's status vocabulary -> ours.

Facts from reference/tracking-apis.md §2: a Tracker carries `status` (unknown, pre_transit,
in_transit, out_for_delivery, delivered, available_for_pickup, return_to_sender, failure,
cancelled, error) and a finer `status_detail`; `tracking_details[]` is oldest first; carriers
are spelled EasyPost's way (`USPS`, `FedEx`). Our status codes are ShipEngine's (models.py),
so each EasyPost status maps to a code plus a status_detail_code the cadence understands
(OUT_FOR_DELIVERY, RETURN_TO_SENDER, ...). The provider's own words are kept:
`status_description` is EasyPost's `status`, `carrier_status_description` its `status_detail`.
A status we do not know becomes UN with its raw text, flagged so the caller can count it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shiptrackd.errors import InvalidResponseError
from shiptrackd.models import TrackingEvent, TrackingInfo
from shiptrackd.providers import json_fields as jf
from shiptrackd.providers.base import MappedStatus

# EasyPost status -> (our status code, status_detail_code).
STATUS_MAP: dict[str, tuple[str, str]] = {
    "unknown": ("UN", ""),
    "pre_transit": ("NY", "SHIPMENT_CREATED"),
    "in_transit": ("IT", "IN_TRANSIT"),
    "out_for_delivery": ("IT", "OUT_FOR_DELIVERY"),
    "delivered": ("DE", "DELIVERED"),
    "available_for_pickup": ("SP", "DELIVERED_TO_PICKUP_POINT"),
    "return_to_sender": ("EX", "RETURN_TO_SENDER"),
    "failure": ("EX", "UNSPECIFIED_EXCEPTION"),
    "cancelled": ("EX", "CANCELLED"),
    "error": ("EX", "UNSPECIFIED_EXCEPTION"),
}
# Statuses whose detail code is the status itself, whatever status_detail says.
_FIXED_DETAIL = frozenset({"out_for_delivery", "delivered", "return_to_sender", "cancelled"})
# EasyPost status_detail -> ShipEngine status_detail_code, where one plainly corresponds.
DETAIL_MAP: dict[str, str] = {
    "label_created": "SHIPMENT_CREATED",
    "arrived_at_facility": "HUB_SCAN_IN",
    "departed_facility": "HUB_SCAN_OUT",
    "arrived_at_destination": "RECEIVED_LOCAL_DELIVERY_DEPOT",
    "received_at_destination_facility": "RECEIVED_LOCAL_DELIVERY_DEPOT",
    "arrived_at_pickup_location": "DELIVERED_TO_PICKUP_POINT",
    "out_for_delivery": "OUT_FOR_DELIVERY",
    "delivery_exception": "UNSPECIFIED_EXCEPTION",
    "return": "RETURN_TO_SENDER",
    "lost": "PARCEL_LOST",
    "damaged": "PARCEL_DAMAGED",
    "weather_delay": "CARRIER_DELAYS",
    "delayed": "CARRIER_DELAYS",
    "refused": "REFUSED_BY_CUSTOMER",
    "held": "HELD_BY_CARRIER",
    "expired": "TRACKING_EXPIRED",
    "cancelled": "CANCELLED",
}

# Our carrier codes <-> EasyPost's carrier names (what `carrier` says on a Tracker).
CARRIER_NAMES: dict[str, str] = {
    "usps": "USPS",
    "stamps_com": "USPS",
    "ups": "UPS",
    "fedex": "FedEx",
    "dhl_express": "DHLExpress",
    "canada_post": "CanadaPost",
    "ontrac": "OnTrac",
}
_CARRIER_CODES = {name.lower(): code for code, name in CARRIER_NAMES.items() if code != "stamps_com"}


@dataclass(frozen=True)
class Tracker:
    """One EasyPost Tracker: its id (`trk_…`), mode, and the tracking it says."""

    id: str
    mode: str
    info: TrackingInfo
    known_status: bool


def easypost_carrier(carrier_code: str) -> str:
    """Our carrier code as EasyPost spells it; unknown codes pass through upper-cased."""
    return CARRIER_NAMES.get(carrier_code, carrier_code.upper())


def carrier_code_for(name: str) -> str:
    """EasyPost's carrier name as our carrier code (lower snake case for the ones we do not know)."""
    return _CARRIER_CODES.get(name.lower(), name.lower().replace(" ", "_"))


def map_status(status: str, detail: str = "") -> MappedStatus:
    """EasyPost `status` and `status_detail` -> our status code and status_detail_code."""
    mapped = STATUS_MAP.get(status)
    if mapped is None:
        return MappedStatus("UN", DETAIL_MAP.get(detail, ""), known=False)
    code, default_detail = mapped
    if status in _FIXED_DETAIL:
        return MappedStatus(code, default_detail, known=True)
    return MappedStatus(code, DETAIL_MAP.get(detail, default_detail), known=True)


def parse_tracker_body(content: bytes, *, status: int = 200) -> Tracker:
    """A `POST /v2/trackers` or `GET /v2/trackers/{id}` answer."""
    return parse_tracker(jf.load_object(content, status=status))


def parse_tracker_list(content: bytes) -> tuple[list[Tracker], bool]:
    """A `GET /v2/trackers` page: its trackers and `has_more`."""
    data = jf.load_object(content)
    trackers = [parse_tracker(item, where=f"trackers[{i}]") for i, item in enumerate(jf.items(data, "trackers"))]
    has_more = data.get("has_more", False)
    if not isinstance(has_more, bool):
        raise InvalidResponseError(f"has_more: expected a boolean, got {jf.type_name(has_more)}", status=200)
    return trackers, has_more


def parse_tracker(data: dict[str, Any], *, where: str = "") -> Tracker:
    """A Tracker object (also the `result` of a webhook Event)."""
    tracker_id = jf.text(data, "id", where=where)
    if not tracker_id:
        raise InvalidResponseError(f"{jf.field(where, 'id')}: missing", status=200)
    tracking_code = jf.text(data, "tracking_code", where=where)
    if not tracking_code:
        raise InvalidResponseError(f"{jf.field(where, 'tracking_code')}: missing", status=200)
    raw_status = jf.text(data, "status", where=where)
    raw_detail = jf.text(data, "status_detail", where=where)
    mapped = map_status(raw_status, raw_detail)
    details_where = jf.field(where, "tracking_details")
    events = [
        _event(item, f"{details_where}[{i}]") for i, item in enumerate(jf.items(data, "tracking_details", where=where))
    ]
    kept = [event for event in events if event is not None]
    kept.sort(key=lambda event: event.occurred_at)  # documented oldest first; sorting is cheap insurance
    delivered = [e.occurred_at for e in kept if e.status_code == "DE"]
    moving = [e.occurred_at for e in kept if e.status_code in ("IT", "AT", "SP", "DE", "EX")]
    latest = kept[-1] if kept else None
    info = TrackingInfo(
        tracking_number=tracking_code,
        status_code=mapped.status_code,
        status_description=raw_status,
        status_detail_code=mapped.detail_code,
        carrier_code=carrier_code_for(jf.text(data, "carrier", where=where)),
        carrier_status_description=raw_detail,
        exception_description=latest.description if latest and mapped.status_code == "EX" else "",
        ship_at=moving[0] if moving else None,
        estimated_delivery_at=jf.when(data, "est_delivery_date", where=where),
        actual_delivery_at=delivered[-1] if delivered and mapped.status_code == "DE" else None,
        events=tuple(kept),
        provider_status=raw_status,
        provider_sub_status=raw_detail,
    )
    return Tracker(id=tracker_id, mode=jf.text(data, "mode", where=where), info=info, known_status=mapped.known)


def _event(item: dict[str, Any], where: str) -> TrackingEvent | None:
    """One TrackingDetail, or None when it has no time (nothing to order or deduplicate it by)."""
    occurred_at = jf.when(item, "datetime", where=where)
    if occurred_at is None:
        return None
    location = jf.obj(item, "tracking_location", where=where)
    loc_where = jf.field(where, "tracking_location")
    mapped = map_status(jf.text(item, "status", where=where), jf.text(item, "status_detail", where=where))
    return TrackingEvent(
        occurred_at=occurred_at,
        description=jf.text(item, "message", where=where) or jf.text(item, "description", where=where),
        status_code=mapped.status_code if mapped.known else "",
        event_code=jf.text(item, "status_detail", where=where),
        city=jf.text(location, "city", where=loc_where),
        state=jf.text(location, "state", where=loc_where),
        postal_code=jf.text(location, "zip", where=loc_where),
        country_code=jf.text(location, "country", where=loc_where),
        carrier_status_code=jf.text(item, "carrier_code", where=where),
    )


def error_details(content: bytes, fallback: str) -> tuple[str, str]:
    """(code, message) from an EasyPost error body; `message` may be a list or object, `errors` strings."""
    try:
        data = jf.load_object(content, status=0)
    except InvalidResponseError:
        text = " ".join(content[:300].decode("utf-8", "replace").split())
        return "", text[:200] or fallback
    error = data.get("error")
    if not isinstance(error, dict):
        return "", fallback
    code = error.get("code") if isinstance(error.get("code"), str) else ""
    message = error.get("message")
    if isinstance(message, list | dict):
        message = "; ".join(str(part) for part in (message.values() if isinstance(message, dict) else message))
    if not isinstance(message, str) or not message.strip():
        message = fallback
    return str(code), " ".join(message.split())[:300]
