"""Push's pure parts as tables: timestamps and their window, the replay cache, silence, cadence regimes, JWKS."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from row_samples import shipment as row

from shiptrackd.config import CadenceConfig
from shiptrackd.health.rules import judge_webhooks
from shiptrackd.push.jwks import jwk_of, parse_jwks
from shiptrackd.push.state import silence_level
from shiptrackd.push.verify import ReplayCache, in_window, parse_timestamp, verify_rsa_sha256
from shiptrackd.sandbox.push import process_key
from shiptrackd.store.rows import Shipment
from shiptrackd.sync import cadence

NOW = datetime(2026, 8, 7, 16, 10, 1, tzinfo=UTC)
SUBSCRIBED = NOW - timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-08-07T16:10:01Z", NOW),
        ("2026-08-07T16:10:01.000Z", NOW),
        ("2026-08-07T18:10:01+02:00", NOW),
        ("2026-08-07T16:10:01", NOW),  # no zone: read as UTC
        (str(int(NOW.timestamp())), NOW),  # epoch seconds, as some senders do
    ],
)
def test_push_timestamps_are_iso_8601_or_epoch_seconds(text: str, expected: datetime) -> None:
    """Every spelling seen in ShipEngine verifiers parses to the same instant."""
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "1" * 50])
def test_garbage_timestamps_are_refused(text: str) -> None:
    """Anything else is a ValueError (answered 400 by the receiver)."""
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("offset_s", "inside"), [(0, True), (299, True), (-299, True), (300, True), (301, False), (-301, False)]
)
def test_the_window_is_plus_minus_tolerance(offset_s: int, inside: bool) -> None:
    """5 minutes either way: ShipEngine warns its timestamps may be slightly in the future."""
    assert in_window(NOW + timedelta(seconds=offset_s), NOW, 300) is inside


def test_replay_cache_forgets_after_its_ttl_and_stays_bounded() -> None:
    """A signature is a replay within the TTL, not after it; the cache never holds more than its bound."""
    cache = ReplayCache(ttl_s=600, max_entries=3)
    cache.add("a", NOW)
    assert cache.seen("a", NOW + timedelta(seconds=599))
    assert not cache.seen("a", NOW + timedelta(seconds=601))
    for key in "bcde":
        cache.add(key, NOW)
    assert len(cache) == 3 and not cache.seen("b", NOW)


def test_rsa_sha256_over_timestamp_dot_body_with_a_jwks_key() -> None:
    """The documented algorithm, computed here: PKCS#1 v1.5 SHA-256 over `<ts>.<body>`, base64; a changed byte fails."""
    key = process_key("published")
    body = b'{"resource_type":"API_TRACK"}'
    message = b"2026-08-07T16:10:01Z." + body
    signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    public = parse_jwks({"keys": [jwk_of(key.public_key(), "k1"), {"kty": "EC", "kid": "ec1"}]})
    assert list(public) == ["k1"]  # the EC key is skipped
    assert verify_rsa_sha256(public["k1"], message, signature)
    assert not verify_rsa_sha256(public["k1"], message.replace(b"API", b"APX"), signature)
    assert not verify_rsa_sha256(public["k1"], message, "not base64!")
    assert not verify_rsa_sha256(process_key("rogue").public_key(), message, signature)


@pytest.mark.parametrize(
    ("last_push_h", "subscribed", "level"),
    [(None, 0, "ok"), (1, 5, "ok"), (6, 5, "warning"), (23, 5, "warning"), (24, 5, "critical"), (30, 0, "ok")],
)
def test_silence_is_judged_only_while_shipments_are_subscribed(
    last_push_h: float | None, subscribed: int, level: str
) -> None:
    """No subscription, nothing expected; otherwise the quiet time against silence_after and the critical age."""
    started = NOW - timedelta(hours=48)
    last = None if last_push_h is None else NOW - timedelta(hours=last_push_h)
    assert silence_level(last, started, subscribed, NOW, warning_s=6 * 3600, critical_s=24 * 3600) == level
    check = judge_webhooks(
        subscribed=subscribed,
        last_push_at=last,
        listening_since=started,
        now=NOW,
        warning_s=6 * 3600,
        critical_s=24 * 3600,
        last_hour={"accepted": 2, "bad_signature": 3},
    )
    assert check.level == level and "3 refused in the last hour" in check.message


def test_a_young_listener_gets_silence_after_before_it_warns() -> None:
    """No push yet is not silence until the listener has been up for silence_after."""
    assert silence_level(None, NOW - timedelta(hours=1), 5, NOW, warning_s=6 * 3600, critical_s=86400) == "ok"


CAD = CadenceConfig()
CREATED = NOW - timedelta(hours=10)


@pytest.mark.parametrize(
    ("status", "previous", "reason", "subscribed", "silent", "expected_reason", "missed"),
    [
        ("IT", "IT", "in transit: every 4h", False, False, "in transit: every 4h", None),
        ("IT", "IT", "push: safety poll every 1d", True, False, "push: safety poll every 1d", False),
        ("IT", "AC", "push: safety poll every 1d", True, False, "push overdue: in transit: every 4h", True),
        ("IT", "IT", "push overdue: in transit: every 4h", True, False, "push overdue: in transit: every 4h", True),
        ("IT", "IT", "push: safety poll every 1d", True, True, "push channel silent: in transit: every 4h", None),
        ("IT", None, "new", True, False, "push: safety poll every 1d", False),  # the first poll is no miss
        ("DE", "IT", "push: safety poll every 1d", True, False, "delivered: one confirming check", None),
        ("NY", None, "new", True, False, "push: safety poll every 1d", False),  # the push says when it is scanned
        ("EX", "IT", "push: safety poll every 1d", True, False, "push overdue: exception: every 4h", True),
    ],
)
def test_after_poll_by_push_regime(
    status: str,
    previous: str | None,
    reason: str,
    subscribed: bool,
    silent: bool,
    expected_reason: str,
    missed: bool | None,
) -> None:
    """Poll-only, safety net, push overdue (a poll found a change), silent channel: each regime's schedule."""
    nxt, flag = cadence.after_poll(
        CAD, status, previous, reason, CREATED, NOW, subscribed=subscribed, channel_silent=silent
    )
    assert (nxt.reason, flag) == (expected_reason, missed)


def test_after_push_waits_push_safety_except_for_delivery_and_expiry() -> None:
    """A push is the news: anything but DE waits push_safety (EX too: it is subscribed again); DE keeps its
    confirming check; a parcel never scanned still expires."""
    for status in ("IT", "AC", "EX", "NY", "SP"):
        assert cadence.after_push(CAD, status, "AC", "new", CREATED, NOW).at == NOW + timedelta(seconds=CAD.push_safety)
    assert cadence.after_push(CAD, "DE", "IT", "", CREATED, NOW).reason == cadence.CONFIRM_REASON
    old = NOW - timedelta(seconds=CAD.expire_after)
    assert cadence.after_push(CAD, "NY", "NY", "", old, NOW).at is None


@pytest.mark.parametrize(
    ("shipment", "enabled", "start"),
    [
        (row(active=True, schedule_reason="in transit: every 4h"), False, "poll only"),
        (row(active=True, schedule_reason="new"), True, "poll (not subscribed"),
        (row(active=True, subscribed_at=SUBSCRIBED, schedule_reason="push: safety poll every 1d"), True, "push:"),
        (row(active=True, subscribed_at=SUBSCRIBED, push_missed=True, schedule_reason="x"), True, "push overdue"),
        (row(active=True, subscribed_at=SUBSCRIBED, schedule_reason="push channel silent: x"), True, "poll: the push"),
    ],
)
def test_why_names_the_regime(shipment: Shipment, enabled: bool, start: str) -> None:
    """`why` says which regime a shipment is in."""
    assert cadence.regime(shipment, enabled).startswith(start)
