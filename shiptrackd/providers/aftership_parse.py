"""
AfterShip Tracking JSON (API version 2026-07) -> TrackingInfo, and AfterShip's tags and subtags -> ours.

Facts from reference/tracking-apis.md §3: every answer is `{"meta": {...}, "data": {...}}`; a
tracking has a `tag` (Pending, InfoReceived, InTransit, OutForDelivery, AttemptFail, Delivered,
AvailableForPickup, Exception, Expired), a `subtag` that refines it (`Delivered_001`,
`Exception_003`, ...) and a `subtag_message`; `checkpoints[]` carry the same three plus, from
2026-07, a `hash` that identifies the checkpoint and is our dedup key for it. A tag we do not
know becomes UN with its raw text, flagged so the caller can count it. The provider's own words
are kept: `status_description` is the tag, `carrier_status_description` the subtag (and its message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shiptrackd.errors import InvalidResponseError
from shiptrackd.models import TrackingEvent, TrackingInfo
from shiptrackd.providers import json_fields as jf
from shiptrackd.providers.base import MappedStatus

API_VERSION = "2026-07"

# AfterShip tag -> (our status code, status_detail_code).
TAG_MAP: dict[str, tuple[str, str]] = {
    "Pending": ("UN", ""),
    "InfoReceived": ("NY", "SHIPMENT_CREATED"),
    "InTransit": ("IT", "IN_TRANSIT"),
    "OutForDelivery": ("IT", "OUT_FOR_DELIVERY"),
    "AttemptFail": ("AT", "ATTEMPTED_DELIVERY"),
    "Delivered": ("DE", "DELIVERED"),
    "AvailableForPickup": ("SP", "DELIVERED_TO_PICKUP_POINT"),
    "Exception": ("EX", "UNSPECIFIED_EXCEPTION"),
    "Expired": ("EX", "TRACKING_EXPIRED"),
}
# Subtags whose meaning is documented plainly enough to refine the status or the detail code.
SUBTAG_MAP: dict[str, tuple[str, str]] = {
    "InTransit_002": ("AC", "PICKED_UP"),  # acceptance scan: the carrier has it
    "InTransit_003": ("IT", "HUB_SCAN_IN"),  # arrival scan
    "InTransit_005": ("IT", "CUSTOMS_CLEARED"),
    "InTransit_006": ("IT", "CUSTOMS_PROCESSING"),
    "InTransit_007": ("IT", "HUB_SCAN_OUT"),  # departure scan
    "Delivered_002": ("DE", "PARCEL_COLLECTED_FROM_PICKUP_POINT"),
    "Delivered_005": ("DE", "DELIVERED_TO_NEIGHBOUR"),
    "Exception_002": ("EX", "CUSTOMER_MOVED"),
    "Exception_003": ("EX", "REFUSED_BY_CUSTOMER"),
    "Exception_004": ("EX", "HELD_BY_CUSTOMS"),
    "Exception_005": ("EX", "CARRIER_DELAYS"),
}
# For the other Exception subtags the subtag_message says what happened; words -> detail code.
_EXCEPTION_WORDS = (
    ("return", "RETURN_TO_SENDER"),
    ("lost", "PARCEL_LOST"),
    ("damage", "PARCEL_DAMAGED"),
    ("cancel", "CANCELLED"),
    ("refused", "REFUSED_BY_CUSTOMER"),
    ("delay", "CARRIER_DELAYS"),
    ("customs", "HELD_BY_CUSTOMS"),
)

# Our carrier codes <-> AfterShip courier slugs, where they differ.
SLUGS: dict[str, str] = {"dhl_express": "dhl", "canada_post": "canada-post", "stamps_com": "usps"}
_CARRIER_CODES = {slug: code for code, slug in SLUGS.items() if code != "stamps_com"}


@dataclass(frozen=True)
class Tracking:
    """One AfterShip tracking: its id (the key for `GET /trackings/{id}`) and the tracking it says."""

    id: str
    slug: str
    info: TrackingInfo
    known_status: bool


def slug_for(carrier_code: str) -> str:
    """Our carrier code as an AfterShip courier slug (`dhl_express` -> `dhl`); others pass through."""
    return SLUGS.get(carrier_code, carrier_code.replace("_", "-"))


def carrier_code_for(slug: str) -> str:
    """An AfterShip slug as our carrier code."""
    return _CARRIER_CODES.get(slug, slug.replace("-", "_"))


def map_tag(tag: str, subtag: str = "", subtag_message: str = "") -> MappedStatus:
    """AfterShip `tag`, `subtag` and `subtag_message` -> our status code and status_detail_code."""
    mapped = TAG_MAP.get(tag)
    if mapped is None:
        return MappedStatus("UN", "", known=False)
    refined = SUBTAG_MAP.get(subtag)
    if refined is not None and subtag.split("_")[0] == tag:
        return MappedStatus(refined[0], refined[1], known=True)
    if tag == "Exception" and subtag_message:
        lowered = subtag_message.lower()
        for word, detail in _EXCEPTION_WORDS:
            if word in lowered:
                return MappedStatus("EX", detail, known=True)
    return MappedStatus(mapped[0], mapped[1], known=True)


def unwrap(content: bytes, *, status: int = 200) -> dict[str, Any]:
    """The `data` object of an AfterShip envelope."""
    body = jf.load_object(content, status=status)
    if not isinstance(body.get("meta"), dict):
        raise InvalidResponseError("meta: expected an object", status=status)
    data = body.get("data")
    if not isinstance(data, dict):
        raise InvalidResponseError(f"data: expected an object, got {jf.type_name(data)}", status=status)
    return data


def error_details(content: bytes, fallback: str) -> tuple[int | None, str, str]:
    """(meta.code, meta.type, meta.message) from an AfterShip error envelope, tolerating anything else."""
    try:
        body = jf.load_object(content, status=0)
    except InvalidResponseError:
        text = " ".join(content[:300].decode("utf-8", "replace").split())
        return None, "", text[:200] or fallback
    meta = body.get("meta")
    if not isinstance(meta, dict):
        return None, "", fallback
    code = meta.get("code")
    kind = meta.get("type")
    message = meta.get("message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        kind if isinstance(kind, str) else "",
        " ".join(message.split())[:300] if isinstance(message, str) and message.strip() else fallback,
    )


def parse_detected(content: bytes) -> list[str]:
    """The carrier codes a `POST /couriers/detect` answer names (`data.couriers[].slug`), best match first."""
    couriers = jf.items(unwrap(content), "couriers", where="data")
    codes = [carrier_code_for(jf.text(c, "slug", where=f"data.couriers[{i}]")) for i, c in enumerate(couriers)]
    return [code for code in codes if code]


def parse_tracking_body(content: bytes) -> Tracking:
    """A `POST /trackings` or `GET /trackings/{id}` answer (enveloped)."""
    return parse_tracking(unwrap(content))


def parse_tracking(data: dict[str, Any], *, where: str = "") -> Tracking:
    """A tracking object (also the `msg` of a webhook)."""
    tracking_id = jf.text(data, "id", where=where)
    if not tracking_id:
        raise InvalidResponseError(f"{jf.field(where, 'id')}: missing", status=200)
    number = jf.text(data, "tracking_number", where=where)
    if not number:
        raise InvalidResponseError(f"{jf.field(where, 'tracking_number')}: missing", status=200)
    tag = jf.text(data, "tag", where=where)
    subtag = jf.text(data, "subtag", where=where)
    subtag_message = jf.text(data, "subtag_message", where=where)
    mapped = map_tag(tag, subtag, subtag_message)
    checkpoints_where = jf.field(where, "checkpoints")
    events: list[TrackingEvent] = []
    seen: set[str] = set()
    for i, item in enumerate(jf.items(data, "checkpoints", where=where)):
        event = _event(item, f"{checkpoints_where}[{i}]")
        if event is None or (event.dedup_id and event.dedup_id in seen):
            continue  # a repeated hash is the same checkpoint sent twice
        seen.add(event.dedup_id)
        events.append(event)
    events.sort(key=lambda event: event.occurred_at)
    slug = jf.text(data, "slug", where=where)
    latest = events[-1] if events else None
    estimate = jf.obj(data, "courier_estimated_delivery_date", where=where)
    estimated_at = jf.when(
        estimate, "estimated_delivery_date", where=jf.field(where, "courier_estimated_delivery_date")
    ) or jf.when(data, "expected_delivery", where=where)
    delivered_at = jf.when(data, "shipment_delivery_date", where=where)
    info = TrackingInfo(
        tracking_number=number,
        status_code=mapped.status_code,
        status_description=tag,
        status_detail_code=mapped.detail_code,
        carrier_code=carrier_code_for(slug) if slug else "",
        carrier_status_description=f"{subtag} {subtag_message}".strip(),
        exception_description=(latest.description if latest else subtag_message) if mapped.status_code == "EX" else "",
        ship_at=jf.when(data, "shipment_pickup_date", where=where),
        estimated_delivery_at=estimated_at,
        actual_delivery_at=delivered_at if mapped.status_code == "DE" else None,
        events=tuple(events),
        provider_status=tag,
        provider_sub_status=subtag,
    )
    return Tracking(id=tracking_id, slug=slug, info=info, known_status=mapped.known)


def _event(item: dict[str, Any], where: str) -> TrackingEvent | None:
    """One checkpoint, or None when it has no time."""
    occurred_at = jf.when(item, "checkpoint_time", where=where)
    if occurred_at is None:
        return None
    tag = jf.text(item, "tag", where=where)
    subtag = jf.text(item, "subtag", where=where)
    mapped = map_tag(tag, subtag, jf.text(item, "subtag_message", where=where))
    country = jf.text(item, "country_region", where=where) or jf.text(item, "country_iso3", where=where)
    return TrackingEvent(
        occurred_at=occurred_at,
        description=jf.text(item, "message", where=where),
        status_code=mapped.status_code if mapped.known else "",
        event_code=subtag,
        city=jf.text(item, "city", where=where),
        state=jf.text(item, "state", where=where),
        postal_code=jf.text(item, "zip", where=where),
        country_code=country,
        carrier_status_code=jf.text(item, "raw_tag", where=where),
        dedup_id=jf.text(item, "hash", where=where),
    )
