"""Adaptive cadence: when a shipment is next due, as a table of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from row_samples import shipment

from shiptrackd.config import CadenceConfig
from shiptrackd.sync import cadence

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CAD = CadenceConfig()
H = 3600


@pytest.mark.parametrize(
    ("status", "previous", "previous_reason", "age_h", "expected_wait_s", "reason_start"),
    [
        ("IT", None, "new", 1, CAD.in_transit, "in transit"),
        ("AC", "NY", "", 1, CAD.accepted, "accepted"),
        ("AT", "IT", "", 30, CAD.delivery_attempt, "delivery attempt"),
        ("EX", "IT", "", 30, CAD.exception, "exception"),
        ("SP", "IT", "", 30, CAD.pickup, "at pickup point"),
        ("DE", "IT", "in transit: every 2h", 50, CAD.delivered_confirm, "delivered: one confirming"),
        ("NY", None, "new", 0, CAD.not_yet_in_system, "not yet in the carrier"),
        ("NY", "NY", "", 5, max(CAD.not_yet_in_system, 5 * H * cadence.WAITING_GROWTH), "not yet in the carrier"),
        ("NY", "NY", "", 200, CAD.not_yet_in_system_max, "not yet in the carrier"),
        ("UN", None, "", 30, max(CAD.unknown, 30 * H * cadence.WAITING_GROWTH), "status unknown"),
    ],
)
def test_after_success_schedules_by_status(
    status: str, previous: str | None, previous_reason: str, age_h: float, expected_wait_s: float, reason_start: str
) -> None:
    """Each status gets its own re-check interval; waiting tiers grow with the shipment's age."""
    nxt = cadence.after_success(CAD, status, previous, previous_reason, NOW - timedelta(hours=age_h), NOW)
    assert nxt.at == NOW + timedelta(seconds=expected_wait_s)
    assert nxt.reason.startswith(reason_start)


def test_out_for_delivery_is_checked_often() -> None:
    """In transit with detail OUT_FOR_DELIVERY is checked on the short out_for_delivery cadence."""
    nxt = cadence.after_success(CAD, "IT", "IT", "", NOW - timedelta(days=2), NOW, "OUT_FOR_DELIVERY")
    assert nxt.at == NOW + timedelta(seconds=CAD.out_for_delivery) and nxt.reason.startswith("out for delivery")
    assert CAD.out_for_delivery < CAD.in_transit


def test_delivered_is_confirmed_once_then_terminal() -> None:
    """A delivered parcel is checked once more, then never again."""
    first = cadence.after_success(CAD, "DE", "IT", "in transit: every 2h", NOW - timedelta(days=3), NOW)
    second = cadence.after_success(CAD, "DE", "DE", first.reason, NOW - timedelta(days=3), NOW)
    assert first.at is not None and second.at is None
    assert "terminal" in second.reason


def test_not_yet_in_system_expires() -> None:
    """A number the carrier never learns about stops being polled after expire_after."""
    nxt = cadence.after_success(CAD, "NY", "NY", "", NOW - timedelta(seconds=CAD.expire_after + 1), NOW)
    assert nxt.at is None and nxt.reason.startswith("expired")


@pytest.mark.parametrize(("failures", "wait_s"), [(1, 900), (2, 1800), (3, 3600), (10, CAD.failure_backoff_max)])
def test_failures_back_off_exponentially_with_a_cap(failures: int, wait_s: float) -> None:
    """Each failure in a row doubles the wait, up to failure_backoff_max."""
    nxt = cadence.after_failure(CAD, "transient", failures, NOW - timedelta(days=1), NOW)
    assert nxt.at == NOW + timedelta(seconds=wait_s)
    assert f"failed {failures}x" in nxt.reason


def test_not_found_backs_off_like_not_yet_in_system_and_expires() -> None:
    """A 404 is treated as 'not in the system yet' and expires the same way."""
    young = cadence.after_failure(CAD, "not_found", 1, NOW - timedelta(hours=20), NOW)
    old = cadence.after_failure(CAD, "not_found", 9, NOW - timedelta(days=30), NOW)
    assert young.at == NOW + timedelta(hours=20 * cadence.WAITING_GROWTH)
    assert old.at is None and old.reason.startswith("expired")


def test_calls_per_hour_forecast() -> None:
    """The forecast sums each active shipment's steady-state calls an hour."""
    mix = {"IT": 100, "AC": 60, "DE": 10, "none": 5}
    expected = 100 * H / CAD.in_transit + 60 * H / CAD.accepted
    assert cadence.calls_per_hour(CAD, mix) == pytest.approx(expected)


def test_explain_names_terminal_and_due_states() -> None:
    """`why` says a terminal shipment is not scheduled and a due one is due now."""
    terminal = shipment(id="ship_1", active=False, schedule_reason="delivered (confirmed): terminal")
    due = shipment(
        id="ship_2",
        active=True,
        next_sync_at=datetime(2026, 3, 2, 11, 0, tzinfo=UTC),
        schedule_reason="in transit: every 2h",
        consecutive_failures=0,
    )
    assert cadence.explain(terminal, NOW, None)["state"] == "terminal"
    explained = cadence.explain(due, NOW, NOW + timedelta(minutes=5))
    assert explained["state"] == "due"
    assert any("Retry-After" in line for line in explained["explanation"])
