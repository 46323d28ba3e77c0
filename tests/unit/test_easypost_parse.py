"""
EasyPost: the status map as a table, Tracker parsing, and `X-Hmac-Signature` checked against vectors
computed here from the documented algorithm (hmac + hashlib + unicodedata, not our signer).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest

from shiptrackd.errors import InvalidResponseError
from shiptrackd.providers import easypost_push
from shiptrackd.providers.easypost_parse import (
    STATUS_MAP,
    carrier_code_for,
    easypost_carrier,
    error_details,
    map_status,
    parse_tracker,
    parse_tracker_list,
)
from shiptrackd.wire.names import STATUS_CODES


@pytest.mark.parametrize(
    ("status", "detail", "code", "detail_code"),
    [
        ("unknown", "", "UN", ""),
        ("pre_transit", "label_created", "NY", "SHIPMENT_CREATED"),
        ("in_transit", "arrived_at_facility", "IT", "HUB_SCAN_IN"),
        ("in_transit", "departed_facility", "IT", "HUB_SCAN_OUT"),
        ("in_transit", "status_update", "IT", "IN_TRANSIT"),
        ("out_for_delivery", "status_update", "IT", "OUT_FOR_DELIVERY"),
        ("delivered", "arrived_at_destination", "DE", "DELIVERED"),
        ("available_for_pickup", "arrived_at_pickup_location", "SP", "DELIVERED_TO_PICKUP_POINT"),
        ("return_to_sender", "return", "EX", "RETURN_TO_SENDER"),
        ("failure", "delivery_exception", "EX", "UNSPECIFIED_EXCEPTION"),
        ("failure", "lost", "EX", "PARCEL_LOST"),
        ("cancelled", "unknown", "EX", "CANCELLED"),
        ("error", "unknown", "EX", "UNSPECIFIED_EXCEPTION"),
    ],
)
def test_status_map(status: str, detail: str, code: str, detail_code: str) -> None:
    """Every documented EasyPost status (with a status_detail) lands on one of our codes and a detail code."""
    mapped = map_status(status, detail)
    assert (mapped.status_code, mapped.detail_code, mapped.known) == (code, detail_code, True)


def test_status_map_covers_the_documented_vocabulary() -> None:
    """The ten documented statuses are all mapped, each to a real status code."""
    documented = {
        "unknown",
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "available_for_pickup",
        "return_to_sender",
        "failure",
        "cancelled",
        "error",
    }
    assert set(STATUS_MAP) == documented
    assert {code for code, _ in STATUS_MAP.values()} <= set(STATUS_CODES)


def test_unknown_status_is_unknown_and_flagged() -> None:
    """A status EasyPost invents later is stored as UN with its raw text, and flagged for counting."""
    tracker = parse_tracker(_tracker(status="teleported", status_detail="beamed_up"))
    assert tracker.known_status is False
    assert tracker.info.status_code == "UN"
    assert (tracker.info.status_description, tracker.info.carrier_status_description) == ("teleported", "beamed_up")


def test_tracker_parsed_with_events_oldest_first() -> None:
    """A Tracker's details become events oldest first, locations and carrier kept, delivery time taken."""
    tracker = parse_tracker(_tracker())
    info = tracker.info
    assert (tracker.id, tracker.mode) == ("trk_123", "test")
    assert (info.tracking_number, info.carrier_code, info.status_code) == ("EZ4000000004", "usps", "DE")
    assert [e.status_code for e in info.events] == ["NY", "IT", "DE"]
    assert info.events[-1].city == "CHARLESTON" and info.events[-1].postal_code == "29401"
    assert info.actual_delivery_at == datetime(2026, 1, 3, 17, 0, tzinfo=UTC)
    assert info.ship_at == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    assert info.estimated_delivery_at == datetime(2026, 1, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"tracking_details": {"a": 1}}, "tracking_details"),
        ({"tracking_details": [{"datetime": "soon"}]}, "tracking_details[0].datetime"),
        ({"status": ["x"]}, "status"),
        ({"id": None}, "id"),
    ],
)
def test_malformed_tracker_names_the_field(patch: dict[str, Any], field: str) -> None:
    """A field of the wrong shape raises InvalidResponseError naming that field."""
    with pytest.raises(InvalidResponseError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_tracker({**_tracker(), **patch})


def test_list_page_and_has_more() -> None:
    """`GET /v2/trackers` answers a page of trackers and `has_more`."""
    body = json.dumps({"trackers": [_tracker(), _tracker(id="trk_456")], "has_more": True}).encode()
    trackers, has_more = parse_tracker_list(body)
    assert [t.id for t in trackers] == ["trk_123", "trk_456"] and has_more is True


def test_carrier_names_round_trip() -> None:
    """Our carrier codes go out in EasyPost's spelling and come back as ours."""
    for code in ("usps", "ups", "fedex", "dhl_express", "canada_post", "ontrac"):
        assert carrier_code_for(easypost_carrier(code)) == code
    assert easypost_carrier("stamps_com") == "USPS"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error":{"code":"PARAMETER.REQUIRED","message":"Missing","errors":[]}}', ("PARAMETER.REQUIRED", "Missing")),
        (b'{"error":{"code":"X","message":["one","two"],"errors":["plain"]}}', ("X", "one; two")),
        (b'{"error":{"code":"X","message":{"a":"b"}}}', ("X", "b")),
        (b"<html>oops</html>", ("", "<html>oops</html>")),
        (b'{"unexpected":1}', ("", "fallback")),
    ],
)
def test_error_details(body: bytes, expected: tuple[str, str]) -> None:
    """Error bodies in every documented variant give a code and a one-line message."""
    assert error_details(body, "fallback") == expected


# --- webhooks ---------------------------------------------------------------------------


def documented_signature(body: bytes, secret: str) -> str:
    """EasyPost's algorithm written out independently: NFKD secret, UTF-8, HMAC-SHA256, lowercase hex."""
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def test_signature_known_vector() -> None:
    """A fixed vector: the value our signer produces is the documented one, byte for byte."""
    body = b'{"id":"evt_1","description":"tracker.updated"}'
    expected = "hmac-sha256-hex=" + hmac.new(b"sekret", body, hashlib.sha256).hexdigest()
    assert easypost_push.signature(body, "sekret") == expected == documented_signature(body, "sekret")
    assert easypost_push.verify({"X-Hmac-Signature": expected}, body, "sekret")


def test_nfkd_secret() -> None:
    """A secret with a compatibility character (ﬁ ligature, composed é) is normalised before keying."""
    secret = "\ufb01n\u00e9-secret"  # NFKD: "fine" with a combining accent
    body = b'{"id":"evt_2"}'
    good = documented_signature(body, secret)
    raw_key = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    assert good != "hmac-sha256-hex=" + raw_key  # the normalisation matters for this secret
    assert easypost_push.verify({"X-Hmac-Signature": good}, body, secret)
    assert not easypost_push.verify({"X-Hmac-Signature": "hmac-sha256-hex=" + raw_key}, body, secret)


@pytest.mark.parametrize("name", ["X-Hmac-Signature", "x-hmac-signature", "X-HMAC-SIGNATURE"])
def test_header_looked_up_case_insensitively(name: str) -> None:
    """The header is found whatever its case, in a dict or a list of pairs."""
    body = b"{}"
    value = documented_signature(body, "s")
    assert easypost_push.verify({name: value}, body, "s")
    assert easypost_push.verify([("content-type", "application/json"), (name, value)], body, "s")


@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        ({}, "s"),  # no header
        ({"X-Hmac-Signature": "deadbeef"}, "s"),  # no prefix
        ({"X-Hmac-Signature": "hmac-sha256-hex=" + "0" * 64}, "s"),  # wrong digest
        ({"X-Hmac-Signature": "SIG"}, ""),  # no secret configured: nothing verifies
    ],
)
def test_forged_or_missing_signature_fails(headers: dict[str, str], secret: str) -> None:
    """Missing, unprefixed or wrong signatures, or an unset secret, never verify."""
    if headers.get("X-Hmac-Signature") == "SIG":
        headers = {"X-Hmac-Signature": documented_signature(b"{}", "")}
    assert not easypost_push.verify(headers, b"{}", secret)


def test_body_changed_after_signing_fails() -> None:
    """Re-serialising the body (even to equal JSON) breaks the signature: raw bytes only."""
    body = b'{"id": "evt_3", "description": "tracker.updated"}'
    value = documented_signature(body, "s")
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert not easypost_push.verify({"x-hmac-signature": value}, reserialised, "s")


def test_event_parsed_with_its_tracker() -> None:
    """A `tracker.updated` Event gives its id (the dedupe key) and the Tracker in `result`."""
    event = easypost_push.parse_event(json.dumps(_event()).encode())
    assert event.id == "evt_abc" and event.description == "tracker.updated"
    assert event.tracker is not None and event.tracker.info.status_code == "DE"


def test_other_events_carry_no_tracker() -> None:
    """Events that are not about trackers are read (for their id) but carry no tracking."""
    event = easypost_push.parse_event(json.dumps({**_event(), "description": "batch.updated"}).encode())
    assert event.tracker is None and event.id == "evt_abc"


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"description":"tracker.updated"}'])
def test_bad_event_bodies_raise(body: bytes) -> None:
    """A body that is not an Event with an id raises InvalidResponseError (the receiver answers 400)."""
    with pytest.raises(InvalidResponseError):
        easypost_push.parse_event(body)


def _tracker(**overrides: Any) -> dict[str, Any]:
    where = {"object": "TrackingLocation", "city": "CHARLESTON", "state": "SC", "country": "US", "zip": "29401"}
    tracker: dict[str, Any] = {
        "id": "trk_123",
        "object": "Tracker",
        "mode": "test",
        "tracking_code": "EZ4000000004",
        "status": "delivered",
        "status_detail": "arrived_at_destination",
        "carrier": "USPS",
        "est_delivery_date": "2026-01-04T00:00:00Z",
        "tracking_details": [
            {
                "object": "TrackingDetail",
                "message": "Pre-Shipment information received",
                "status": "pre_transit",
                "status_detail": "label_created",
                "datetime": "2026-01-01T10:00:00Z",
                "source": "USPS",
                "carrier_code": "",
                "tracking_location": {"object": "TrackingLocation", "city": None, "state": None, "zip": None},
            },
            {
                "object": "TrackingDetail",
                "message": "Departed USPS Facility",
                "status": "in_transit",
                "status_detail": "departed_facility",
                "datetime": "2026-01-02T09:00:00Z",
                "tracking_location": where,
            },
            {
                "object": "TrackingDetail",
                "message": "Delivered",
                "status": "delivered",
                "status_detail": "arrived_at_destination",
                "datetime": "2026-01-03T12:00:00-05:00",
                "tracking_location": where,
            },
        ],
    }
    tracker.update(overrides)
    return tracker


def _event() -> dict[str, Any]:
    return {
        "id": "evt_abc",
        "object": "Event",
        "mode": "test",
        "description": "tracker.updated",
        "previous_attributes": {"status": "in_transit"},
        "result": _tracker(),
        "status": "pending",
        "pending_urls": ["https://example.test/hooks/easypost"],
        "completed_urls": [],
        "user_id": "user_1",
        "created_at": "2026-01-03T17:00:01Z",
        "updated_at": "2026-01-03T17:00:01Z",
    }
