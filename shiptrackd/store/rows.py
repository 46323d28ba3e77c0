"""
The rows the store hands out: typed, with aware UTC datetimes, never database text.

A database time is fixed-width ISO text (store/schema.py); it is parsed here, once, for both
backends, so nothing outside `store/` reads that format. msgspec Structs rather than dataclasses:
a frozen, gc=False Struct is built several times faster than a slotted dataclass (a sync batch
builds a row per shipment), and `msgspec.convert(row, Answer, from_attributes=True)` maps a row
onto its wire answer (shiptrackd/wire/) without a hand-written copy. Only msgspec and the
standard library are imported: pure modules (sync/cadence.py, outbound/payload.py) may name these types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


def from_db(text: str | None) -> datetime | None:
    """A store time as an aware UTC datetime (None for NULL or ''); the one parser of the format."""
    if not text:
        return None
    return datetime.fromisoformat(text)  # "...Z" parses as UTC; 40x faster than strptime


def at_db(text: str) -> datetime:
    """A NOT NULL store time."""
    return datetime.fromisoformat(text)


class Row(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of every row: immutable (msgspec.structs.replace makes a changed copy); subclasses repeat
    `frozen=True` for mypy, whose dataclass view of a Struct does not inherit it."""


# --- shipments -------------------------------------------------------------------------------

SHIPMENT_COLUMNS = (
    "id, carrier_code, tracking_number, reference, status_code, status_detail_code, status_description,"
    " exception_description, estimated_delivery_at, actual_delivery_at, last_synced_at, status_changed_at,"
    " next_sync_at, schedule_reason, consecutive_failures, last_error, last_error_kind, active,"
    " created_at, updated_at, provider, provider_ref, provider_status, provider_sub_status,"
    " subscribed_at, last_push_at, push_count, push_missed, carrier_source, detected_carrier"
)


class Shipment(Row, frozen=True):
    """A tracked parcel (the columns of SHIPMENT_COLUMNS; the lease columns stay inside the store)."""

    id: str
    carrier_code: str
    tracking_number: str
    reference: str
    status_code: str | None  # None until the first sync
    status_detail_code: str
    status_description: str
    exception_description: str
    estimated_delivery_at: datetime | None
    actual_delivery_at: datetime | None
    last_synced_at: datetime | None
    status_changed_at: datetime | None
    next_sync_at: datetime | None
    schedule_reason: str
    consecutive_failures: int
    last_error: str
    last_error_kind: str
    active: bool
    created_at: datetime
    updated_at: datetime
    provider: str
    provider_ref: str
    provider_status: str
    provider_sub_status: str
    subscribed_at: datetime | None
    last_push_at: datetime | None
    push_count: int
    push_missed: bool
    carrier_source: str  # given, pending (detected at registration), detected, or set (by an operator)
    detected_carrier: str  # what the provider detected, kept after an operator's "set"


def shipment_row(r: Any) -> Shipment:
    """A row selected with SHIPMENT_COLUMNS (by index: this runs for every shipment of a sync batch)."""
    return Shipment(
        id=r[0],
        carrier_code=r[1],
        tracking_number=r[2],
        reference=r[3],
        status_code=r[4],
        status_detail_code=r[5],
        status_description=r[6],
        exception_description=r[7],
        estimated_delivery_at=from_db(r[8]),
        actual_delivery_at=from_db(r[9]),
        last_synced_at=from_db(r[10]),
        status_changed_at=from_db(r[11]),
        next_sync_at=from_db(r[12]),
        schedule_reason=r[13],
        consecutive_failures=r[14],
        last_error=r[15],
        last_error_kind=r[16],
        active=bool(r[17]),
        created_at=at_db(r[18]),
        updated_at=at_db(r[19]),
        provider=r[20],
        provider_ref=r[21],
        provider_status=r[22],
        provider_sub_status=r[23],
        subscribed_at=from_db(r[24]),
        last_push_at=from_db(r[25]),
        push_count=r[26],
        push_missed=bool(r[27]),
        carrier_source=r[28],
        detected_carrier=r[29],
    )


EVENT_COLUMNS = "occurred_at, status_code, description, event_code, location"


class TrackingEvent(Row, frozen=True):
    """One scan of a shipment's history."""

    occurred_at: datetime
    status_code: str
    description: str
    event_code: str
    location: str


def event_row(r: Any) -> TrackingEvent:
    """A row selected with EVENT_COLUMNS."""
    return TrackingEvent(occurred_at=at_db(r[0]), status_code=r[1], description=r[2], event_code=r[3], location=r[4])


class Added(Row, frozen=True):
    """A shipment `add_many` added, or found already tracked; `index` is its position in the call."""

    index: int
    id: str
    carrier_code: str
    tracking_number: str
    reference: str
    provider: str  # the account that tracks it, when given or picked to detect its carrier


# --- sync runs and loops --------------------------------------------------------------------

RUN_COLUMNS = (
    "id, trigger, started_at, finished_at, selected, updated, unchanged, failed, skipped, api_calls, retries,"
    " rate_limited, outcome, stop_reason, owner"
)


class Run(Row, frozen=True):
    """One sync run: its trigger, span, counters and how it ended (`running` while it goes on)."""

    id: int
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    selected: int
    updated: int
    unchanged: int
    failed: int
    skipped: int
    api_calls: int
    retries: int
    rate_limited: int
    outcome: str
    stop_reason: str
    owner: str  # the daemon (cluster member id) that ran it


def run_row(r: Any) -> Run:
    """A row selected with RUN_COLUMNS."""
    return Run(
        id=r[0],
        trigger=r[1],
        started_at=at_db(r[2]),
        finished_at=from_db(r[3]),
        selected=r[4],
        updated=r[5],
        unchanged=r[6],
        failed=r[7],
        skipped=r[8],
        api_calls=r[9],
        retries=r[10],
        rate_limited=r[11],
        outcome=r[12],
        stop_reason=r[13],
        owner=r[14],
    )


class RunTotals(Row, frozen=True):
    """Run counters summed over a window: runs, shipments attempted and how they went, API calls."""

    runs: int
    selected: int
    updated: int
    unchanged: int
    failed: int
    api_calls: int
    retries: int
    rate_limited: int


class LoopState(Row, frozen=True):
    """What a timer loop remembers across restarts."""

    last_run_at: datetime | None
    last_outcome: str
    paused: bool


# --- health ----------------------------------------------------------------------------------


class HealthRecord(Row, frozen=True):
    """A stored health report: its id and time, and `report`, the report as the API serves it (with its id)."""

    id: int
    at: datetime
    level: str
    summary: str
    report: dict[str, Any]


# --- the cluster -----------------------------------------------------------------------------


class MemberRow(Row, frozen=True):
    """A daemon on the store, as its last heartbeat left it."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    roles: list[str]  # the singleton loops it leads
    leases: int


# --- alerts --------------------------------------------------------------------------------


class AlertStateRow(Row, frozen=True):
    """Where one check's alert stands: its streaks, whether it fires, its last notice."""

    check_name: str
    level: str
    failing_streak: int
    passing_streak: int
    notified_level: str | None  # None: not firing
    fired_at: datetime | None
    last_notified_at: datetime | None
    message: str
    value: float | None


class AlertRow(Row, frozen=True):
    """One notification to one channel: the alert outbox's row, claimed and sent by the dispatcher."""

    id: int
    notification_id: int
    created_at: datetime
    kind: str  # firing, repeat, escalated, resolved, mixed, test
    severity: str
    checks: list[dict[str, Any]]  # [{check, kind, level}]
    title: str
    body: str
    channel: str  # its display name (a masked URL)
    channel_key: str
    status: str  # pending, sending, sent, failed
    attempts: int
    claimed_at: datetime | None
    finished_at: datetime | None
    error: str


class DeliveryRow(Row, frozen=True):
    """How one channel's copy of a notification went."""

    id: int
    channel: str
    status: str
    attempts: int
    error: str
    claimed_at: datetime | None
    finished_at: datetime | None


class NotificationRow(Row, frozen=True):
    """A notification as the log shows it, with its deliveries (one per channel)."""

    id: int
    created_at: datetime
    kind: str
    severity: str
    checks: list[dict[str, Any]]
    title: str
    body: str
    deliveries: list[DeliveryRow]


class SilenceRow(Row, frozen=True):
    """A check (or * for all) muted until `until_at`, unless removed sooner."""

    id: int
    check_name: str
    created_at: datetime
    until_at: datetime
    comment: str
    removed_at: datetime | None


# --- the outbox ------------------------------------------------------------------------------

OUTBOX_COLUMNS = (
    "id, message_id, endpoint, shipment_id, event_type, created_at, state, attempts, next_attempt_at,"
    " last_status, last_error, finished_at"
)


class OutboxAttempt(Row, frozen=True):
    """One attempt to deliver an outbox row, and what came of it."""

    attempt: int
    at: datetime
    outcome: str  # delivered, failed, gone, throttled, deferred
    http_status: int | None
    latency_ms: float
    error: str


class OutboxRow(Row, frozen=True):
    """A webhook delivery; `body` and `attempt_log` are read only for one row (Outbox.get)."""

    id: int
    message_id: str
    endpoint: str
    shipment_id: str
    event_type: str
    created_at: datetime
    state: str  # pending, sending, delivered, dead
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str
    finished_at: datetime | None
    body: str | None = None
    attempt_log: list[OutboxAttempt] | None = None


def outbox_row(r: Any) -> OutboxRow:
    """A row selected with OUTBOX_COLUMNS."""
    return OutboxRow(
        id=r[0],
        message_id=r[1],
        endpoint=r[2],
        shipment_id=r[3],
        event_type=r[4],
        created_at=at_db(r[5]),
        state=r[6],
        attempts=r[7],
        next_attempt_at=from_db(r[8]),
        last_status=r[9],
        last_error=r[10],
        finished_at=from_db(r[11]),
    )


class ClaimedRow(Row, frozen=True):
    """An outbox row the dispatcher has just claimed (state `sending`): what it needs to send it."""

    id: int
    message_id: str
    endpoint: str
    shipment_id: str
    event_type: str
    body: str  # the JSON payload, exactly as signed and sent
    attempts: int  # made before this one
    created_at: datetime
    targets_done: frozenset[str] = frozenset()  # a notice's targets (keys) that already have it


class EndpointState(Row, frozen=True):
    """What the dispatcher learned about an endpoint (survives restarts: a 410 stays disabled)."""

    name: str
    disabled_at: datetime | None = None
    disabled_reason: str = ""
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str = ""


class EndpointFigures(Row, frozen=True):
    """An endpoint's backlog: undelivered rows and the oldest one's age, dead rows (all, and recent)."""

    undelivered: int = 0
    oldest_undelivered_at: datetime | None = None
    dead: int = 0
    dead_recent: int = 0


__all__ = [
    "EVENT_COLUMNS",
    "RUN_COLUMNS",
    "SHIPMENT_COLUMNS",
    "Added",
    "AlertRow",
    "AlertStateRow",
    "ClaimedRow",
    "DeliveryRow",
    "EndpointFigures",
    "EndpointState",
    "HealthRecord",
    "LoopState",
    "MemberRow",
    "NotificationRow",
    "OUTBOX_COLUMNS",
    "OutboxAttempt",
    "OutboxRow",
    "Row",
    "Run",
    "RunTotals",
    "Shipment",
    "SilenceRow",
    "TrackingEvent",
    "at_db",
    "outbox_row",
    "event_row",
    "from_db",
    "run_row",
    "shipment_row",
]
