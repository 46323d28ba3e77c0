"""
Plain data shared across modules: what a provider returns and what the store holds.

Frozen dataclasses, aware UTC datetimes ending in `_at`. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# ShipEngine's status codes; logic keys on these, never on descriptions.
STATUS_CODES = ("UN", "NY", "AC", "IT", "AT", "EX", "SP", "DE")
STATUS_NAMES = {
    "UN": "unknown",
    "NY": "not yet in system",
    "AC": "accepted",
    "IT": "in transit",
    "AT": "delivery attempt",
    "EX": "exception",
    "SP": "at pickup point",
    "DE": "delivered",
}


@dataclass(frozen=True)
class TrackingEvent:
    """One scan in a carrier's history."""

    occurred_at: datetime
    description: str = ""
    status_code: str = ""
    event_code: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country_code: str = ""
    carrier_status_code: str = ""

    @property
    def dedup_key(self) -> str:
        """Two fetches of the same scan produce the same key, so history is stored once."""
        return "|".join((self.occurred_at.isoformat(), self.event_code, self.status_code, self.description))


@dataclass(frozen=True)
class TrackingInfo:
    """A provider's answer for one shipment, already validated and normalised."""

    tracking_number: str
    status_code: str  # one of STATUS_CODES
    status_description: str = ""
    status_detail_code: str = ""
    carrier_code: str = ""
    carrier_status_description: str = ""
    exception_description: str = ""
    ship_at: datetime | None = None
    estimated_delivery_at: datetime | None = None
    actual_delivery_at: datetime | None = None
    events: tuple[TrackingEvent, ...] = field(default_factory=tuple)  # oldest first
