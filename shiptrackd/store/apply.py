"""
Writing fetch results: one provider answer (polled or pushed) or failure per shipment, batch-fast.

`apply_results` writes a batch inside the caller's transaction, each shipment in its own savepoint
when the fast path (a few executemany statements for the whole batch) cannot take it;
`apply_success` is the one path from a TrackingInfo to the store (store/push.py writes pushes with it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..models import TrackingInfo
from .db import to_db
from .outbox import Change
from .sql import Conn

Schedule = tuple[datetime | None, str]  # (next_sync_at, schedule_reason); None: terminal


@dataclass(frozen=True)
class FetchSuccess:
    """
    A provider answered for this shipment; `next_sync_at=None` means terminal (stop polling).

    `next_sync_at`/`reason` are the schedule for the answer's status. `kept` is the one for the
    stored status (that status, next_sync_at, reason), which a stale answer keeps (`is_stale`):
    only the write knows which applies, and the store has no cadence, so the caller computes both.
    """

    shipment_id: str
    info: TrackingInfo
    next_sync_at: datetime | None
    reason: str
    provider: str = ""  # the provider account that answered ("": leave the shipment's as it is)
    push_missed: bool | None = None  # a poll found a change no push reported (None: leave the flag as it is)
    kept: tuple[str | None, datetime | None, str] | None = None

    def stale_schedule(self, stored_status: str | None) -> Schedule | None:
        """
        The schedule a stale answer writes: its kept status's. None when the status stored now is
        not the one `kept` was computed for (a push moved it while this poll was in flight): the
        schedule that writer gave it stays. Without `kept` (a caller that computed none), the answer's.
        """
        if self.kept is None:
            return self.next_sync_at, self.reason
        status, next_sync_at, reason = self.kept
        return (next_sync_at, reason) if status == stored_status else None


@dataclass(frozen=True)
class FetchFailure:
    """A fetch failed for this shipment after its retries."""

    shipment_id: str
    kind: str
    message: str
    http_status: int | None
    next_sync_at: datetime | None
    reason: str


@dataclass
class ApplyResult:
    """What a batch did: status changes (id, old, new), counts, and writes that failed."""

    changed: list[tuple[str, str | None, str]] = field(default_factory=list)
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    write_errors: list[tuple[str, str]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # answers less informed than the stored history: status kept
    stale_schedules: dict[str, Schedule] = field(default_factory=dict)  # what those wrote (absent: the row's stayed)


def changes(results: Sequence[FetchSuccess | FetchFailure], out: ApplyResult) -> list[Change]:
    """The outbox's view of a batch: status changes (and what they reached), expiries, in order."""
    changed = {sid: old for sid, old, _new in out.changed}
    changes = []
    for result in results:
        events: list[str] = []
        sid = result.shipment_id
        if isinstance(result, FetchSuccess) and sid in changed:
            events.append("shipment.status_changed")
            if result.info.status_code == "DE":
                events.append("shipment.delivered")
            elif result.info.status_code == "EX":
                events.append("shipment.exception")
        # A stale answer wrote its kept status's schedule, or none (None here): that one, not the answer's, may expire.
        written = out.stale_schedules.get(sid) if sid in out.stale else (result.next_sync_at, result.reason)
        if written is not None and written[0] is None and written[1].startswith("expired"):
            events.append("shipment.expired")
        if events:
            changes.append(Change(sid, tuple(events), previous_status=changed.get(sid)))
    return changes


_UPDATE_SUCCESS_SQL = (
    "UPDATE shipments SET status_code = ?, status_detail_code = ?, status_description = ?,"
    " exception_description = ?, estimated_delivery_at = ?, actual_delivery_at = ?, last_synced_at = ?,"
    " status_changed_at = CASE WHEN ? THEN ? ELSE status_changed_at END, next_sync_at = ?,"
    " schedule_reason = ?, consecutive_failures = 0, last_error = '', last_error_kind = '',"
    " active = ?, updated_at = ?, provider_status = ?, provider_sub_status = ?,"
    " provider = coalesce(nullif(?, ''), provider), push_missed = coalesce(?, push_missed)"
)
# The batch path's UPDATE without the columns a row keeps: a SET of status_code or active fires the
# tally trigger and rewrites every index they are in (or in whose WHERE), whatever the value; leaving
# active out when it stays saves a fifth of the statement's cost (a first sync), leaving out both (a
# poll that finds the status as it was, the common case) two thirds.
_KEEP_STATUS, _KEEP_ACTIVE = "status_code = ?, ", " active = ?,"
assert _KEEP_STATUS in _UPDATE_SUCCESS_SQL and _KEEP_ACTIVE in _UPDATE_SUCCESS_SQL
_STATUS_AT, _ACTIVE_AT = 0, 11  # their places in _success_row's tuple


def _update_sql(set_status: bool, set_active: bool) -> str:
    sql = _UPDATE_SUCCESS_SQL if set_status else _UPDATE_SUCCESS_SQL.replace(_KEEP_STATUS, "", 1)
    return sql if set_active else sql.replace(_KEEP_ACTIVE, "", 1)


_UPDATE_VARIANTS = {
    (status, active): _update_sql(status, active) for status in (True, False) for active in (True, False)
}


# A stale answer (is_stale: a late push, a poll that raced a push, an eventless "not found"): its
# events are merged, its status is not, so a status never moves backwards. It still counts as a
# check: the shipment is rescheduled on its kept status's cadence and its lease (if held) given back, as
# the fresh path does; else a provider that keeps answering so is re-fetched at every lease expiry.
_UPDATE_STALE_SQL = (
    "UPDATE shipments SET last_synced_at = ?, consecutive_failures = 0, last_error = '', last_error_kind = '',"
    " updated_at = ?{schedule}"
)
_STALE_SCHEDULE = ", next_sync_at = ?, schedule_reason = ?, active = ?"
_NEWEST_EVENT_SQL = (
    "SELECT shipment_id, max(occurred_at) FROM tracking_events WHERE shipment_id IN ({marks}) GROUP BY 1"
)
# The end of every UPDATE here; its parameters are `_where_values`'. Under a lease the write is
# refused unless that owner holds it, and gives it back. A write without an owner (a push) holds no
# lease, so it leaves a live one on the row alone: clearing it would make the poll holding it fail
# as "lease lost" (its fetch wasted) and free the row for a second daemon's claim; that poll's write
# still lands, judged fresh or stale by is_stale. An expired one (a dead poll's) it clears, as
# before: a row a push made terminal is never claimed again, and would name the dead owner forever.
_BY_ID = (
    ", lease_owner = CASE WHEN lease_until > ? THEN lease_owner ELSE '' END,"
    " lease_until = CASE WHEN lease_until > ? THEN lease_until END WHERE id = ?"
)
_HELD = ", lease_owner = '', lease_until = NULL WHERE id = ? AND lease_owner = ?"


def _where(owner: str | None) -> str:
    return _BY_ID if owner is None else _HELD


def _where_values(shipment_id: str, stamp: str | None, owner: str | None) -> tuple[Any, ...]:
    return (stamp, stamp, shipment_id) if owner is None else (shipment_id, owner)


_INSERT_EVENT_SQL = (
    "INSERT INTO tracking_events (shipment_id, occurred_at, status_code, description, event_code,"
    " location, dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_IN_CHUNK = 500  # ids per `IN (...)` list, well under SQLite's bound-parameter limit


def _success_row(result: FetchSuccess, changed: bool, stamp: str | None, owner: str | None = None) -> tuple[Any, ...]:
    info = result.info
    row = (
        info.status_code,
        info.status_detail_code,
        info.status_description,
        info.exception_description,
        to_db(info.estimated_delivery_at),
        to_db(info.actual_delivery_at),
        stamp,
        changed,
        stamp,
        to_db(result.next_sync_at),
        result.reason,
        int(result.next_sync_at is not None),
        stamp,
        info.provider_status,
        info.provider_sub_status,
        result.provider,
        None if result.push_missed is None else int(result.push_missed),
    )
    return (*row, *_where_values(result.shipment_id, stamp, owner))


# Statuses an answer may carry without any event and still be believed over a stored history:
# ends a provider states from its own records, not from a carrier scan (17TRACK's and AfterShip's
# Expired and EasyPost's cancelled map to EX, and may come with the history dropped; a delivery
# a carrier reports only in its summary). UN and NY without events say "no information"
# (17TRACK NotFound, ShipEngine's UN); AC, IT, AT and SP claim a scan they do not show.
# An EX is still not believed over a stored DE without a newer scan (is_stale, step 1).
EVENTLESS_BELIEVED = frozenset({"EX", "DE"})


def is_stale(info: TrackingInfo, stored_newest: str | None, stored_status: str | None) -> bool:
    """
    True when *info* is less informed than the stored history (*stored_newest*: its newest event's
    time, None without one; *stored_status*: the status stored now), so the status it carries must
    not replace the stored one:

    1. an EX after a stored DE, unless it brings a scan newer than the stored ones: a provider's
       "tracking expired" (17TRACK's, AfterShip's Expired) is its bookkeeping, not the parcel's
       fate, and comes when a delivered parcel is checked again; a return or damage brings a scan;
    2. no stored history: never stale (a new shipment takes any answer, eventless or not);
    3. an answer with events: stale when its newest event is older than the newest stored one
       (an answer from the past: a late push, a poll that raced a push);
    4. an answer without events: stale unless its status is in EVENTLESS_BELIEVED; with nothing
       to date it, an eventless UN or NY after real scans would move IT or DE back to "unknown".
    """
    newest = to_db(info.events[-1].occurred_at) if info.events else None
    if stored_status == "DE" and info.status_code == "EX":
        return newest is None or (stored_newest is not None and newest <= stored_newest)
    if stored_newest is None:
        return False
    if newest is None:
        return info.status_code not in EVENTLESS_BELIEVED
    return newest < stored_newest


def overtaken(result: FetchSuccess, stored_status: str | None) -> bool:
    """
    True when another writer (a push: it leaves a poll's lease alone) stored this answer's status
    while the poll was in flight: the status the poll's schedule and push_missed flag were computed
    from (`kept`) is gone, and the answer brings no other. Written as a stale answer is, so that
    writer's schedule and flag stay (else a poll would call a change the push reported a missed one).
    """
    return result.kept is not None and result.kept[0] != stored_status and result.info.status_code == stored_status


def _event_rows(result: FetchSuccess) -> list[tuple[Any, ...]]:
    return [
        (
            result.shipment_id,
            to_db(e.occurred_at),
            e.status_code,
            e.description,
            e.event_code,
            ", ".join(filter(None, (e.city, e.state, e.postal_code, e.country_code))),
            e.dedup_key,
        )
        for e in result.info.events
    ]


def _rows_by_id(conn: Conn, sql: str, ids: Sequence[str], *extra: Any) -> Iterator[Any]:
    """The rows of `sql`, which selects with `IN ({marks})` (then *extra*'s marks), for *ids* in chunks."""
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        yield from conn.execute(sql.format(marks=",".join("?" * len(chunk))), [*chunk, *extra]).fetchall()


def _by_id(conn: Conn, sql: str, ids: Sequence[str], *extra: Any) -> dict[str, Any]:
    """{id: value} for `sql`, which selects (id, value) with `IN ({marks})` (then *extra*'s marks), in chunks."""
    return dict(_rows_by_id(conn, sql, ids, *extra))


def _apply_batch(
    conn: Conn,
    run_id: int | None,
    results: Sequence[FetchSuccess | FetchFailure],
    stamp: str | None,
    owner: str | None,
) -> ApplyResult:
    """The whole batch in a few statements; raises the backend's error (caller rolls back) if any write would fail."""
    out = ApplyResult()
    successes = [r for r in results if isinstance(r, FetchSuccess)]
    ids = [r.shipment_id for r in successes]
    held, extra = (" AND lease_owner = ?", (owner,)) if owner is not None else ("", ())
    old: dict[str, Any] = {}
    was_active: dict[str, bool] = {}
    sql = "SELECT id, status_code, active FROM shipments WHERE id IN ({marks})" + held
    for sid, status, active in _rows_by_id(conn, sql, ids, *extra):
        old[sid], was_active[sid] = status, bool(active)
    if len(old) != len(ids):  # removed, or its lease lost, while its fetch was in flight: the slow path isolates it
        raise sqlite3.IntegrityError("a shipment of the batch no longer exists or its lease was lost")
    newest = _by_id(conn, _NEWEST_EVENT_SQL, ids)
    if any(
        is_stale(r.info, newest.get(r.shipment_id), old[r.shipment_id]) or overtaken(r, old[r.shipment_id])
        for r in successes
    ):
        raise sqlite3.IntegrityError("an answer of the batch is stale or overtaken")  # rare: the slow path keeps them
    count_sql = "SELECT shipment_id, count(*) FROM tracking_events WHERE shipment_id IN ({marks}) GROUP BY 1"
    events_before = _by_id(conn, count_sql, ids)
    groups: dict[tuple[bool, bool], list[tuple[Any, ...]]] = {}
    for r in successes:
        changed = old[r.shipment_id] != r.info.status_code
        row = _success_row(r, changed, stamp, owner)
        set_active = was_active[r.shipment_id] != (r.next_sync_at is not None)
        if not set_active:
            row = row[:_ACTIVE_AT] + row[_ACTIVE_AT + 1 :]
        if not changed:
            row = row[_STATUS_AT + 1 :]
        groups.setdefault((changed, set_active), []).append(row)
    where = _where(owner)
    written = sum(conn.executemany(_UPDATE_VARIANTS[key] + where, rows).rowcount for key, rows in groups.items())
    if written != len(successes):
        raise sqlite3.IntegrityError("a lease of the batch was taken over while it was written")
    conn.executemany(_INSERT_EVENT_SQL, [row for r in successes for row in _event_rows(r)])
    events_after = _by_id(conn, count_sql, ids)
    for result in results:
        if isinstance(result, FetchFailure):
            _apply_failure(conn, run_id, result, stamp, owner)
            out.failed += 1
            continue
        sid, new_status = result.shipment_id, result.info.status_code
        changed = old[sid] != new_status
        if changed:
            out.changed.append((sid, old[sid], new_status))
        if changed or events_after.get(sid, 0) > events_before.get(sid, 0):
            out.updated += 1
        else:
            out.unchanged += 1
    return out


def apply_success(
    conn: Conn, result: FetchSuccess, stamp: str | None, out: ApplyResult, owner: str | None = None
) -> None:
    """
    Write one provider answer, polled or pushed: the one path from a TrackingInfo to the store.

    Events are merged (deduplicated by key); the status and its schedule are taken unless the
    answer is stale (`is_stale`: older or less informed than the stored history), so duplicates,
    late, reordered and eventless "not found" answers move no status: a stale one is scheduled
    on the kept status's cadence instead (one `overtaken` by a push is written as a stale one).
    Under a lease (owner set) it is written only while that owner still holds the shipment, and
    gives the lease back; without one (a push) it leaves any lease alone, for the poll holding it
    to write its own answer.
    """
    info = result.info
    row = conn.execute("SELECT status_code, lease_owner FROM shipments WHERE id = ?", (result.shipment_id,)).fetchone()
    if row is None:  # removed while its fetch was in flight
        raise sqlite3.IntegrityError(f"shipment {result.shipment_id} no longer exists")
    old_status = row[0]
    newest = conn.execute(
        "SELECT max(occurred_at) FROM tracking_events WHERE shipment_id = ?", (result.shipment_id,)
    ).fetchone()[0]
    stale = is_stale(info, newest, old_status) or overtaken(result, old_status)
    changed = old_status != info.status_code and not stale
    schedule = result.stale_schedule(old_status) if stale else None
    if stale:
        values: tuple[Any, ...] = (stamp, stamp)
        if schedule is not None:
            values += (to_db(schedule[0]), schedule[1], int(schedule[0] is not None))
        values += _where_values(result.shipment_id, stamp, owner)
        sql = _UPDATE_STALE_SQL.format(schedule="" if schedule is None else _STALE_SCHEDULE)
        cursor = conn.execute(sql + _where(owner), values)
    else:
        cursor = conn.execute(_UPDATE_SUCCESS_SQL + _where(owner), _success_row(result, changed, stamp, owner))
    if cursor.rowcount == 0:
        raise sqlite3.IntegrityError(f"shipment {result.shipment_id}: lease lost (held by {row[1] or 'nobody'})")
    if stale:
        out.stale.append(result.shipment_id)
        if schedule is not None:
            out.stale_schedules[result.shipment_id] = schedule
    new_events = conn.executemany(_INSERT_EVENT_SQL, _event_rows(result)).rowcount
    if changed:
        out.changed.append((result.shipment_id, old_status, info.status_code))
    if changed or new_events:
        out.updated += 1
    else:
        out.unchanged += 1


def _apply_failure(
    conn: Conn, run_id: int | None, result: FetchFailure, stamp: str | None, owner: str | None = None
) -> None:
    values: tuple[Any, ...] = (
        result.message[:500],
        result.kind,
        to_db(result.next_sync_at),
        result.reason,
        int(result.next_sync_at is not None),
        stamp,
        *_where_values(result.shipment_id, stamp, owner),
    )
    cursor = conn.execute(
        "UPDATE shipments SET consecutive_failures = consecutive_failures + 1, last_error = ?,"
        " last_error_kind = ?, next_sync_at = ?, schedule_reason = ?, active = ?, updated_at = ?" + _where(owner),
        values,
    )
    if cursor.rowcount == 0:
        raise sqlite3.IntegrityError(f"shipment {result.shipment_id} no longer exists or its lease was lost")
    conn.execute(
        "INSERT INTO sync_errors (run_id, shipment_id, occurred_at, kind, message, http_status)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, result.shipment_id, stamp, result.kind, result.message[:500], result.http_status),
    )


def apply_results(
    conn: Conn,
    run_id: int | None,
    results: Sequence[FetchSuccess | FetchFailure],
    stamp: str | None,
    owner: str | None,
    errors: tuple[type[Exception], ...],
    store_wide: Callable[[BaseException], bool],
) -> tuple[ApplyResult, list[Change]]:
    """
    Write a batch inside the caller's transaction; what it did, and the changes the outbox announces.

    Fast path first: the whole batch with a few executemany statements inside one savepoint
    (bench/bench_store.py: ~1.3x the per-shipment rate). If any statement fails, that savepoint
    is rolled back and the batch is redone shipment by shipment, so a failed write still rolls
    back only its own shipment. A store-wide failure (*store_wide*: a full disk, a held lock)
    fails every shipment alike, so it fails the batch.
    """
    if len({r.shipment_id for r in results}) == len(results):
        conn.execute("SAVEPOINT batch")
        try:
            out = _apply_batch(conn, run_id, results, stamp, owner)
        except errors as exc:
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            if store_wide(exc):
                raise
        else:
            conn.execute("RELEASE batch")
            return out, changes(results, out)
    out = ApplyResult()
    for result in results:
        conn.execute("SAVEPOINT shipment")
        try:
            if isinstance(result, FetchSuccess):
                apply_success(conn, result, stamp, out, owner)
            else:
                _apply_failure(conn, run_id, result, stamp, owner)
                out.failed += 1
            conn.execute("RELEASE shipment")
        except errors as exc:
            conn.execute("ROLLBACK TO shipment")
            conn.execute("RELEASE shipment")
            if store_wide(exc):
                raise
            out.write_errors.append((result.shipment_id, str(exc)))
    failed = {sid for sid, _ in out.write_errors}
    return out, changes([r for r in results if r.shipment_id not in failed], out)


__all__ = [
    "EVENTLESS_BELIEVED",
    "Schedule",
    "ApplyResult",
    "FetchFailure",
    "FetchSuccess",
    "apply_results",
    "apply_success",
    "changes",
    "is_stale",
    "overtaken",
]
