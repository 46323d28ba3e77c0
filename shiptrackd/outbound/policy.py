"""
What one delivery attempt comes to, as the Standard Webhooks specification asks of a sender. Pure.

2xx is delivered; 3xx is a failure (redirects are never followed); 410 means the endpoint is gone
(disable it, keep the row for when it is enabled again); 429 and 503 wait at least their
Retry-After; anything else, a timeout or a reset, waits the next delay of the endpoint's retry
schedule, with up to 10% jitter so a recovering receiver is not hit by every retry at once.
After the schedule's last attempt the row is dead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..store import Settlement
from ..units import retry_after_s

THROTTLE_STATUSES = (429, 503)
JITTER = 0.1


@dataclass(frozen=True)
class Attempt:
    """What the dispatcher saw: an HTTP status, or an error (timeout, reset, refused)."""

    outbox_id: int
    endpoint: str
    attempt: int  # this attempt's number, from 1
    at: datetime
    latency_ms: float
    http_status: int | None = None
    error: str = ""
    retry_after: str | None = None  # the header as sent


def parse_retry_after(value: str | None, now: datetime, max_s: float) -> float | None:
    """Retry-After (seconds, or an HTTP-date) as seconds from *now*, clamped to [0, max_s]; None if absent or bad."""
    seconds = retry_after_s(value, now)
    return None if seconds is None else min(max(seconds, 0.0), max_s)


def settle(
    attempt: Attempt,
    schedule: tuple[float, ...],
    *,
    max_retry_after_s: float,
    rng: random.Random | None = None,
) -> Settlement:
    """The row's fate after *attempt*, under the endpoint's retry *schedule* (schedule[n] follows the n-th failure)."""
    status = attempt.http_status
    error = "" if status is not None and 200 <= status < 300 else attempt.error or _status_error(status)
    next_at: datetime | None
    if not error:
        outcome, state, next_at = "delivered", "delivered", None
    elif status == 410:
        # The endpoint is gone: it is disabled, and the row waits for it to be enabled again.
        outcome, state, next_at = "gone", "pending", attempt.at
    elif attempt.attempt >= len(schedule):
        outcome, state, next_at = ("throttled" if status in THROTTLE_STATUSES else "failed"), "dead", None
    else:
        delay = schedule[attempt.attempt]
        delay += delay * JITTER * (rng or random).random()
        outcome = "failed"
        if status in THROTTLE_STATUSES:
            outcome = "throttled"
            wait = parse_retry_after(attempt.retry_after, attempt.at, max_retry_after_s)
            if wait is not None:
                delay = max(delay, wait)
        state, next_at = "pending", attempt.at + timedelta(seconds=delay)
    return Settlement(
        outbox_id=attempt.outbox_id,
        endpoint=attempt.endpoint,
        attempt=attempt.attempt,
        at=attempt.at,
        outcome=outcome,
        state=state,
        next_attempt_at=next_at,
        http_status=status,
        latency_ms=attempt.latency_ms,
        error=error,
    )


def _status_error(status: int | None) -> str:
    if status is None:
        return "no answer"
    if 300 <= status < 400:
        return f"HTTP {status}: a redirect (not followed)"
    return f"HTTP {status}"
