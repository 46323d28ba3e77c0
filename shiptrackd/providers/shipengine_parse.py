"""
ShipEngine JSON -> TrackingInfo, strict about what the sync engine relies on, lenient about the rest.

Real responses and ShipEngine's own SDK fixtures break the OpenAPI "required" lists, mix
`null` and `""`, send zone-less `carrier_occurred_at` and list events newest first
(reference/tracking-apis.md §1.5, §1.8). So every field is optional except `status_code`,
which drives cadence and must be one of STATUS_CODES. A field that is present but cannot be
understood (wrong type, unparseable date) raises InvalidResponseError naming that field,
because silently dropping it would store a wrong history.
"""

from __future__ import annotations

import json
from typing import Any

from shiptrackd.errors import InvalidResponseError
from shiptrackd.models import TrackingEvent, TrackingInfo
from shiptrackd.providers import json_fields as jf
from shiptrackd.wire.names import STATUS_CODES


def parse_tracking(content: bytes, *, carrier_code: str, tracking_number: str) -> TrackingInfo:
    """Parse a 200 body from `GET /v1/tracking`; the request's values fill in absent identifiers."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponseError("body: not valid JSON", status=200) from None
    return parse_tracking_data(data, carrier_code=carrier_code, tracking_number=tracking_number)


def parse_tracking_data(data: Any, *, carrier_code: str, tracking_number: str) -> TrackingInfo:
    """A decoded `tracking_information` object (a poll's body, or a push's `data`) as a TrackingInfo."""
    if not isinstance(data, dict):
        raise InvalidResponseError(f"body: expected a JSON object, got {jf.type_name(data)}", status=200)

    status_code = data.get("status_code")
    if status_code not in STATUS_CODES:
        raise InvalidResponseError(f"status_code: {status_code!r} is not one of {', '.join(STATUS_CODES)}", status=200)

    raw_events = data.get("events")
    if raw_events is None:
        raw_events = []
    elif not isinstance(raw_events, list):
        raise InvalidResponseError(f"events: expected a list, got {jf.type_name(raw_events)}", status=200)
    events = [event for i, item in enumerate(raw_events) if (event := _event(item, i)) is not None]
    events.sort(key=lambda event: event.occurred_at)  # stable: equal times keep the API's order

    return TrackingInfo(
        tracking_number=jf.text(data, "tracking_number") or tracking_number,
        status_code=status_code,
        status_description=jf.text(data, "status_description"),
        status_detail_code=jf.text(data, "status_detail_code"),
        carrier_code=jf.text(data, "carrier_code") or carrier_code,
        carrier_status_description=jf.text(data, "carrier_status_description"),
        exception_description=jf.text(data, "exception_description"),
        ship_at=jf.when(data, "ship_date"),
        estimated_delivery_at=jf.when(data, "estimated_delivery_date"),
        actual_delivery_at=jf.when(data, "actual_delivery_date"),
        events=tuple(events),
        provider_status=status_code,
        provider_sub_status=jf.text(data, "status_detail_code"),
    )


def _event(item: object, index: int) -> TrackingEvent | None:
    """One event, or None when it carries no usable time (nothing to order or deduplicate it by)."""
    where = f"events[{index}]"
    if not isinstance(item, dict):
        raise InvalidResponseError(f"{where}: expected an object, got {jf.type_name(item)}", status=200)
    occurred_at = jf.when(item, "occurred_at", where=where)
    if occurred_at is None:
        # carrier_occurred_at is the carrier's local wall time and usually has no zone; only
        # trust it when it does, otherwise a scan would be misplaced by up to a day.
        occurred_at = jf.when(item, "carrier_occurred_at", where=where, zoned_only=True)
        if occurred_at is None:
            return None
    status_code = jf.text(item, "status_code", where=where)
    return TrackingEvent(
        occurred_at=occurred_at,
        description=jf.text(item, "description", where=where),
        status_code=status_code if status_code in STATUS_CODES else "",
        event_code=jf.text(item, "event_code", where=where),
        city=jf.text(item, "city_locality", where=where),
        state=jf.text(item, "state_province", where=where),
        postal_code=jf.text(item, "postal_code", where=where),
        country_code=jf.text(item, "country_code", where=where),
        carrier_status_code=jf.text(item, "carrier_status_code", where=where),
    )
