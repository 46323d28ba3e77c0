"""Store rows for pure-rule tests: a whole typed row from the few fields a test cares about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shiptrackd.store.rows import Shipment

CREATED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def shipment(**fields: Any) -> Shipment:
    """A new, active, never-synced shipment, with *fields* instead of the defaults."""
    row: dict[str, Any] = {
        "id": "ship_1",
        "carrier_code": "ups",
        "tracking_number": "1Z0001",
        "reference": "",
        "status_code": None,
        "status_detail_code": "",
        "status_description": "",
        "exception_description": "",
        "estimated_delivery_at": None,
        "actual_delivery_at": None,
        "last_synced_at": None,
        "status_changed_at": None,
        "next_sync_at": CREATED_AT,
        "schedule_reason": "new",
        "consecutive_failures": 0,
        "last_error": "",
        "last_error_kind": "",
        "active": True,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
        "provider": "",
        "provider_ref": "",
        "provider_status": "",
        "provider_sub_status": "",
        "subscribed_at": None,
        "last_push_at": None,
        "push_count": 0,
        "push_missed": False,
        "carrier_source": "given",
        "detected_carrier": "",
    }
    return Shipment(**(row | fields))
