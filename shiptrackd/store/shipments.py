"""
Shipments and their event history: adding, listing, due selection, and applying
a batch of fetch results atomically per shipment.
"""

from __future__ import annotations

import builtins
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..models import NewShipment, TrackingInfo
from .db import from_db, to_db
from .outbox import Change, Outbox
from .sql import Backend, Conn

SHIPMENT_COLUMNS = (
    "id, carrier_code, tracking_number, reference, status_code, status_detail_code, status_description,"
    " exception_description, estimated_delivery_at, actual_delivery_at, last_synced_at, status_changed_at,"
    " next_sync_at, schedule_reason, consecutive_failures, last_error, last_error_kind, active,"
    " created_at, updated_at, provider, provider_ref, provider_status, provider_sub_status,"
    " subscribed_at, last_push_at, push_count, push_missed, carrier_source, detected_carrier"
)


def new_shipment_id(now: datetime) -> str:
    """
    `ship_` + creation milliseconds + 64 random bits: sorting by id sorts by age.

    One add_many stamps every row with the same millisecond, so the random part alone must
    keep 100k ids apart (32 bits collided at that size; 64 make it about one in 10^9).
    """
    return f"ship_{int(now.timestamp() * 1000):011x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class FetchSuccess:
    """A provider answered for this shipment; `next_sync_at=None` means terminal (stop polling)."""

    shipment_id: str
    info: TrackingInfo
    next_sync_at: datetime | None
    reason: str
    provider: str = ""  # the provider account that answered ("": leave the shipment's as it is)
    push_missed: bool | None = None  # a poll found a change no push reported (None: leave the flag as it is)


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
    stale: list[str] = field(default_factory=list)  # answers older than the stored history: status kept


@dataclass
class AddResult:
    added: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)


def _changes(results: Sequence[FetchSuccess | FetchFailure], out: ApplyResult) -> list[Change]:
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
        if result.next_sync_at is None and result.reason.startswith("expired"):
            events.append("shipment.expired")
        if events:
            changes.append(Change(sid, tuple(events), previous_status=changed.get(sid)))
    return changes


class ShipmentStore:
    def __init__(self, db: Backend, outbox: Outbox | None = None) -> None:
        self.db = db
        self.outbox = outbox or Outbox(db)

    # --- writes ------------------------------------------------------------------

    async def add_many(self, items: Sequence[NewShipment], now: datetime) -> AddResult:
        """Insert new shipments, due at once; report (not merge) those already tracked.

        A multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per chunk says which rows went in;
        only the pairs already tracked are looked up one by one (a lookup per row would cost a
        PostgreSQL server 20k round trips per 10k rows, and a chunked IN made its planner scan).
        """

        def fn(conn: Conn) -> AddResult:
            stamp = to_db(now)
            mine: dict[tuple[str, str], str] = {}  # pairs of this call, by the id given to the first
            found: dict[int, dict[str, Any]] = {}  # input index -> added or duplicate entry
            fresh: list[tuple[int, str, NewShipment]] = []
            for index, item in enumerate(items):
                pair = (item.carrier_code, item.tracking_number)
                if pair in mine:
                    found[index] = {"index": index, "id": mine[pair], "duplicate": True, **_fields(item)}
                else:
                    mine[pair] = new_shipment_id(now)
                    fresh.append((index, mine[pair], item))
            for start in range(0, len(fresh), _ADD_CHUNK):
                chunk = fresh[start : start + _ADD_CHUNK]
                sql = (
                    "INSERT INTO shipments (id, carrier_code, tracking_number, reference, provider, carrier_source,"
                    " next_sync_at, schedule_reason, created_at, updated_at) VALUES "
                    + ",".join("(?, ?, ?, ?, ?, ?, ?, 'new', ?, ?)" for _ in chunk)
                    + " ON CONFLICT (carrier_code, tracking_number) DO NOTHING RETURNING id"
                )
                params = [
                    v
                    for _, sid, i in chunk
                    for v in (sid, *_pair(i), i.reference, i.provider, _source(i), stamp, stamp, stamp)
                ]
                inserted = {r[0] for r in conn.execute(sql, params).fetchall()}
                for index, sid, item in chunk:
                    if sid in inserted:
                        found[index] = {"index": index, "id": sid, **_fields(item)}
                        continue
                    row = conn.execute(
                        "SELECT id FROM shipments WHERE carrier_code = ? AND tracking_number = ?", _pair(item)
                    ).fetchone()
                    mine[_pair(item)] = row[0]
                    found[index] = {"index": index, "id": row[0], "duplicate": True, **_fields(item)}
            result = AddResult()
            for index in sorted(found):
                entry = found[index]
                if entry.pop("duplicate", False):
                    entry["id"] = mine[_pair(items[index])]
                    result.duplicates.append(entry)
                else:
                    result.added.append(entry)
            self.outbox.enqueue(conn, [Change(a["id"], ("shipment.added",)) for a in result.added], now)
            return result

        added = await self.db.write(fn)
        self.outbox.poke()
        return added

    async def set_provider(self, rows: Sequence[tuple[str, str, str]], now: datetime) -> None:
        """Record (id, provider, ref) after routing or registration: the shipment keeps its provider."""

        def fn(conn: Conn) -> None:
            conn.executemany(
                "UPDATE shipments SET provider = ?, provider_ref = ?, updated_at = ? WHERE id = ?",
                [(provider, ref, to_db(now), sid) for sid, provider, ref in rows],
            )

        await self.db.write(fn)

    async def remove(self, shipment_id: str, now: datetime | None = None) -> bool:
        """Delete a shipment (its events cascade); a shipment.removed outbox row carries its last state."""
        now = now or datetime.now(UTC)

        def fn(conn: Conn) -> bool:
            if self.outbox.routes:
                row = conn.execute(f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id = ?", (shipment_id,)).fetchone()
                if row is not None:
                    snapshot = shipment_dict(row)
                    change = Change(shipment_id, ("shipment.removed",), snapshot["status_code"], snapshot)
                    self.outbox.enqueue(conn, [change], now)
            return conn.execute("DELETE FROM shipments WHERE id = ?", (shipment_id,)).rowcount > 0

        removed = await self.db.write(fn)
        self.outbox.poke()
        return removed

    async def retrack(self, shipment_id: str, now: datetime) -> bool:
        """Put an expired or terminal shipment back into the schedule, due now."""

        def fn(conn: Conn) -> bool:
            return (
                conn.execute(
                    "UPDATE shipments SET active = 1, next_sync_at = ?, schedule_reason = 'retrack',"
                    " consecutive_failures = 0, updated_at = ? WHERE id = ?",
                    (to_db(now), to_db(now), shipment_id),
                ).rowcount
                > 0
            )

        return await self.db.write(fn)

    async def apply(
        self,
        run_id: int | None,
        results: Sequence[FetchSuccess | FetchFailure],
        now: datetime,
        *,
        owner: str | None = None,
    ) -> ApplyResult:
        """Write a batch in one transaction, each shipment in its own savepoint: all of it lands or none.

        With *owner* (a daemon's lease id, store/leases.py) a shipment is written only while that
        owner still holds its lease; one whose lease was taken over is a write error ("lease lost"),
        never a second writer's overwrite. Each write gives its lease back.

        Fast path first: the whole batch with a few executemany statements inside one savepoint
        (bench/bench_store.py: ~1.3x the per-shipment rate). If any statement fails, that
        savepoint is rolled back and the batch is redone shipment by shipment, so a failed write
        still rolls back only its own shipment.
        """

        errors, store_wide = self.db.errors, self.db.store_wide

        def fn(conn: Conn) -> ApplyResult:
            stamp = to_db(now)
            if len({r.shipment_id for r in results}) == len(results):
                conn.execute("SAVEPOINT batch")
                try:
                    out = _apply_batch(conn, run_id, results, stamp, owner)
                except errors as exc:
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                    if store_wide(exc):
                        raise  # a full disk or a held lock fails every shipment alike: fail the batch
                else:
                    conn.execute("RELEASE batch")
                    self.outbox.enqueue(conn, _changes(results, out), now)
                    return out
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
            self.outbox.enqueue(conn, _changes([r for r in results if r.shipment_id not in failed], out), now)
            return out

        applied = await self.db.write(fn)
        self.outbox.poke()
        return applied

    # --- reads -------------------------------------------------------------------

    async def get(self, shipment_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone(f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id = ?", (shipment_id,))
        return None if row is None else shipment_dict(row)

    async def get_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id IN ({marks})", chunk)
            out.extend(shipment_dict(r) for r in rows)
        return out

    async def events(self, shipment_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT occurred_at, status_code, description, event_code, location FROM tracking_events"
            " WHERE shipment_id = ? ORDER BY occurred_at DESC, id DESC",
            (shipment_id,),
        )
        return [dict(r) for r in rows]

    # From here on, `list` in the class body names this method: later signatures say builtins.list.
    async def list(
        self,
        *,
        status: str | None = None,
        carrier: str | None = None,
        search: str | None = None,
        active: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page ordered by id (creation order); the cursor is the last id of the previous page."""
        where: list[str] = []
        params: list[str | int] = []
        if status:
            if status == "none":
                where.append("status_code IS NULL")
            else:
                where.append("status_code = ?")
                params.append(status)
        if carrier:
            where.append("carrier_code = ?")
            params.append(carrier)
        if active is not None:
            where.append("active = ?")
            params.append(int(active))
        if search:
            where.append("(id = ? OR tracking_number LIKE ? OR reference LIKE ?)")
            params += [search, f"{search}%", f"{search}%"]
        if cursor:
            where.append("id > ?")
            params.append(cursor)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(
            f"SELECT {SHIPMENT_COLUMNS} FROM shipments {clause} ORDER BY id LIMIT ?", [*params, limit + 1]
        )
        page = [shipment_dict(r) for r in rows[:limit]]
        return page, (page[-1]["id"] if len(rows) > limit else None)

    async def due(
        self, now: datetime, limit: int, after: tuple[str, str] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Active shipments with next_sync_at <= now, oldest-due first, after the (next_sync_at, id) key."""
        if after is None:
            sql = (
                f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE active = 1 AND next_sync_at <= ?"
                " ORDER BY next_sync_at, id LIMIT ?"
            )
            params: list[Any] = [to_db(now), limit]
        else:
            sql = (
                f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE active = 1 AND next_sync_at <= ?"
                " AND (next_sync_at, id) > (?, ?) ORDER BY next_sync_at, id LIMIT ?"
            )
            params = [to_db(now), after[0], after[1], limit]
        return [shipment_dict(r) for r in await self.db.fetchall(sql, params)]

    async def active_after(
        self, after_id: str, limit: int, *, skip_pushed: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """
        Every active shipment in id order, for a force sync that walks the whole store in batches.

        `skip_pushed` leaves out shipments whose pushes arrive (their safety poll is their net): with
        push on, a daily force sync would cost every parcel a call a day (bench/bench_cadence.py).
        """
        pushed = " AND NOT (subscribed_at IS NOT NULL AND schedule_reason LIKE 'push:%')" if skip_pushed else ""
        rows = await self.db.fetchall(
            f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE active = 1 AND id > ?{pushed} ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [shipment_dict(r) for r in rows]

    async def count_due(self, now: datetime) -> int:
        return int(
            await self.db.scalar("SELECT count(*) FROM shipments WHERE active = 1 AND next_sync_at <= ?", (to_db(now),))
        )

    # The counts below read shipment_tally (schema migration 3: a row per (status, active), kept
    # exact by triggers), a handful of rows instead of a scan of every shipment. In the tally,
    # status_code '' is a shipment never synced (NULL in shipments); it comes out as "none".

    async def count_active(self) -> int:
        return int(await self.db.scalar("SELECT coalesce(sum(n), 0) FROM shipment_tally WHERE active = 1"))

    async def counts(self) -> dict[str, int]:
        row = await self.db.fetchone(
            "SELECT coalesce(sum(n), 0) AS total, coalesce(sum(n * active), 0) AS active FROM shipment_tally"
        )
        assert row is not None
        return {"total": row["total"], "active": row["active"]}

    async def count_by(self, column: str) -> dict[str, int]:
        """Shipment counts grouped by status_code (from the tally) or carrier_code."""
        assert column in ("status_code", "carrier_code")
        if column == "status_code":
            rows = await self.db.fetchall(
                "SELECT status_code, sum(n) FROM shipment_tally GROUP BY 1 HAVING sum(n) > 0 ORDER BY 1"
            )
        else:
            # carrier_code has no tally: still a scan of every shipment (of the covering
            # (carrier_code, tracking_number) index). Only `shiptrackctl stats` (Service.stats)
            # asks for it, never the status path, the metrics or the health checks.
            rows = await self.db.fetchall("SELECT carrier_code, count(*) FROM shipments GROUP BY 1")
        return {(r[0] or "none"): r[1] for r in rows}

    async def count_by_active_status(self) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT status_code, n FROM shipment_tally WHERE active = 1 AND n > 0 ORDER BY status_code"
        )
        return {(r[0] or "none"): r[1] for r in rows}


def _pair(item: NewShipment) -> tuple[str, str]:
    return (item.carrier_code, item.tracking_number)


def _fields(item: NewShipment) -> dict[str, str]:
    return {
        "carrier_code": item.carrier_code,
        "tracking_number": item.tracking_number,
        "reference": item.reference,
        "provider": item.provider,
    }


def _source(item: NewShipment) -> str:
    """How the new shipment's carrier is known: named, or to be detected by its provider."""
    return "given" if item.carrier_code else "pending"


_UPDATE_SUCCESS_SQL = (
    "UPDATE shipments SET status_code = ?, status_detail_code = ?, status_description = ?,"
    " exception_description = ?, estimated_delivery_at = ?, actual_delivery_at = ?, last_synced_at = ?,"
    " status_changed_at = CASE WHEN ? THEN ? ELSE status_changed_at END, next_sync_at = ?,"
    " schedule_reason = ?, consecutive_failures = 0, last_error = '', last_error_kind = '',"
    " active = ?, updated_at = ?, provider_status = ?, provider_sub_status = ?,"
    " provider = coalesce(nullif(?, ''), provider), push_missed = coalesce(?, push_missed),"
    " lease_owner = '', lease_until = NULL WHERE id = ?"
)
# An answer whose newest event is older than the stored history (a late push, a poll that raced a
# push): its events are merged, its status is not, so a status never moves backwards.
_UPDATE_STALE_SQL = (
    "UPDATE shipments SET last_synced_at = ?, consecutive_failures = 0, last_error = '', last_error_kind = '',"
    " updated_at = ? WHERE id = ?"
)
_NEWEST_EVENT_SQL = (
    "SELECT shipment_id, max(occurred_at) FROM tracking_events WHERE shipment_id IN ({marks}) GROUP BY 1"
)
_HELD = " AND lease_owner = ?"  # appended, with the owner as the last parameter, while applying under a lease
_INSERT_EVENT_SQL = (
    "INSERT INTO tracking_events (shipment_id, occurred_at, status_code, description, event_code,"
    " location, dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_IN_CHUNK = 500  # ids per `IN (...)` list, well under SQLite's bound-parameter limit
_ADD_CHUNK = 200  # rows per multi-row INSERT (7 parameters each)


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
        result.shipment_id,
    )
    return row if owner is None else (*row, owner)


def is_stale(info: TrackingInfo, stored_newest: str | None) -> bool:
    """True when *info*'s newest event is older than the newest stored one: an answer from the past."""
    if not info.events or stored_newest is None:
        return False
    newest = to_db(info.events[-1].occurred_at)
    return newest is not None and newest < stored_newest


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


def _by_id(conn: Conn, sql: str, ids: Sequence[str], *extra: Any) -> dict[str, Any]:
    """{id: value} for `sql`, which selects (id, value) with `IN ({marks})` (then *extra*'s marks), in chunks."""
    out: dict[str, Any] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        out.update(conn.execute(sql.format(marks=",".join("?" * len(chunk))), [*chunk, *extra]).fetchall())
    return out


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
    held, extra = (_HELD, (owner,)) if owner is not None else ("", ())
    old = _by_id(conn, "SELECT id, status_code FROM shipments WHERE id IN ({marks})" + held, ids, *extra)
    if len(old) != len(ids):  # removed, or its lease lost, while its fetch was in flight: the slow path isolates it
        raise sqlite3.IntegrityError("a shipment of the batch no longer exists or its lease was lost")
    newest = _by_id(conn, _NEWEST_EVENT_SQL, ids)
    if any(is_stale(r.info, newest.get(r.shipment_id)) for r in successes):  # rare: the slow path keeps its status
        raise sqlite3.IntegrityError("an answer of the batch is older than the stored history")
    count_sql = "SELECT shipment_id, count(*) FROM tracking_events WHERE shipment_id IN ({marks}) GROUP BY 1"
    events_before = _by_id(conn, count_sql, ids)
    rows = [_success_row(r, old[r.shipment_id] != r.info.status_code, stamp, owner) for r in successes]
    if conn.executemany(_UPDATE_SUCCESS_SQL + held, rows).rowcount != len(rows):
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

    Events are merged (deduplicated by key); the status is taken unless the answer is older than
    the stored history, so duplicates and late, reordered answers change nothing. Under a lease
    (owner set) it is written only while that owner still holds the shipment.
    """
    info = result.info
    row = conn.execute("SELECT status_code, lease_owner FROM shipments WHERE id = ?", (result.shipment_id,)).fetchone()
    if row is None:  # removed while its fetch was in flight
        raise sqlite3.IntegrityError(f"shipment {result.shipment_id} no longer exists")
    old_status = row[0]
    newest = conn.execute(
        "SELECT max(occurred_at) FROM tracking_events WHERE shipment_id = ?", (result.shipment_id,)
    ).fetchone()[0]
    stale = is_stale(info, newest)
    changed = old_status != info.status_code and not stale
    held = _HELD if owner is not None else ""
    if stale:
        out.stale.append(result.shipment_id)
        conn.execute(_UPDATE_STALE_SQL, (stamp, stamp, result.shipment_id))
    elif conn.execute(_UPDATE_SUCCESS_SQL + held, _success_row(result, changed, stamp, owner)).rowcount == 0:
        raise sqlite3.IntegrityError(f"shipment {result.shipment_id}: lease lost (held by {row[1] or 'nobody'})")
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
        result.shipment_id,
    )
    cursor = conn.execute(
        "UPDATE shipments SET consecutive_failures = consecutive_failures + 1, last_error = ?,"
        " last_error_kind = ?, next_sync_at = ?, schedule_reason = ?, active = ?, updated_at = ?,"
        " lease_owner = '', lease_until = NULL WHERE id = ?" + (_HELD if owner is not None else ""),
        values if owner is None else (*values, owner),
    )
    if cursor.rowcount == 0:
        raise sqlite3.IntegrityError(f"shipment {result.shipment_id} no longer exists or its lease was lost")
    conn.execute(
        "INSERT INTO sync_errors (run_id, shipment_id, occurred_at, kind, message, http_status)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, result.shipment_id, stamp, result.kind, result.message[:500], result.http_status),
    )


def shipment_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["active"] = bool(d["active"])
    if "push_missed" in d:
        d["push_missed"] = bool(d["push_missed"])
    return d


__all__ = ["AddResult", "ApplyResult", "FetchFailure", "FetchSuccess", "ShipmentStore", "apply_success", "from_db"]
