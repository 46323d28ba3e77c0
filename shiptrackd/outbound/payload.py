"""
The webhook payload: one versioned JSON shape for every shipment event, built once when the change commits.

Built inside the writer's transaction (store/outbox.py calls it), so the body is the change as it
was, fixed for every retry and signature. Pure: a shipment row and its latest event in, bytes out.
Statuses are our two-letter codes; times are RFC 3339 UTC ("...Z").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from ..units import format_rfc3339
from ..wire.outbound import WebhookPayload

if TYPE_CHECKING:  # at run time store/outbox.py imports this module: no import back
    from ..store.rows import Shipment, TrackingEvent

# The shape's version: fields are only ever added within it. It is the OpenAPI document's, not a body key,
# so the body stays exactly {"type", "timestamp", "data"}.
PAYLOAD_VERSION = 1


def _time(at: datetime | None) -> str | None:
    return None if at is None else format_rfc3339(at)


def shipment_data(
    shipment: Shipment, previous_status: str | None, latest_event: TrackingEvent | None
) -> dict[str, Any]:
    """The `data` object: the shipment as it stands after the change, and where it came from."""
    event = None
    if latest_event is not None:
        event = {
            "occurred_at": _time(latest_event.occurred_at),
            "status": latest_event.status_code or None,
            "description": latest_event.description,
            "event_code": latest_event.event_code,
            "location": latest_event.location,
        }
    return {
        "shipment_id": shipment.id,
        "carrier_code": shipment.carrier_code,
        "tracking_number": shipment.tracking_number,
        "reference": shipment.reference,
        "previous_status": previous_status,
        "status": shipment.status_code,
        "status_detail": shipment.status_detail_code or None,
        "estimated_delivery_at": _time(shipment.estimated_delivery_at),
        "latest_event": event,
    }


def build_body(event_type: str, at: datetime, data: Mapping[str, Any]) -> str:
    """The exact text that is signed and sent: the wire type WebhookPayload as compact JSON, keys in its order."""
    payload = {"type": event_type, "timestamp": format_rfc3339(at), "data": dict(data)}
    return msgspec.json.encode(msgspec.convert(payload, WebhookPayload)).decode()


def ping_body(endpoint: str, at: datetime) -> str:
    """The body `shiptrackctl endpoints test` sends: a `ping` event naming the endpoint."""
    return json.dumps(
        {"type": "ping", "timestamp": format_rfc3339(at), "data": {"endpoint": endpoint}},
        separators=(",", ":"),
    )
