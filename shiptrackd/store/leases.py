"""
Leases on shipments: how several daemons on one store sync disjoint batches.

A claim is one statement: `UPDATE shipments SET lease_owner, lease_until WHERE id IN (SELECT ...
FOR UPDATE SKIP LOCKED LIMIT n) RETURNING ...` (reference/webhooks.md, PostgreSQL leasing). Rows
another daemon is claiming at that moment are skipped, not waited for; rows it holds are not
free until their expiry, after which anyone takes them over (a dead daemon's claims). SQLite has
one writer, so there the same statement runs without the lock clause. The writer applies a result
only while its owner still holds the lease (ShipmentStore.apply(owner=...)), and releases it; a push
(no owner) writes without one and leaves the lease alone, so the poll holding it still writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .db import to_db
from .rows import SHIPMENT_COLUMNS, Shipment, shipment_row
from .sql import Backend, Conn

_FREE = "(lease_until IS NULL OR lease_until <= ?)"


class LeaseStore:
    def __init__(self, db: Backend) -> None:
        self.db = db
        self._lock = " FOR UPDATE SKIP LOCKED" if db.backend == "postgresql" else ""

    async def _claim(
        self, where: str, order: str, params: Sequence[Any], owner: str, now: datetime, until: datetime, limit: int
    ) -> list[Shipment]:
        sql = (
            f"UPDATE shipments SET lease_owner = ?, lease_until = ? WHERE id IN (SELECT id FROM shipments"
            f" WHERE {where} AND {_FREE} ORDER BY {order} LIMIT ?{self._lock}) RETURNING {SHIPMENT_COLUMNS}"
        )
        values = [owner, to_db(until), *params, to_db(now), limit]

        def fn(conn: Conn) -> list[Shipment]:
            return [shipment_row(r) for r in conn.execute(sql, values).fetchall()]

        return await self.db.write(fn)

    async def claim_due(
        self, owner: str, due_at: datetime, now: datetime, until: datetime, limit: int
    ) -> list[Shipment]:
        """Up to *limit* free shipments due at *due_at*, oldest-due first, leased to *owner* until *until*."""
        rows = await self._claim(
            "active = 1 AND next_sync_at <= ?", "next_sync_at, id", [to_db(due_at)], owner, now, until, limit
        )
        return sorted(rows, key=lambda s: (s.next_sync_at or now, s.id))

    async def claim_active(
        self,
        owner: str,
        after_id: str,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        untouched_since: datetime | None = None,
    ) -> list[Shipment]:
        """Free active shipments after *after_id* in id order (a force sync's walk), leased to *owner*.

        With *untouched_since* (the force run's start), one another daemon has written after that
        is skipped: two force walks at once share the store instead of fetching it twice.
        """
        where, params = "active = 1 AND id > ?", [after_id]
        if untouched_since is not None:
            # <=: a store written at the very instant the run started (a frozen test clock) is still walked
            where, params = where + " AND updated_at <= ?", [after_id, to_db(untouched_since) or ""]
        rows = await self._claim(where, "id", params, owner, now, until, limit)
        return sorted(rows, key=lambda s: s.id)

    async def claim_ids(self, owner: str, ids: Sequence[str], now: datetime, until: datetime) -> list[Shipment]:
        """Those of *ids* that are free (a targeted sync), leased to *owner*; one held elsewhere is left out."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self._claim(f"id IN ({marks})", "id", list(ids), owner, now, until, len(ids))
        order = {sid: i for i, sid in enumerate(ids)}
        return sorted(rows, key=lambda s: order[s.id])

    async def renew(self, owner: str, now: datetime, until: datetime) -> int:
        """Move the expiry of every lease *owner* still holds (unexpired) to *until*: a live daemon keeps
        its claims through a long batch; a dead one stops renewing and loses them at the expiry."""

        def fn(conn: Conn) -> int:
            return conn.execute(
                "UPDATE shipments SET lease_until = ? WHERE lease_owner = ? AND lease_until > ?",
                (to_db(until), owner, to_db(now)),
            ).rowcount

        return await self.db.write(fn)

    async def release(self, owner: str) -> int:
        """Give back every lease *owner* still holds (the end of its run: deferred or unwritten ones)."""

        def fn(conn: Conn) -> int:
            return conn.execute(
                "UPDATE shipments SET lease_owner = '', lease_until = NULL WHERE lease_owner = ?", (owner,)
            ).rowcount

        return await self.db.write(fn)

    async def held(self, now: datetime) -> dict[str, int]:
        """{owner: leases held at *now*} over the store; an expired lease still names its owner until
        someone claims the row, but it is held by no one (the claims' own rule, _FREE)."""
        rows = await self.db.fetchall(
            "SELECT lease_owner, count(*) FROM shipments WHERE lease_owner != '' AND lease_until > ?"
            " GROUP BY 1 ORDER BY 1",
            (to_db(now),),
        )
        return {r[0]: int(r[1]) for r in rows}


__all__ = ["LeaseStore"]
