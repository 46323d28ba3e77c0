"""
Plain data shared across modules: what a provider returns and what the store holds.

Frozen dataclasses, aware UTC datetimes ending in `_at`. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

# SQLite's largest INTEGER: an id past it exists nowhere and overflows the driver, so it is "not found" early.
MAX_ROW_ID = 2**63 - 1


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
    # The provider's own id for this scan (AfterShip's checkpoint `hash`): when set it alone is the
    # dedup key, so a scan whose text the provider later corrects is still stored once.
    dedup_id: str = ""

    @property
    def dedup_key(self) -> str:
        """Two fetches of the same scan produce the same key, so history is stored once."""
        if self.dedup_id:
            return f"id|{self.dedup_id}"
        return "|".join((self.occurred_at.isoformat(), self.event_code, self.status_code, self.description))


@dataclass(frozen=True)
class TrackingInfo:
    """A provider's answer for one shipment, already validated and normalised."""

    tracking_number: str
    status_code: str  # one of wire.names.STATUS_CODES
    status_description: str = ""
    status_detail_code: str = ""
    carrier_code: str = ""
    carrier_status_description: str = ""
    exception_description: str = ""
    ship_at: datetime | None = None
    estimated_delivery_at: datetime | None = None
    actual_delivery_at: datetime | None = None
    events: tuple[TrackingEvent, ...] = field(default_factory=tuple)  # oldest first
    # The provider's own words, kept beside our code (17TRACK "InTransit"/"InTransit_PickedUp",
    # AfterShip tag/subtag): an unknown status maps to "UN" and these still say what it was.
    provider_status: str = ""
    provider_sub_status: str = ""


ECHO_MAX = 64  # input echoed back in an error is cut to this many characters


def echo(value: str) -> str:
    """*value* quoted for an error message, cut to ECHO_MAX characters: a 10,000-character
    tracking number must not come back in full (in the reply, the log, a terminal)."""
    if len(value) <= ECHO_MAX:
        return repr(value)
    return f"{value[:ECHO_MAX]!r}… ({len(value)} characters)"


CARRIER_RE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_TRACKING_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
_PROVIDER_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class NewShipment:
    """A shipment to start tracking, as an operator or an import file gives it."""

    carrier_code: str  # "" when not given: the provider account detects it at registration
    tracking_number: str
    reference: str = ""
    provider: str = ""  # a [[providers]] entry's name: tracked by that account, whatever the carrier

    @classmethod
    def parse(cls, data: object) -> NewShipment:
        """Validate one input record; raises ValueError saying which field is wrong and why."""
        if not isinstance(data, dict):
            raise ValueError("expected an object with tracking_number (and carrier_code)")
        carrier = data.get("carrier_code")
        number = data.get("tracking_number")
        reference = data.get("reference") or ""
        if carrier is None:
            carrier = ""  # none given: a provider that detects carriers must find it (Service.add_shipments)
        if not isinstance(carrier, str):
            raise ValueError("carrier_code must be a string (or left out, for a provider to detect)")
        if carrier and not CARRIER_RE.fullmatch(carrier):
            raise ValueError(f"carrier_code {echo(carrier)} must be lowercase letters, digits and underscores")
        if not isinstance(number, str) or not number:
            raise ValueError("tracking_number is required")
        if not _TRACKING_RE.fullmatch(number):
            raise ValueError(
                f"tracking_number {echo(number)} must be 1-64 letters, digits and dashes"
                " (no spaces or control characters)"
            )
        if not isinstance(reference, str) or len(reference) > 200 or not reference.isprintable():
            raise ValueError("reference must be printable text of at most 200 characters")
        provider = data.get("provider") or ""
        if not isinstance(provider, str) or (provider and not _PROVIDER_RE.fullmatch(provider)):
            raise ValueError(f"provider {echo(str(provider))} must name a configured provider account")
        return cls(carrier, number, reference, provider)
