"""
The lifecycles of lifecycle.py as neutral scans, so every provider dialect tells the same story.

lifecycle.tracking_body() speaks ShipEngine; the EasyPost and AfterShip dialects re-dress its
scans in their own vocabulary. Going through it (rather than a second timeline) keeps the
magic pins (LCNORMAL, DELIVERED, ...) and the hash-picked scenarios identical across dialects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shiptrackd.sandbox import lifecycle


@dataclass(frozen=True)
class Scan:
    """One scan: UTC time, the carrier's local offset, and ShipEngine's status and detail for it."""

    at: datetime
    offset: timedelta
    status: str  # ShipEngine status code the shipment had after this scan
    detail: str  # ShipEngine status_detail_code ("" for a label scan)
    description: str
    city: str
    state: str
    postal_code: str
    country_code: str


@dataclass(frozen=True)
class Story:
    """Where a parcel stands: its status and detail now, its scans oldest first, its planned delivery."""

    status: str
    detail: str
    scans: tuple[Scan, ...]
    estimated_delivery_at: datetime | None


def story(carrier_code: str, number: str, *, first_seen_at: datetime, now: datetime) -> Story:
    """The lifecycle of (carrier, number) as of `now`, first seen at `first_seen_at`."""
    body = lifecycle.tracking_body(carrier_code, number, first_seen_at=first_seen_at, now=now)
    scans = [_scan(event) for event in reversed(body["events"])]
    eta = body.get("estimated_delivery_date")
    return Story(
        status=body["status_code"],
        detail=body.get("status_detail_code") or "",
        scans=tuple(scans),
        estimated_delivery_at=_parse(eta) if eta else None,
    )


def local_iso(at: datetime, offset: timedelta) -> str:
    """`at` written in its local zone with the offset (`2026-01-01T09:00:00-05:00`)."""
    return at.astimezone(UTC).astimezone(timezone(offset)).isoformat(timespec="seconds")


def utc_iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scan(event: dict[str, Any]) -> Scan:
    at = _parse(event["occurred_at"])
    local = datetime.fromisoformat(event["carrier_occurred_at"]).replace(tzinfo=UTC)
    return Scan(
        at=at,
        offset=local - at,
        status=event.get("status_code") or "NY",
        detail=event.get("status_detail_code") or "",
        description=event.get("carrier_status_description") or event.get("description") or "",
        city=event.get("city_locality") or "",
        state=event.get("state_province") or "",
        postal_code=event.get("postal_code") or "",
        country_code=event.get("country_code") or "",
    )


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
