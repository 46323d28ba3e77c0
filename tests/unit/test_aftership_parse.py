"""
AfterShip (2026-07): tags and subtags as a table, tracking parsing with checkpoint `hash` dedupe, and
`aftership-hmac-sha256` checked against vectors computed here with hmac + hashlib + base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shiptrackd.errors import InvalidResponseError
from shiptrackd.providers import aftership_push
from shiptrackd.providers.aftership_parse import (
    TAG_MAP,
    carrier_code_for,
    error_details,
    map_tag,
    parse_tracking,
    parse_tracking_body,
    slug_for,
)
from shiptrackd.wire.names import STATUS_CODES


@pytest.mark.parametrize(
    ("tag", "subtag", "message", "code", "detail"),
    [
        ("Pending", "Pending_001", "No information yet", "UN", ""),
        ("InfoReceived", "InfoReceived_001", "Info received", "NY", "SHIPMENT_CREATED"),
        ("InTransit", "InTransit_001", "In transit", "IT", "IN_TRANSIT"),
        ("InTransit", "InTransit_002", "Acceptance scan", "AC", "PICKED_UP"),
        ("InTransit", "InTransit_007", "Departure scan", "IT", "HUB_SCAN_OUT"),
        ("OutForDelivery", "OutForDelivery_001", "Out for delivery", "IT", "OUT_FOR_DELIVERY"),
        ("AttemptFail", "AttemptFail_001", "Failed attempt", "AT", "ATTEMPTED_DELIVERY"),
        ("Delivered", "Delivered_001", "Delivered", "DE", "DELIVERED"),
        ("Delivered", "Delivered_002", "Picked up by the customer", "DE", "PARCEL_COLLECTED_FROM_PICKUP_POINT"),
        ("AvailableForPickup", "AvailableForPickup_001", "Available for pickup", "SP", "DELIVERED_TO_PICKUP_POINT"),
        ("Exception", "Exception_001", "Exception", "EX", "UNSPECIFIED_EXCEPTION"),
        ("Exception", "Exception_003", "Customer refused delivery", "EX", "REFUSED_BY_CUSTOMER"),
        ("Exception", "Exception_011", "Returned to sender", "EX", "RETURN_TO_SENDER"),
        ("Exception", "Exception_013", "Shipment lost", "EX", "PARCEL_LOST"),
        ("Expired", "Expired_001", "No updates for 30 days", "EX", "TRACKING_EXPIRED"),
        ("InTransit", "Exception_003", "mismatched subtag", "IT", "IN_TRANSIT"),  # a subtag of another tag is ignored
    ],
)
def test_tag_map(tag: str, subtag: str, message: str, code: str, detail: str) -> None:
    """Each tag (refined by its subtag or subtag message) lands on one of our codes and a detail code."""
    mapped = map_tag(tag, subtag, message)
    assert (mapped.status_code, mapped.detail_code, mapped.known) == (code, detail, True)


def test_tag_map_covers_the_documented_tags() -> None:
    """The nine documented tags are all mapped, each to a real status code."""
    assert set(TAG_MAP) == {
        "Pending",
        "InfoReceived",
        "InTransit",
        "OutForDelivery",
        "AttemptFail",
        "Delivered",
        "AvailableForPickup",
        "Exception",
        "Expired",
    }
    assert {code for code, _ in TAG_MAP.values()} <= set(STATUS_CODES)


def test_unknown_tag_is_unknown_and_flagged() -> None:
    """A tag AfterShip adds later is stored as UN with its raw text and flagged for counting."""
    tracking = parse_tracking(_tracking(tag="Teleported", subtag="Teleported_001", subtag_message="Beamed"))
    assert tracking.known_status is False
    assert (tracking.info.status_code, tracking.info.status_description) == ("UN", "Teleported")
    assert tracking.info.carrier_status_description == "Teleported_001 Beamed"


def test_tracking_parsed_from_the_envelope() -> None:
    """`{meta, data}` unwraps to a tracking: id, slug as our carrier code, status and oldest-first checkpoints."""
    body = json.dumps({"meta": {"code": 200, "message": "OK", "type": "OK"}, "data": _tracking()}).encode()
    tracking = parse_tracking_body(body)
    info = tracking.info
    assert (tracking.id, tracking.slug) == ("as_1", "dhl")
    assert (info.tracking_number, info.carrier_code, info.status_code) == ("AS100", "dhl_express", "DE")
    assert [e.event_code for e in info.events] == ["InTransit_002", "OutForDelivery_001", "Delivered_001"]
    assert info.actual_delivery_at == datetime(2026, 1, 3, 12, 0, tzinfo=UTC)
    assert info.estimated_delivery_at == datetime(2026, 1, 4, tzinfo=UTC)
    assert info.events[0].occurred_at == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)  # +08:00 converted


def test_checkpoint_hash_is_the_dedup_key() -> None:
    """A checkpoint keeps its `hash` as dedup key: sent twice it is kept once, and a corrected text keeps its key."""
    data = _tracking()
    data["checkpoints"].append(dict(data["checkpoints"][0]))  # the same checkpoint again
    info = parse_tracking(data).info
    assert len(info.events) == 3
    assert info.events[0].dedup_key == "id|h-accept"
    fixed = _tracking()
    fixed["checkpoints"][0]["message"] = "Acceptance scan (corrected)"
    assert parse_tracking(fixed).info.events[0].dedup_key == info.events[0].dedup_key


def test_checkpoint_without_hash_falls_back_to_its_fields() -> None:
    """Before 2026-07 there is no hash: the key is built from time, code, status and text as for ShipEngine."""
    data = _tracking()
    for checkpoint in data["checkpoints"]:
        del checkpoint["hash"]
    events = parse_tracking(data).info.events
    assert events[0].dedup_key.startswith("2026-01-01T01:00:00+00:00|InTransit_002|AC|")


_RAW = {"id": "as_1", "tracking_number": "AS100", "slug": "dhl", "tag": "Pending"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[]", "body"),
        (b'{"meta":{"code":200},"data":[]}', "data"),
        (b'{"data":{}}', "meta"),
        (json.dumps({"meta": {"code": 200}, "data": {**_RAW, "checkpoints": {}}}).encode(), "checkpoints"),
    ],
)
def test_malformed_answers_name_the_field(body: bytes, status: str) -> None:
    """A body of the wrong shape raises InvalidResponseError naming what is wrong."""
    with pytest.raises(InvalidResponseError, match=status):
        parse_tracking_body(body)


def test_slugs_round_trip() -> None:
    """Our carrier codes go out as AfterShip slugs and come back as ours."""
    for code in ("usps", "ups", "fedex", "dhl_express", "canada_post"):
        assert carrier_code_for(slug_for(code)) == code


def test_error_envelope() -> None:
    """An error envelope gives meta.code, meta.type and the message; garbage gives the fallback."""
    body = b'{"meta":{"code":4003,"type":"BadRequest","message":"Tracking already exists."},"data":{}}'
    assert error_details(body, "x") == (4003, "BadRequest", "Tracking already exists.")
    assert error_details(b"<html/>", "x") == (None, "", "<html/>")


# --- webhooks ---------------------------------------------------------------------------


def documented_signature(body: bytes, secret: str) -> str:
    """AfterShip's algorithm written out independently: base64(HMAC-SHA256(secret, raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_signature_known_vector() -> None:
    """A fixed vector from the documented algorithm verifies, and our signer produces the same bytes."""
    body = json.dumps(_webhook()).encode()
    value = documented_signature(body, "as-secret")
    assert aftership_push.signature(body, "as-secret") == value
    assert aftership_push.verify({"aftership-hmac-sha256": value}, body, "as-secret")
    assert aftership_push.verify({"Aftership-Hmac-Sha256": value}, body, "as-secret")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"aftership-hmac-sha256": "not base64!"},
        {"aftership-hmac-sha256": base64.b64encode(b"\0" * 32).decode()},
        {"as-signature-hmac-sha256": "<right value under the wrong header>"},
        {"aftership-hmac-sha256": hashlib.sha256(b"{}").hexdigest()},  # hex, not base64
    ],
)
def test_forged_or_missing_signature_fails(headers: dict[str, str]) -> None:
    """Missing, garbled, wrong, hex-encoded, or the Returns product's header: none verify."""
    body = b"{}"
    if "as-signature-hmac-sha256" in headers:
        headers = {"as-signature-hmac-sha256": documented_signature(body, "s")}
    assert not aftership_push.verify(headers, body, "s")
    assert not aftership_push.verify({"aftership-hmac-sha256": documented_signature(body, "")}, body, "")


def test_webhook_parsed() -> None:
    """A `tracking_update` webhook gives event_id (the dedupe key), ts and the tracking in `msg`."""
    event = aftership_push.parse_event(json.dumps(_webhook()).encode())
    assert (event.id, event.event, event.ts) == ("6f1a2b3c-0000-4000-8000-000000000001", "tracking_update", 1767441600)
    assert event.tracking is not None and event.tracking.info.status_code == "DE"


@pytest.mark.parametrize(
    "patch",
    [{"event_id": ""}, {"ts": "yesterday"}, {"msg": []}],
)
def test_bad_webhooks_raise(patch: dict[str, Any]) -> None:
    """A webhook without an event_id, with a non-integer ts or a non-object msg is rejected."""
    with pytest.raises(InvalidResponseError):
        aftership_push.parse_event(json.dumps({**_webhook(), **patch}).encode())


def _tracking(**overrides: Any) -> dict[str, Any]:
    def checkpoint(at: str, tag: str, subtag: str, message: str, digest: str) -> dict[str, Any]:
        return {
            "slug": "dhl",
            "checkpoint_time": at,
            "city": "Hong Kong",
            "country_region": "HKG",
            "message": message,
            "tag": tag,
            "subtag": subtag,
            "subtag_message": message,
            "raw_tag": "RT",
            "hash": digest,
        }

    data: dict[str, Any] = {
        "id": "as_1",
        "tracking_number": "AS100",
        "slug": "dhl",
        "active": False,
        "tag": "Delivered",
        "subtag": "Delivered_001",
        "subtag_message": "Delivered",
        "shipment_pickup_date": "2026-01-01T01:00:00+00:00",
        "shipment_delivery_date": "2026-01-03T12:00:00+00:00",
        "courier_estimated_delivery_date": {"estimated_delivery_date": "2026-01-04"},
        "checkpoints": [
            checkpoint("2026-01-03T20:00:00+08:00", "Delivered", "Delivered_001", "Delivered", "h-done"),
            checkpoint("2026-01-01T09:00:00+08:00", "InTransit", "InTransit_002", "Acceptance scan", "h-accept"),
            checkpoint("2026-01-03T08:00:00+08:00", "OutForDelivery", "OutForDelivery_001", "Out", "h-out"),
        ],
    }
    data.update(overrides)
    return data


def _webhook() -> dict[str, Any]:
    return {
        "ts": 1767441600,
        "event": "tracking_update",
        "event_id": "6f1a2b3c-0000-4000-8000-000000000001",
        "is_tracking_first_tag": True,
        "msg": _tracking(),
    }
