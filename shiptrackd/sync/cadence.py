"""
Adaptive cadence: when a shipment is next due, and why, as pure functions of its
state, the fetch outcome and `now`.

Parcels in motion are checked often; ones that rarely change less; ones not yet
in the carrier's system back off as they age and expire; delivered ones get one
confirming check a day later, then none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..config import CadenceConfig
from ..units import format_rfc3339
from ..wire.names import STATUS_NAMES

if TYPE_CHECKING:  # the row type only: this module stays pure (no store, no database driver)
    from ..store.rows import Shipment

# Status code -> (CadenceConfig field, human name of the tier).
TIERS: dict[str, tuple[str, str]] = {
    code: (field, STATUS_NAMES[code])
    for code, field in (
        ("AC", "accepted"),
        ("IT", "in_transit"),
        ("AT", "delivery_attempt"),
        ("EX", "exception"),
        ("SP", "pickup"),
    )
}
CONFIRM_REASON = "delivered: one confirming check"
# In transit but about to change: the detail codes after which delivery (or an attempt) comes within hours.
NEAR_DELIVERY = frozenset({"OUT_FOR_DELIVERY"})
# A waiting shipment is re-checked after this fraction of its age (within [base, max]): a label scanned
# within hours is noticed quickly, one that lingers for days costs a few calls a day.
WAITING_GROWTH = 0.15


@dataclass(frozen=True)
class Next:
    """The decision: due again at `at` (None = terminal, stop polling) because of `reason`."""

    at: datetime | None
    reason: str


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 86400 == 0 and seconds >= 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _waiting(cadence: CadenceConfig, base_s: float, created_at: datetime, now: datetime, what: str) -> Next:
    """A growing back-off: a fraction of the shipment's age, within [base, max]; expire past expire_after."""
    age_s = (now - created_at).total_seconds()
    if age_s >= cadence.expire_after:
        return Next(None, f"expired: {what} after {_fmt(cadence.expire_after)}")
    wait_s = min(max(base_s, age_s * WAITING_GROWTH), cadence.not_yet_in_system_max)
    return Next(now + timedelta(seconds=wait_s), f"{what}: backing off, every {_fmt(wait_s)}")


def after_success(
    cadence: CadenceConfig,
    status: str,
    previous_status: str | None,
    previous_reason: str,
    created_at: datetime,
    now: datetime,
    detail: str = "",
) -> Next:
    """Schedule after a successful fetch that returned *status* (and its status_detail_code *detail*)."""
    if status == "IT" and detail in NEAR_DELIVERY:
        interval = cadence.out_for_delivery
        return Next(now + timedelta(seconds=interval), f"out for delivery: every {_fmt(interval)}")
    if status == "DE":
        if previous_status == "DE" and previous_reason == CONFIRM_REASON:
            return Next(None, "delivered (confirmed): terminal")
        return Next(now + timedelta(seconds=cadence.delivered_confirm), CONFIRM_REASON)
    if status in TIERS:
        field, name = TIERS[status]
        interval = getattr(cadence, field)
        return Next(now + timedelta(seconds=interval), f"{name}: every {_fmt(interval)}")
    base = cadence.not_yet_in_system if status == "NY" else cadence.unknown
    return _waiting(
        cadence, base, created_at, now, "not yet in the carrier's system" if status == "NY" else "status unknown"
    )


PUSH_REASON = "push: safety poll every"
MISSED_REASON = "push overdue"
SILENT_REASON = "push channel silent"


def after_push(
    cadence: CadenceConfig,
    status: str,
    previous_status: str | None,
    previous_reason: str,
    created_at: datetime,
    now: datetime,
    detail: str = "",
) -> Next:
    """
    Schedule after a verified push, or a poll of a subscribed shipment: pushes carry the news, so
    only a safety poll is due, `push_safety` from now.

    A delivery keeps the poll's one confirming check; a shipment still not in the carrier's system
    still expires after `expire_after`. An exception waits like the rest: ShipEngine stops pushing
    after one, and the push loop subscribes the shipment again (bench/bench_cadence.py: 19 calls
    per delivered parcel polling exceptions and waiting parcels at their normal cadence, 4 this way).
    """
    if status == "DE":
        return after_success(cadence, status, previous_status, previous_reason, created_at, now, detail)
    if status not in TIERS and (now - created_at).total_seconds() >= cadence.expire_after:
        return after_success(cadence, status, previous_status, previous_reason, created_at, now, detail)
    return Next(now + timedelta(seconds=cadence.push_safety), f"{PUSH_REASON} {_fmt(cadence.push_safety)}")


def after_poll(
    cadence: CadenceConfig,
    status: str,
    previous_status: str | None,
    previous_reason: str,
    created_at: datetime,
    now: datetime,
    detail: str = "",
    *,
    subscribed: bool,
    channel_silent: bool,
) -> tuple[Next, bool | None]:
    """
    Schedule after a poll, by push regime; returns the decision and the new `push_missed` flag (None: unchanged).

    1. Not subscribed: the normal cadence (`after_success`).
    2. Subscribed, but no push at all arrives lately (the channel is silent): the normal cadence.
    3. Subscribed, and this poll found a change no push reported: the push is overdue, so the
       normal cadence until the next push arrives (the flag is set).
    4. Subscribed, nothing new: pushes carry the news, the next poll is only the safety net.
    """
    normal = after_success(cadence, status, previous_status, previous_reason, created_at, now, detail)
    if not subscribed or normal.at is None or status == "DE":
        return normal, None
    if channel_silent:
        return Next(normal.at, f"{SILENT_REASON}: {normal.reason}"), None
    missed = previous_status is not None and previous_status != status
    if missed or previous_reason.startswith(MISSED_REASON):
        return Next(normal.at, f"{MISSED_REASON}: {normal.reason}"), True
    pushed = after_push(cadence, status, previous_status, previous_reason, created_at, now, detail)
    return pushed, False


def regime(shipment: Shipment, push_enabled: bool) -> str:
    """Which regime a shipment is in, in words: the first line of `why` for push."""
    reason = shipment.schedule_reason
    if not push_enabled:
        return "poll only (webhooks are off)"
    if shipment.subscribed_at is None:
        return "poll (not subscribed to pushes)" if shipment.active else "none (not tracked)"
    if reason.startswith(SILENT_REASON):
        return "poll: the push channel is silent, polled at its normal cadence until pushes return"
    if shipment.push_missed or reason.startswith(MISSED_REASON):
        return "push overdue: a poll found a change no push reported; normal cadence until the next push"
    if reason.startswith(PUSH_REASON):
        return "push: pushes carry the news, polled only as a safety net"
    return "subscribed, polled at its normal cadence for now (new, not yet in the system, or about to end)"


def after_failure(cadence: CadenceConfig, kind: str, failures: int, created_at: datetime, now: datetime) -> Next:
    """Schedule after a failed fetch; *failures* counts this one."""
    if kind == "not_found":
        return _waiting(cadence, cadence.not_yet_in_system, created_at, now, "not found by the carrier")
    wait_s = min(cadence.failure_backoff * 2 ** max(failures - 1, 0), cadence.failure_backoff_max)
    return Next(now + timedelta(seconds=wait_s), f"failed {failures}x in a row ({kind}): backing off {_fmt(wait_s)}")


def interval_for(cadence: CadenceConfig, status: str | None) -> float:
    """The steady-state re-check interval of a status, for forecasts (waiting tiers use their maximum)."""
    if status in TIERS:
        return float(getattr(cadence, TIERS[status][0]))
    if status == "DE":
        return 0.0  # at most one more call, then terminal
    if status is None:
        return 0.0  # new: one call, then it has a tier
    return float(cadence.not_yet_in_system_max)


def calls_per_hour(cadence: CadenceConfig, active_by_status: dict[str, int]) -> float:
    """How many API calls an hour the current mix of active shipments needs at steady state."""
    total = 0.0
    for status, count in active_by_status.items():
        interval = interval_for(cadence, None if status == "none" else status)
        if interval > 0:
            total += count * 3600.0 / interval
    return total


def explain(shipment: Shipment, now: datetime, paused_until: datetime | None) -> dict[str, Any]:
    """Why a shipment will (or won't) be checked when it will: the answer to `shiptrackctl why`."""
    next_at = shipment.next_sync_at
    reason = shipment.schedule_reason
    lines: list[str] = []
    if not shipment.active:
        state = "expired" if reason.startswith("expired") else "terminal"
        lines.append(f"not scheduled: {reason or state}")
        lines.append("`shiptrackctl shipments retrack ID` puts it back into the schedule")
        return {"id": shipment.id, "state": state, "next_sync_at": None, "reason": reason, "explanation": lines}
    due_at = next_at or now
    state = "due" if due_at <= now else "scheduled"
    lines.append(f"{'due now' if state == 'due' else 'next check at ' + due_at.isoformat()} ({reason or 'new'})")
    if shipment.consecutive_failures:
        lines.append(
            f"{shipment.consecutive_failures} failed fetch(es) in a row, last: "
            f"{shipment.last_error_kind}: {shipment.last_error}"
        )
    if paused_until is not None and paused_until > now:
        lines.append(f"the provider asked us to wait (Retry-After) until {paused_until.isoformat()}")
    return {"id": shipment.id, "state": state, "next_sync_at": next_at, "reason": reason, "explanation": lines}


def push_lines(shipment: Shipment, push_enabled: bool) -> list[str]:
    """The push part of `why`: regime, subscription, last push and count."""
    lines = [f"regime: {regime(shipment, push_enabled)}"]
    if shipment.subscribed_at is not None:
        lines.append(f"subscribed to pushes since {format_rfc3339(shipment.subscribed_at)}")
    if shipment.push_count:
        last = format_rfc3339(shipment.last_push_at) if shipment.last_push_at else None
        lines.append(f"{shipment.push_count} push(es) received, the last at {last}")
    return lines
