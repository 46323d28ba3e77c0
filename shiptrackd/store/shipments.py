"""
Shipments and their event history: adding, removing, listing, due selection and counts.

Writing fetch results (polled or pushed) is store/apply.py's; this area calls it in one transaction.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..models import NewShipment
from .apply import ApplyResult, FetchFailure, FetchSuccess, apply_results
from .db import to_db
from .outbox import Change, Outbox
from .rows import EVENT_COLUMNS, SHIPMENT_COLUMNS, Added, Shipment, TrackingEvent, event_row, shipment_row
from .sql import Backend, Conn

_ADD_CHUNK = 200  # rows per multi-row INSERT (7 parameters each)


def new_shipment_id(now: datetime) -> str:
    """
    `ship_` + creation milliseconds + 64 random bits: sorting by id sorts by age.

    One add_many stamps every row with the same millisecond, so the random part alone must
    keep 100k ids apart (32 bits collided at that size; 64 make it about one in 10^9).
    """
    return f"ship_{int(now.timestamp() * 1000):011x}{secrets.token_hex(8)}"


@dataclass
class AddResult:
    """What add_many did, in input order: the shipments added, and those already tracked (their ids)."""

    added: builtins.list[Added] = field(default_factory=builtins.list)
    duplicates: builtins.list[Added] = field(default_factory=builtins.list)


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
            duplicate: dict[int, bool] = {}  # input index -> already tracked (or named twice)?
            fresh: list[tuple[int, str, NewShipment]] = []
            for index, item in enumerate(items):
                if _pair(item) in mine:
                    duplicate[index] = True
                else:
                    mine[_pair(item)] = new_shipment_id(now)
                    fresh.append((index, mine[_pair(item)], item))
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
                    duplicate[index] = sid not in inserted
                    if duplicate[index]:
                        row = conn.execute(
                            "SELECT id FROM shipments WHERE carrier_code = ? AND tracking_number = ?", _pair(item)
                        ).fetchone()
                        mine[_pair(item)] = row[0]
            result = AddResult()
            for index in sorted(duplicate):
                item = items[index]
                entry = Added(
                    index=index,
                    id=mine[_pair(item)],
                    carrier_code=item.carrier_code,
                    tracking_number=item.tracking_number,
                    reference=item.reference,
                    provider=item.provider,
                )
                (result.duplicates if duplicate[index] else result.added).append(entry)
            self.outbox.enqueue(conn, [Change(a.id, ("shipment.added",)) for a in result.added], now)
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
                    snapshot = shipment_row(row)
                    change = Change(shipment_id, ("shipment.removed",), snapshot.status_code, snapshot)
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
        never a second writer's overwrite. Each write gives its lease back (store/apply.py).
        """

        errors, store_wide = self.db.errors, self.db.store_wide

        def fn(conn: Conn) -> ApplyResult:
            out, changes = apply_results(conn, run_id, results, to_db(now), owner, errors, store_wide)
            self.outbox.enqueue(conn, changes, now)
            return out

        applied = await self.db.write(fn)
        self.outbox.poke()
        return applied

    # --- reads -------------------------------------------------------------------

    async def get(self, shipment_id: str) -> Shipment | None:
        row = await self.db.fetchone(f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id = ?", (shipment_id,))
        return None if row is None else shipment_row(row)

    async def get_many(self, ids: Sequence[str]) -> list[Shipment]:
        out: list[Shipment] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id IN ({marks})", chunk)
            out.extend(shipment_row(r) for r in rows)
        return out

    async def events(self, shipment_id: str) -> list[TrackingEvent]:
        """The shipment's history, newest first."""
        rows = await self.db.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM tracking_events WHERE shipment_id = ? ORDER BY occurred_at DESC, id DESC",
            (shipment_id,),
        )
        return [event_row(r) for r in rows]

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
    ) -> tuple[list[Shipment], str | None]:
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
        page = [shipment_row(r) for r in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    async def due(
        self, now: datetime, limit: int, after: tuple[datetime, str] | None = None
    ) -> builtins.list[Shipment]:
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
            params = [to_db(now), to_db(after[0]), after[1], limit]
        return [shipment_row(r) for r in await self.db.fetchall(sql, params)]

    async def active_after(self, after_id: str, limit: int, *, skip_pushed: bool = False) -> builtins.list[Shipment]:
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
        return [shipment_row(r) for r in rows]

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


def _source(item: NewShipment) -> str:
    """How the new shipment's carrier is known: named, or to be detected by its provider."""
    return "given" if item.carrier_code else "pending"


__all__ = ["AddResult", "ApplyResult", "FetchFailure", "FetchSuccess", "ShipmentStore", "new_shipment_id"]
