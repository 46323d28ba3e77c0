"""
The webhooks' wire contract as OpenAPI 3.1: the `webhooks` section of /v1/openapi.json.

One payload schema for every event type (payload.py builds it), the Standard Webhooks headers, and
what the receiver's answer means. Pure data; api/openapi.py puts it in the document.
"""

from __future__ import annotations

from typing import Any

from ..config import OUTBOUND_EVENTS
from ..wire.names import STATUS_CODES
from .payload import PAYLOAD_VERSION

STATUS_ENUM = list(STATUS_CODES)
_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATUS = {"type": ["string", "null"], "enum": [*STATUS_ENUM, None]}

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["occurred_at", "status", "description", "event_code", "location"],
    "properties": {
        "occurred_at": _TIME,
        "status": _STATUS,
        "description": {"type": "string"},
        "event_code": {"type": "string"},
        "location": {"type": "string"},
    },
}

PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": f"Payload version {PAYLOAD_VERSION}: fields may be added, never removed or changed.",
    "required": ["type", "timestamp", "data"],
    "properties": {
        "type": {"type": "string", "enum": list(OUTBOUND_EVENTS)},
        "timestamp": {"type": "string", "format": "date-time", "description": "when the change committed (UTC, Z)"},
        "data": {
            "type": "object",
            "required": [
                "shipment_id",
                "carrier_code",
                "tracking_number",
                "reference",
                "previous_status",
                "status",
                "status_detail",
                "estimated_delivery_at",
                "latest_event",
            ],
            "properties": {
                "shipment_id": {"type": "string", "pattern": "^ship_"},
                "carrier_code": {"type": "string"},
                "tracking_number": {"type": "string"},
                "reference": {"type": "string"},
                "previous_status": _STATUS,
                "status": _STATUS,
                "status_detail": {"type": ["string", "null"]},
                "estimated_delivery_at": _TIME,
                "latest_event": {"oneOf": [EVENT_SCHEMA, {"type": "null"}]},
            },
        },
    },
}

_HEADERS = [
    ("webhook-id", "the message id (msg_...), the same on every retry: the receiver's idempotency key"),
    ("webhook-timestamp", "integer Unix seconds of this attempt"),
    ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body> (Standard Webhooks)"),
]


def webhooks_section() -> dict[str, Any]:
    """OpenAPI 3.1 `webhooks`: one entry per event type, each a signed POST of the payload."""
    out: dict[str, Any] = {}
    for event in OUTBOUND_EVENTS:
        out[event] = {
            "post": {
                "operationId": event.replace(".", "_"),
                "summary": f"{event}, signed per the Standard Webhooks specification",
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": why}
                    for name, why in _HEADERS
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": PAYLOAD_SCHEMA}}},
                "responses": {
                    "2XX": {"description": "delivered"},
                    "410": {"description": "the endpoint is gone: shiptrackd disables it"},
                    "429": {"description": "slow down: the next attempt waits at least Retry-After"},
                    "503": {"description": "unavailable: the next attempt waits at least Retry-After"},
                    "default": {"description": "a failure (3xx included: redirects are not followed); retried"},
                },
            }
        }
    return out
