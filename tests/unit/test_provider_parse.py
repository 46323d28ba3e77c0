"""
ShipEngine body parsing and Retry-After handling, as pure functions over bytes and strings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from shiptrackd.config import ProviderConfig, Secret
from shiptrackd.errors import ConfigError, InvalidResponseError
from shiptrackd.providers import PROVIDERS, Provider, ShipEngineProvider, make_provider
from shiptrackd.providers.shipengine import parse_retry_after
from shiptrackd.providers.shipengine_parse import parse_tracking


def parse(body: Any) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_tracking(content, carrier_code="ups", tracking_number="1ZREQ")


def test_minimal_body_fills_in_from_the_request() -> None:
    """Only status_code is required; absent identifiers come from the request, absent dates are None."""
    info = parse({"status_code": "UN"})
    assert (info.tracking_number, info.carrier_code, info.status_code) == ("1ZREQ", "ups", "UN")
    assert info.ship_at is None and info.events == ()


def test_events_sorted_oldest_first_and_times_aware_utc() -> None:
    """Events come out oldest first in aware UTC, whatever order and offsets the API used."""
    info = parse(
        {
            "status_code": "IT",
            "ship_date": "2025-03-03T00:00:00Z",
            "estimated_delivery_date": "2025-03-06T00:00:00.286Z",
            "events": [
                {"occurred_at": "2025-03-05T14:02:00+02:00", "description": "second"},
                {"occurred_at": "2025-03-05T19:41:00Z", "description": "third"},
                {"occurred_at": "2025-03-03T23:15:00Z", "description": "first"},
            ],
        }
    )
    assert [e.description for e in info.events] == ["first", "second", "third"]
    assert info.events[1].occurred_at == datetime(2025, 3, 5, 12, 2, tzinfo=UTC)
    assert all(e.occurred_at.tzinfo is UTC for e in info.events)
    assert info.estimated_delivery_at == datetime(2025, 3, 6, 0, 0, 0, 286000, tzinfo=UTC)


def test_null_and_empty_string_are_the_same() -> None:
    """null, "" and absent all become "" for text and None for dates, as ShipEngine mixes them."""
    info = parse(
        {
            "status_code": "DE",
            "status_description": None,
            "carrier_code": "",
            "actual_delivery_date": "",
            "exception_description": None,
            "events": [
                {"occurred_at": "2025-03-05T19:41:00Z", "city_locality": None, "postal_code": "", "status_code": ""}
            ],
        }
    )
    assert info.status_description == "" and info.carrier_code == "ups" and info.actual_delivery_at is None
    event = info.events[0]
    assert (event.city, event.postal_code, event.status_code) == ("", "", "")


def test_zone_less_carrier_time_is_ignored() -> None:
    """A zone-less carrier_occurred_at never overrides occurred_at, and alone it cannot place an event."""
    info = parse(
        {
            "status_code": "IT",
            "events": [
                {"occurred_at": "2025-03-05T19:41:00Z", "carrier_occurred_at": "2025-03-05T13:41:00"},
                {"carrier_occurred_at": "2025-03-04T08:00:00", "description": "no usable time"},
                {"carrier_occurred_at": "2025-03-04T08:00:00-05:00", "description": "zoned local time"},
            ],
        }
    )
    assert [e.occurred_at for e in info.events] == [
        datetime(2025, 3, 4, 13, 0, tzinfo=UTC),
        datetime(2025, 3, 5, 19, 41, tzinfo=UTC),
    ]


def test_unknown_event_status_is_blanked_not_fatal() -> None:
    """An unknown per-event status code is dropped to "", since only the top-level one drives cadence."""
    info = parse({"status_code": "IT", "events": [{"occurred_at": "2025-03-05T19:41:00Z", "status_code": "XX"}]})
    assert info.events[0].status_code == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"<html>502 Bad Gateway</html>", "body"),
        ([{"status_code": "IT"}], "body"),
        ({"status_code": "ZZ"}, "status_code"),
        ({}, "status_code"),
        ({"status_code": "IT", "events": {"0": {}}}, "events"),
        ({"status_code": "IT", "events": ["scan"]}, "events[0]"),
        ({"status_code": "IT", "ship_date": "soon"}, "ship_date"),
        ({"status_code": "IT", "events": [{"occurred_at": 1741200000}]}, "events[0].occurred_at"),
        ({"status_code": "IT", "status_description": {"en": "x"}}, "status_description"),
    ],
)
def test_schema_violations_name_the_field(body: Any, field: str) -> None:
    """Anything that breaks the schema is an InvalidResponseError whose message starts with the field."""
    with pytest.raises(InvalidResponseError) as caught:
        parse(body)
    assert caught.value.message.startswith(f"{field}:")
    assert caught.value.kind == "invalid_response" and caught.value.status == 200


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("1.5", 1.5), (None, 5.0), ("", 5.0), ("soon", 5.0), ("-3", 0.0), ("86400", 300.0), ("nan", 5.0)],
)
def test_retry_after_seconds(header: str | None, expected: float) -> None:
    """Retry-After seconds are used as sent, missing or garbage means 5 s, and the wait is clamped."""
    assert parse_retry_after(header, 300.0) == expected


def test_retry_after_http_date() -> None:
    """An HTTP-date Retry-After becomes the seconds until that moment."""
    at = datetime.now(UTC) + timedelta(seconds=90)
    assert parse_retry_after(format_datetime(at, usegmt=True), 300.0) == pytest.approx(90, abs=2)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 300.0) == 0.0


@pytest.mark.anyio
async def test_registry_builds_shipengine_and_rejects_unknown_names() -> None:
    """make_provider builds the configured provider and names the known ones for a typo."""
    assert {"shipengine", "17track"} <= set(PROVIDERS)
    provider = make_provider(ProviderConfig(api_key=Secret("k")))
    assert isinstance(provider, ShipEngineProvider) and isinstance(provider, Provider)
    assert provider.name == "shipengine" and provider.limits.batch_size == 1
    await provider.aclose()
    with pytest.raises(ConfigError, match=r"unknown kind 'shipengin'.*shipengine"):
        make_provider(ProviderConfig(name="shipengin"))
