"""
The shape of every /v1 answer about the daemon, its loops, shipments, sync runs, the store and health.

msgspec Structs: the daemon converts what it built into these before it answers (so an answer
that drifts from its type is a test failure, not a surprise for a client), the client decodes
into them, and api/openapi.py derives the OpenAPI schemas from them. Timestamps are aware UTC
datetimes, written as RFC 3339 with `Z`. Alert answers are in alerting.py, `stats` in stats.py, events in events.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


class Answer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every answer: a field the type does not name is an error, in the daemon as in the client."""


# --- errors ------------------------------------------------------------------------------


class ErrorBody(Answer):
    code: str
    message: str


class ErrorAnswer(Answer):
    """Every failure: `{"error": {"code", "message"}}` with a fitting HTTP status."""

    error: ErrorBody


# --- the daemon and its loops ---------------------------------------------------------------


class LoopInfo(Answer):
    name: str
    schedule: str
    paused: bool
    running: bool
    last_run_at: datetime | None
    last_outcome: str
    last_error: str
    next_run_at: datetime | None
    failures_in_a_row: int
    failures_total: int
    runs: int


class LoopTriggered(LoopInfo):
    """POST /v1/loops/{name}/trigger: the loop, and whether this started a run or joined one going."""

    triggered: bool
    joined: bool


class LoopList(Answer):
    """GET /v1/loops: every loop (an object, not a bare array, like every answer)."""

    loops: list[LoopInfo]


class ProviderInfo(Answer):
    name: str
    base_url: str


class AccountFigures(Answer):
    """One provider account's own requests since start, and the state of its throttle (status, stats)."""

    name: str  # the account ([[providers]] name; the single [provider]: its kind)
    kind: str
    requests: int
    rate_limited: int  # 429 answers (each pauses this account, and only it)
    errors: int  # failed requests, of any kind
    retries: int
    circuit: str  # "open" once circuit_breaker calls in a row found no connection, else "closed"
    unreachable_in_a_row: int
    paused_until: datetime | None  # this account's Retry-After pause, while one holds
    rate_per_s: float | None  # the pace its requests are held to now (adaptive); None: unpaced


class SyncProgress(Answer):
    """The run going on now (status, GET /v1/runs/{id}, the sync.progress event)."""

    run_id: int
    trigger: str
    started_at: datetime
    planned: int
    done: int
    selected: int
    updated: int
    unchanged: int
    failed: int
    skipped: int
    api_calls: int
    retries: int
    rate_limited: int
    unknown_ids: list[str]
    stop_reason: str


class TableFigures(Answer):
    rows: int
    bytes: int


class StoreInfo(Answer):
    """The store; `tables` and the figures after it come from the retention loop's last measure (None before)."""

    path: str  # the SQLite file, or the PostgreSQL server (password masked)
    backend: str  # sqlite or postgresql
    size_bytes: int  # the file and its WAL; 0 on PostgreSQL (the server's disk)
    shipments: int
    active: int
    due_now: int
    tables: dict[str, TableFigures] | None
    free_bytes: int | None = None
    auto_vacuum: str | None = None
    measured_at: datetime | None = None


class PingInfo(Answer):
    at: datetime
    kind: str
    level: str
    ok: bool
    status: int | None
    error: str
    elapsed_s: float


class HeartbeatInfo(Answer):
    """The dead man's switch; URLs masked."""

    url: str
    fail_url: str
    interval_s: float
    last: PingInfo | None
    last_ok_at: datetime | None


class ClusterMember(Answer):
    id: str  # host:pid:random, also its lease owner and its runs' owner
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    roles: list[str]  # the singleton loops it leads
    leases: int  # shipments it holds claimed (as of its last heartbeat)
    this: bool  # the daemon that answered


class ClusterInfo(Answer):
    """Every live member of the store's cluster (one daemon on SQLite) and what this one leads."""

    member: str
    leads: list[str]
    members: list[ClusterMember]
    stale: int  # members whose heartbeat stopped (dead, or cut off), kept until [cluster] member_forget


class Status(Answer):
    version: str
    pid: int
    state: str
    uptime_s: float
    config_file: str | None
    provider: ProviderInfo
    loops: list[LoopInfo]
    sync: SyncProgress | None
    store: StoreInfo
    rate_limit_paused_until: datetime | None
    heartbeat: HeartbeatInfo | None
    event_seq: int  # subscribe to /v1/events?since= this to miss nothing after this answer
    cluster: ClusterInfo | None = None
    providers: list[AccountFigures] = []  # every provider account, the default first


class Reloaded(Answer):
    reloaded: bool
    changed: list[str]
    needs_restart: list[str]


class BackupWritten(Answer):
    path: str
    size_bytes: int
    quick_check: str
    rows: dict[str, int]
    duration_s: float


# --- shipments ------------------------------------------------------------------------------


class Shipment(Answer):
    id: str
    carrier_code: str
    tracking_number: str
    reference: str
    status_code: str | None  # None until the first sync; else one of names.STATUS_CODES
    status_detail_code: str | None
    status_description: str | None
    exception_description: str | None
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
    provider: str  # the provider account that tracks it ("" until routed at its first sync)
    provider_ref: str  # that provider's id for it once registered (17TRACK: its carrier id), else ""
    provider_status: str  # the provider's own status word ("InTransit"; ShipEngine: its code)
    provider_sub_status: str  # ... and sub-status ("InTransit_PickedUp"; ShipEngine: status_detail_code)
    # Push (issue 10): subscribed with the provider since; the last verified push; pushes received;
    # a poll found a change no push reported (polled at its normal cadence until the next push).
    subscribed_at: datetime | None
    last_push_at: datetime | None
    push_count: int
    push_missed: bool
    # How carrier_code is known: "given" when added, "pending" (added without one: "" until the
    # provider detects it at registration), "detected" by the provider, or "set" by an operator
    # (shiptrackctl shipments set-carrier). detected_carrier: what the provider detected, kept after a "set".
    carrier_source: str = "given"
    detected_carrier: str = ""


class TrackingEvent(Answer):
    occurred_at: datetime
    status_code: str
    description: str
    event_code: str
    location: str


class ShipmentDetail(Shipment, kw_only=True):  # kw_only: a required field after Shipment's defaulted ones
    events: list[TrackingEvent]  # newest first


class ShipmentPage(Answer):
    shipments: list[Shipment]
    next_cursor: str | None  # pass as ?cursor= for the next page; None on the last


class AddedShipment(Answer):
    index: int  # the record's position in the request
    id: str
    carrier_code: str  # "" when left out: `provider` detects it at the shipment's first sync
    tracking_number: str
    reference: str
    provider: str = ""  # the account that tracks it, when given or picked to detect its carrier


class InvalidRecord(Answer):
    index: int
    error: str
    code: str = "invalid_request"  # carrier_required: no carrier, and no provider account detects one


class ShipmentsAdded(Answer):
    added: list[AddedShipment]
    duplicates: list[AddedShipment]  # already tracked, under the id given
    invalid: list[InvalidRecord]


class DuplicateShipment(ShipmentsAdded):
    """409 to a single shipment already tracked: the error, and the same report as a 200/201."""

    error: ErrorBody


class ShipmentRemoved(Answer):
    removed: str


class WhyPush(Answer):
    """Which regime a shipment is in: poll only, push (safety polls), push overdue, or polling while silent."""

    regime: str
    subscribed_at: datetime | None
    last_push_at: datetime | None
    push_count: int


class Why(Answer):
    """When a shipment will next be checked, and why."""

    id: str
    state: str  # due, scheduled, terminal or expired
    next_sync_at: datetime | None
    reason: str
    explanation: list[str]
    push: WhyPush


# --- sync runs ------------------------------------------------------------------------------


class SyncStarted(Answer):
    run_id: int
    joined: bool  # a run was already going: this request joined it
    trigger: str


class PlannedShipment(Answer):
    id: str
    carrier_code: str
    tracking_number: str
    status_code: str | None
    next_sync_at: datetime | None
    why: str


class SyncPlan(Answer):
    """POST /v1/sync with dry_run: what a run would sync, without a request or a write."""

    dry_run: bool
    trigger: str
    would_sync: int
    shipments: list[PlannedShipment]
    unknown_ids: list[str]


class Run(Answer):
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
    owner: str = ""  # the daemon (cluster member id, host:pid:random) that ran it; "" before migration 5


class RunList(Answer):
    """GET /v1/runs: recent runs, newest first."""

    runs: list[Run]


class RunDetail(Run):
    progress: SyncProgress | None = None  # while the run is going on


# --- health ---------------------------------------------------------------------------------


class Perf(Answer):
    """A monitoring-plugin performance datum: 'label'=value[unit];warn;crit;min;max."""

    label: str
    value: float
    unit: str
    warn: str
    crit: str
    min: float | None
    max: float | None


class Check(Answer):
    name: str  # one of names.CHECKS
    level: str  # one of names.LEVELS
    message: str
    value: float | None
    unit: str
    warning: float | None
    critical: float | None
    lower_is_worse: bool
    perf: list[Perf]
    details: dict[str, Any]
    threshold: str
    value_text: str


class HealthReport(Answer):
    at: datetime
    level: str
    exit_code: int  # names.LEVEL_EXIT_CODES[level]
    summary: str
    host: str
    version: str
    trigger: str
    checks: list[Check]
    id: int | None = None  # the stored report's id
    age_s: float | None = None
    stale_shipments: list[Shipment] | None = None  # with ?check_stale=1


def to_answer(value: object, kind: type[T]) -> T:
    """
    *value* (dicts as the daemon builds them, holding the store's typed rows) as the wire type
    *kind*; raises if it does not fit. A row's fields are read by name (from_attributes).
    """
    return msgspec.convert(value, kind, from_attributes=True)
