"""
The outbox: webhook deliveries written with the change that causes them, claimed and settled by the dispatcher.

`enqueue()` runs on the writer's connection inside the transaction that commits a shipment change
(store/shipments.py calls it), so a change and its outbox rows land together or not at all. The
routes (which endpoint hears which event) are set by the daemon from `[[outbound]]`; with none,
enqueue costs nothing. The dispatcher's whole cycle (record what finished, claim what is due) is
one write: per (endpoint, shipment) only the oldest undelivered row is ever claimed, so events go
out in order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from ..outbound.payload import build_body, shipment_data
from .db import to_db
from .rows import (
    EVENT_COLUMNS,
    OUTBOX_COLUMNS,
    SHIPMENT_COLUMNS,
    ClaimedRow,
    EndpointFigures,
    EndpointState,
    OutboxAttempt,
    OutboxRow,
    Shipment,
    TrackingEvent,
    at_db,
    event_row,
    from_db,
    outbox_row,
    shipment_row,
)
from .sql import Backend, Conn

STATES = ("pending", "sending", "delivered", "dead")
_UNDELIVERED = "('pending', 'sending')"


@dataclass(frozen=True)
class Route:
    """Which events of which shipments one endpoint hears; empty filters match everything."""

    endpoint: str
    events: frozenset[str]
    statuses: frozenset[str] = frozenset()
    carriers: frozenset[str] = frozenset()

    def matches(self, event_type: str, status: str | None, carrier: str, detail: str | None = None) -> bool:
        """`statuses` holds status codes, and for a notice detail codes too (OUT_FOR_DELIVERY)."""
        return (
            event_type in self.events
            and (not self.statuses or status in self.statuses or (bool(detail) and detail in self.statuses))
            and (not self.carriers or carrier in self.carriers)
        )


@dataclass(frozen=True)
class Change:
    """One committed change to announce: its events (in order), and the status it left."""

    shipment_id: str
    events: tuple[str, ...]
    previous_status: str | None = None
    snapshot: Shipment | None = None  # the row as it was, for a shipment about to be deleted


@dataclass(frozen=True)
class Settlement:
    """What one attempt came to, decided by the dispatcher's policy; the store only writes it."""

    outbox_id: int
    endpoint: str
    attempt: int
    at: datetime
    outcome: str  # delivered, failed, gone, throttled
    state: str  # the row's new state: delivered, pending, dead
    next_attempt_at: datetime | None
    http_status: int | None
    latency_ms: float
    error: str
    targets_done: frozenset[str] | None = None  # a notice's targets that have it now; None leaves them be


def new_message_id() -> str:
    """`msg_` + 128 random bits: the webhook-id, the receiver's idempotency key."""
    return f"msg_{secrets.token_hex(16)}"


def _latest_event(conn: Conn, shipment_id: str) -> TrackingEvent | None:
    row = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM tracking_events WHERE shipment_id = ? ORDER BY occurred_at DESC, id DESC LIMIT 1",
        (shipment_id,),
    ).fetchone()
    return None if row is None else event_row(row)


class Outbox:
    """Outbox reads and writes; `routes` and `on_enqueue` are set by the daemon."""

    def __init__(self, db: Backend) -> None:
        self.db = db
        self.routes: tuple[Route, ...] = ()
        self.on_enqueue: Callable[[], None] | None = None  # wakes the dispatcher after a commit

    # --- inside a shipment write ---------------------------------------------------------------

    def enqueue(self, conn: Conn, changes: Iterable[Change], now: datetime) -> int:
        """Insert the rows for *changes* on the writer's connection, in its transaction; returns how many."""
        routes = self.routes
        if not routes:
            return 0
        stamp = to_db(now)
        rows: list[tuple[Any, ...]] = []
        for change in changes:
            shipment = change.snapshot
            if shipment is None:
                found = conn.execute(
                    f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id = ?", (change.shipment_id,)
                ).fetchone()
                if found is None:
                    continue
                shipment = shipment_row(found)
            wanted = [
                (event, route.endpoint)
                for event in change.events
                for route in routes
                if route.matches(event, shipment.status_code, shipment.carrier_code, shipment.status_detail_code)
            ]
            if not wanted:
                continue
            data = shipment_data(shipment, change.previous_status, _latest_event(conn, change.shipment_id))
            bodies: dict[str, str] = {}
            for event, endpoint in wanted:
                body = bodies.setdefault(event, build_body(event, now, data))
                rows.append((new_message_id(), endpoint, change.shipment_id, event, body, stamp, stamp))
        conn.executemany(
            "INSERT INTO outbox (message_id, endpoint, shipment_id, event_type, body, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def poke(self) -> None:
        """A write that may have enqueued rows has committed: wake the dispatcher."""
        if self.routes and self.on_enqueue is not None:
            self.on_enqueue()

    # --- the dispatcher's cycle ----------------------------------------------------------------

    async def reset_sending(self, live_since: datetime | None = None) -> int:
        """Rows left `sending` by a crash go back to pending: they may be sent twice, never lost.

        With *live_since* (a shared store), only the rows of members not beating since then: a live
        daemon's sends are its own.
        """
        sql, params = "UPDATE outbox SET state = 'pending' WHERE state = 'sending'", []
        if live_since is not None:
            sql += " AND claimed_by NOT IN (SELECT id FROM cluster_members WHERE heartbeat_at >= ?)"
            params = [to_db(live_since)]

        def fn(conn: Conn) -> int:
            return conn.execute(sql, params).rowcount

        return await self.db.write(fn)

    async def cycle(
        self,
        settlements: Sequence[Settlement],
        now: datetime,
        limit: int,
        endpoints: Sequence[str],
        owner: str = "",
    ) -> list[ClaimedRow]:
        """Record *settlements*, then claim up to *limit* due rows of *endpoints*, oldest first, one per chain,
        in the name of *owner* (the cluster member sending them)."""

        def fn(conn: Conn) -> list[ClaimedRow]:
            _settle(conn, settlements)
            if limit <= 0 or not endpoints:
                return []
            marks = ",".join("?" * len(endpoints))
            # A row is claimable when it is due and no older row of its (endpoint, shipment) is still
            # undelivered: a later change waits until the earlier one is delivered or dead.
            candidates = conn.execute(
                f"SELECT o.id, o.message_id, o.endpoint, o.shipment_id, o.event_type, o.body, o.attempts,"
                f" o.created_at, o.targets_done FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= ?"
                f" AND o.endpoint IN ({marks}) AND NOT EXISTS (SELECT 1 FROM outbox p WHERE"
                f" p.endpoint = o.endpoint AND p.shipment_id = o.shipment_id AND p.id < o.id"
                f" AND p.state IN {_UNDELIVERED}) ORDER BY o.next_attempt_at, o.id LIMIT ?",
                (to_db(now), *endpoints, limit),
            ).fetchall()
            # `AND state = 'pending'`: on PostgreSQL another daemon may have claimed a row since this
            # snapshot; its lock makes this update wait, then match nothing, and the row is not sent twice.
            claim = "UPDATE outbox SET state = 'sending', claimed_by = ? WHERE id = ? AND state = 'pending'"
            return [_claimed(r) for r in candidates if conn.execute(claim, (owner, r[0])).rowcount == 1]

        return await self.db.write(fn)

    async def disable(self, endpoint: str, reason: str, now: datetime) -> None:
        def fn(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO outbound_endpoints (name, disabled_at, disabled_reason) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET disabled_at = excluded.disabled_at,"
                " disabled_reason = excluded.disabled_reason",
                (endpoint, to_db(now), reason[:300]),
            )

        await self.db.write(fn)

    async def enable(self, endpoint: str) -> bool:
        """Lift a disable (410 or disable_after); the failure clock starts again. False if it was not disabled."""

        def fn(conn: Conn) -> bool:
            return (
                conn.execute(
                    "UPDATE outbound_endpoints SET disabled_at = NULL, disabled_reason = '', failing_since = NULL"
                    " WHERE name = ? AND disabled_at IS NOT NULL",
                    (endpoint,),
                ).rowcount
                > 0
            )

        return await self.db.write(fn)

    # --- operator actions ----------------------------------------------------------------------

    async def retry(self, outbox_id: int, now: datetime) -> bool:
        """Send a row again now (same message id), its schedule started afresh; False if delivered or unknown.

        A notice keeps `targets_done`: it goes again only to the targets that do not have it.
        """

        def fn(conn: Conn) -> bool:
            return (
                conn.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, finished_at = NULL"
                    " WHERE id = ? AND state IN ('pending', 'dead')",
                    (to_db(now), outbox_id),
                ).rowcount
                > 0
            )

        return await self.db.write(fn)

    async def retry_dead(self, endpoint: str | None, now: datetime) -> int:
        def fn(conn: Conn) -> int:
            sql = "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, finished_at = NULL"
            sql += " WHERE state = 'dead'" + (" AND endpoint = ?" if endpoint else "")
            return conn.execute(sql, (to_db(now), *([endpoint] if endpoint else []))).rowcount

        return await self.db.write(fn)

    async def replay(self, endpoint: str, since: datetime, now: datetime) -> int:
        """Enqueue again every change sent to *endpoint* since *since*: new message ids, the same bodies, in order."""

        def fn(conn: Conn) -> int:
            rows = conn.execute(
                "SELECT shipment_id, event_type, body FROM outbox WHERE endpoint = ? AND created_at >= ? ORDER BY id",
                (endpoint, to_db(since)),
            ).fetchall()
            stamp = to_db(now)
            conn.executemany(
                "INSERT INTO outbox (message_id, endpoint, shipment_id, event_type, body, created_at,"
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(new_message_id(), endpoint, r[0], r[1], r[2], stamp, stamp) for r in rows],
            )
            return len(rows)

        return await self.db.write(fn)

    # --- reads ---------------------------------------------------------------------------------

    async def endpoint_states(self) -> dict[str, EndpointState]:
        rows = await self.db.fetchall(
            "SELECT name, disabled_at, disabled_reason, failing_since, last_success_at, last_attempt_at, last_error"
            " FROM outbound_endpoints"
        )
        return {
            r[0]: EndpointState(
                name=r[0],
                disabled_at=from_db(r[1]),
                disabled_reason=r[2],
                failing_since=from_db(r[3]),
                last_success_at=from_db(r[4]),
                last_attempt_at=from_db(r[5]),
                last_error=r[6],
            )
            for r in rows
        }

    async def list(self, *, endpoint: str | None = None, state: str | None = None, limit: int = 100) -> list[OutboxRow]:
        """Newest first. `state` is pending, failed (pending after a failed attempt), sending, delivered or dead."""
        where, params = [], []
        if endpoint:
            where.append("endpoint = ?")
            params.append(endpoint)
        if state == "failed":
            where.append("state = 'pending' AND attempts > 0")
        elif state:
            where.append("state = ?")
            params.append(state)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox {clause} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [outbox_row(r) for r in rows]

    async def get(self, outbox_id: int) -> OutboxRow | None:
        """One delivery with its body and every attempt made."""
        row = await self.db.fetchone(f"SELECT {OUTBOX_COLUMNS}, body FROM outbox WHERE id = ?", (outbox_id,))
        if row is None:
            return None
        attempts = await self.db.fetchall(
            "SELECT attempt, at, outcome, http_status, latency_ms, error FROM outbox_attempts"
            " WHERE outbox_id = ? ORDER BY id",
            (outbox_id,),
        )
        log = [
            OutboxAttempt(attempt=a[0], at=at_db(a[1]), outcome=a[2], http_status=a[3], latency_ms=a[4], error=a[5])
            for a in attempts
        ]
        return msgspec.structs.replace(outbox_row(row), body=row[12], attempt_log=log)

    async def figures(self, dead_since: datetime) -> dict[str, EndpointFigures]:
        """Per endpoint: undelivered rows, the oldest one's creation time, dead rows (all, and since *dead_since*)."""
        found: dict[str, dict[str, Any]] = {}
        for r in await self.db.fetchall(
            f"SELECT endpoint, count(*), min(created_at) FROM outbox WHERE state IN {_UNDELIVERED} GROUP BY endpoint"
        ):
            found.setdefault(r[0], {}).update(undelivered=r[1], oldest_undelivered_at=from_db(r[2]))
        for r in await self.db.fetchall(
            "SELECT endpoint, count(*) FROM outbox WHERE state = 'dead' AND finished_at >= ? GROUP BY endpoint",
            (to_db(dead_since),),
        ):
            found.setdefault(r[0], {})["dead_recent"] = r[1]
        for r in await self.db.fetchall("SELECT endpoint, count(*) FROM outbox WHERE state = 'dead' GROUP BY endpoint"):
            found.setdefault(r[0], {})["dead"] = r[1]
        return {name: EndpointFigures(**fields) for name, fields in found.items()}


def _claimed(r: Any) -> ClaimedRow:
    return ClaimedRow(
        id=r[0],
        message_id=r[1],
        endpoint=r[2],
        shipment_id=r[3],
        event_type=r[4],
        body=r[5],
        attempts=r[6],
        created_at=at_db(r[7]),
        targets_done=frozenset(r[8].split()),
    )


def _settle(conn: Conn, settlements: Sequence[Settlement]) -> None:
    if not settlements:
        return
    conn.executemany(
        "INSERT INTO outbox_attempts (outbox_id, attempt, at, outcome, http_status, latency_ms, error)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (s.outbox_id, s.attempt, to_db(s.at), s.outcome, s.http_status, s.latency_ms, s.error[:500])
            for s in settlements
        ],
    )
    conn.executemany(
        "UPDATE outbox SET state = ?, attempts = ?, next_attempt_at = coalesce(?, next_attempt_at), last_status = ?,"
        " last_error = ?, finished_at = CASE WHEN ? IN ('delivered', 'dead') THEN ? ELSE NULL END,"
        " targets_done = coalesce(?, targets_done) WHERE id = ?",
        [
            (
                s.state,
                s.attempt,
                to_db(s.next_attempt_at),
                s.http_status,
                s.error[:500],
                s.state,
                to_db(s.at),
                None if s.targets_done is None else " ".join(sorted(s.targets_done)),
                s.outbox_id,
            )
            for s in settlements
        ],
    )
    for s in settlements:  # the endpoint's failure clock: started by a failure, stopped by a success
        if s.outcome == "delivered":
            conn.execute(
                "INSERT INTO outbound_endpoints (name, last_success_at, last_attempt_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET failing_since = NULL, last_success_at = excluded.last_success_at,"
                " last_attempt_at = excluded.last_attempt_at, last_error = ''",
                (s.endpoint, to_db(s.at), to_db(s.at)),
            )
        elif s.outcome != "deferred":
            conn.execute(
                "INSERT INTO outbound_endpoints (name, failing_since, last_attempt_at, last_error) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET"
                " failing_since = coalesce(outbound_endpoints.failing_since, excluded.failing_since),"
                " last_attempt_at = excluded.last_attempt_at, last_error = excluded.last_error",
                (s.endpoint, to_db(s.at), to_db(s.at), s.error[:300]),
            )
