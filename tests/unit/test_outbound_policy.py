"""The delivery policy as a table: what each answer does to a row (Standard Webhooks' sender rules)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.outbound.policy import Attempt, parse_retry_after, settle

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SCHEDULE = (0.0, 5.0, 300.0)


def _attempt(n: int = 1, status: int | None = None, error: str = "", retry_after: str | None = None) -> Attempt:
    return Attempt(7, "shop", n, NOW, 12.5, status, error, retry_after)


@pytest.mark.parametrize(
    ("attempt", "outcome", "state", "wait_s"),
    [
        (_attempt(1, 200), "delivered", "delivered", None),
        (_attempt(1, 204), "delivered", "delivered", None),
        (_attempt(1, 500), "failed", "pending", 5.0),
        (_attempt(2, 500), "failed", "pending", 300.0),
        (_attempt(3, 500), "failed", "dead", None),
        (_attempt(1, 301), "failed", "pending", 5.0),
        (_attempt(1, None, "ReadError: reset"), "failed", "pending", 5.0),
        (_attempt(1, 410), "gone", "pending", 0.0),
        (_attempt(1, 429, retry_after="120"), "throttled", "pending", 120.0),
        (_attempt(1, 503, retry_after="2"), "throttled", "pending", 5.0),  # the schedule's wait is longer
        (_attempt(2, 429, retry_after="999999"), "throttled", "pending", 3600.0),  # clamped
        (_attempt(1, 429), "throttled", "pending", 5.0),
    ],
)
def test_each_answer_settles_the_row(attempt: Attempt, outcome: str, state: str, wait_s: float | None) -> None:
    s = settle(attempt, SCHEDULE, max_retry_after_s=3600, rng=random.Random(0))
    assert (s.outcome, s.state, s.attempt) == (outcome, state, attempt.attempt)
    if wait_s is None:
        assert s.next_attempt_at is None
    else:
        assert s.next_attempt_at is not None
        waited = (s.next_attempt_at - NOW).total_seconds()
        assert wait_s <= waited <= wait_s * 1.1 + 1e-9  # at most 10% jitter
    assert (s.error == "") == (outcome == "delivered")


def test_a_redirect_is_named_in_the_error() -> None:
    assert "redirect" in settle(_attempt(1, 302), SCHEDULE, max_retry_after_s=60).error


def test_retry_after_as_an_http_date() -> None:
    later = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, NOW, 3600) == 90
    assert parse_retry_after("soon", NOW, 3600) is None
    assert parse_retry_after("-5", NOW, 3600) == 0
