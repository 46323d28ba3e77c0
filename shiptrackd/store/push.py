"""
Push subscriptions and pushed answers: which shipments a provider pushes for, and writing a push.

A verified push is written by `apply.apply_success`, the function that writes a polled
answer, inside the same transaction that records the push (last push time, push count): one
path to the store, and the push counts only if its answer landed.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from ..errors import StoreError
from .apply import ApplyResult, FetchSuccess, apply_success, changes
from .db import to_db
from .outbox import Outbox
from .rows import SHIPMENT_COLUMNS, Shipment, from_db, shipment_row
from .sql import Backend, Conn

T = TypeVar("T")

# Statuses after which ShipEngine stops pushing by itself (reference/tracking-apis.md §1.6, §1.11).
AUTO_STOPPED = ("DE", "EX")


@dataclass
class PushWrite:
    """What one push did to the store: the shipments it matched, status changes, stale answers."""

    applied: ApplyResult = field(default_factory=ApplyResult)
    shipment_ids: list[str] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)  # shipment id -> the pushed tracking number
    unmatched: list[str] = field(default_factory=list)  # pushed numbers no shipment has


@dataclass(frozen=True)
class Elsewhere:
    """
    The shipments another account tracks, by the rule SyncEngine.lane_for follows: their own
    account if it is one of *accounts*, else (none yet) their carrier's route if it is in *carriers*.
    """

    accounts: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()

    def sql(self) -> tuple[str, tuple[str, ...]]:
        """A condition true for those shipments, and its parameters (no `IN ()`: PostgreSQL refuses it)."""
        parts: builtins.list[str] = []
        params: tuple[str, ...] = ()
        if self.accounts:
            parts.append(f"provider IN ({','.join('?' * len(self.accounts))})")
            params += self.accounts
        if self.carriers:
            parts.append(f"(provider = '' AND carrier_code IN ({','.join('?' * len(self.carriers))}))")
            params += self.carriers
        return f"({' OR '.join(parts) or '1 = 0'})", params


NOWHERE = Elsewhere()  # one account: it tracks every shipment


@dataclass(frozen=True)
class PushBatchItem(Generic[T]):
    """One push to write: its (carrier, tracking number, answer) triples, when it came, and its cadence rule."""

    pushed: Sequence[tuple[str, str, T]]
    now: datetime
    decide: Callable[[Shipment, T], FetchSuccess | None]


def match_shipment(shipments: list[Shipment], carrier_code: str) -> Shipment | None:
    """The shipment a push is about: the same carrier, else the only one with that number (stamps_com vs usps)."""
    for shipment in shipments:
        if shipment.carrier_code == carrier_code:
            return shipment
    return shipments[0] if len(shipments) == 1 else None


class PushStore:
    def __init__(self, db: Backend, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox  # a pushed status change is announced like a polled one, in its transaction

    async def find(self, tracking_number: str) -> list[Shipment]:
        """Every shipment with this tracking number (a push's carrier code may differ from ours)."""
        rows = await self.db.fetchall(
            f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE tracking_number = ? ORDER BY id LIMIT 10",
            (tracking_number,),
        )
        return [shipment_row(r) for r in rows]

    async def apply(self, results: Sequence[FetchSuccess], now: datetime) -> PushWrite:
        """Write pushed answers and count the push per shipment, all in one transaction."""
        return await self.match_and_apply([], now, lambda _shipment, _info: None, results)

    async def match_and_apply(
        self,
        pushed: Sequence[tuple[str, str, T]],
        now: datetime,
        decide: Callable[[Shipment, T], FetchSuccess | None],
        results: Sequence[FetchSuccess] = (),
    ) -> PushWrite:
        """
        Match each pushed (carrier, tracking number, answer) to its shipment and write it, in one
        transaction: one trip to the writer per push, none to the reader (bench/bench_push.py).

        *decide* (pure: it runs on the writer thread) turns a matched shipment and its answer into
        the FetchSuccess to write (the push's cadence); numbers no shipment has are reported unmatched.
        """
        done = await self.db.write(lambda conn: self._write_push(conn, PushBatchItem(pushed, now, decide), results))
        self.outbox.poke()
        return done

    async def write_batch(self, items: Sequence[PushBatchItem[T]]) -> list[PushWrite | Exception]:
        """
        Several pushes in one transaction (group commit: push/batch.py), each in a savepoint of its own.

        A push whose write fails alone (a statement error, a bug) is rolled back to its savepoint
        and gets its exception back while the others commit; a store-wide failure (disk full, lock
        held, connection lost) raises, and then none of them is written.
        """
        errors = self.db.errors

        def fn(conn: Conn) -> list[PushWrite | Exception]:
            outcomes: list[PushWrite | Exception] = []
            for item in items:
                conn.execute("SAVEPOINT push")
                try:
                    outcomes.append(self._write_push(conn, item))
                except Exception as exc:
                    conn.execute("ROLLBACK TO push")
                    conn.execute("RELEASE push")
                    if isinstance(exc, errors) and self.db.store_wide(exc):
                        raise
                    outcomes.append(
                        StoreError(f"the push could not be written: {exc}") if isinstance(exc, errors) else exc
                    )
                    continue
                conn.execute("RELEASE push")
            return outcomes

        done = await self.db.write(fn)
        self.outbox.poke()
        return done

    def _write_push(self, conn: Conn, item: PushBatchItem[T], results: Sequence[FetchSuccess] = ()) -> PushWrite:
        """One push: match its numbers, write their answers and the push counters, enqueue its outbox rows."""
        stamp = to_db(item.now)
        out = PushWrite()
        todo = list(results)
        written: list[FetchSuccess] = []
        for carrier, number, answer in item.pushed:
            rows = conn.execute(
                f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE tracking_number = ? ORDER BY id LIMIT 10",
                (number,),
            ).fetchall()
            shipment = match_shipment([shipment_row(r) for r in rows], carrier)
            result = item.decide(shipment, answer) if shipment is not None else None
            if result is None:
                out.unmatched.append(number)
            else:
                todo.append(result)
                out.numbers[result.shipment_id] = number
        for result in todo:
            conn.execute("SAVEPOINT pushed")
            try:
                apply_success(conn, result, stamp, out.applied)
            except self.db.errors as exc:  # removed since the push was matched: nothing to write
                conn.execute("ROLLBACK TO pushed")
                conn.execute("RELEASE pushed")
                if self.db.store_wide(exc):
                    raise
                continue
            conn.execute("RELEASE pushed")
            written.append(result)
            # A shipment that pushes is subscribed, whatever we thought; DE and EX end ShipEngine's pushes.
            conn.execute(
                "UPDATE shipments SET last_push_at = ?, push_count = push_count + 1, push_missed = 0,"
                " subscribed_at = CASE WHEN status_code IN ('DE', 'EX') THEN NULL"
                " ELSE coalesce(subscribed_at, ?) END WHERE id = ?",
                (stamp, stamp, result.shipment_id),
            )
            out.shipment_ids.append(result.shipment_id)
        self.outbox.enqueue(conn, changes(written, out.applied), item.now)
        return out

    # --- subscriptions ---------------------------------------------------------------

    async def to_subscribe(self, limit: int, elsewhere: Elsewhere = NOWHERE) -> builtins.list[Shipment]:
        """
        Active shipments not subscribed yet, oldest first; not delivered ones (nothing more to push),
        nor those another account tracks (*elsewhere*: its pushes would be that parcel seen anew).

        An exception is subscribed again: ShipEngine stops pushing after one, and exceptions recover.
        """
        clause, params = elsewhere.sql()
        rows = await self.db.fetchall(
            f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE active = 1 AND subscribed_at IS NULL"
            f" AND coalesce(status_code, '') != 'DE' AND NOT {clause} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [shipment_row(r) for r in rows]

    async def to_unsubscribe(self, limit: int, elsewhere: Elsewhere = NOWHERE) -> builtins.list[Shipment]:
        """Subscribed shipments that should not be: inactive (expired, terminal) or tracked by another account."""
        clause, params = elsewhere.sql()
        rows = await self.db.fetchall(
            f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE subscribed_at IS NOT NULL"
            f" AND (active = 0 OR {clause}) ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [shipment_row(r) for r in rows]

    async def mark_subscribed(self, ids: Sequence[str], now: datetime) -> int:
        def fn(conn: Conn) -> int:
            return conn.executemany(
                "UPDATE shipments SET subscribed_at = ? WHERE id = ? AND subscribed_at IS NULL",
                [(to_db(now), i) for i in ids],
            ).rowcount

        return await self.db.write(fn)

    async def mark_unsubscribed(self, ids: Sequence[str]) -> int:
        def fn(conn: Conn) -> int:
            return conn.executemany(
                "UPDATE shipments SET subscribed_at = NULL WHERE id = ?", [(i,) for i in ids]
            ).rowcount

        return await self.db.write(fn)

    async def forget_auto_stopped(self) -> int:
        """
        DE and EX end ShipEngine's pushes by itself: a subscription older than that status is over
        without a stop call (one made since, after an exception, stands).
        """

        def fn(conn: Conn) -> int:
            return conn.execute(
                "UPDATE shipments SET subscribed_at = NULL WHERE subscribed_at IS NOT NULL"
                " AND status_code IN ('DE', 'EX') AND subscribed_at < coalesce(status_changed_at, '')"
            ).rowcount

        return await self.db.write(fn)

    async def count_subscribed(self) -> int:
        return int(
            await self.db.scalar("SELECT count(*) FROM shipments WHERE active = 1 AND subscribed_at IS NOT NULL")
        )

    async def count_subscribed_by_status(self) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT status_code, count(*) FROM shipments WHERE active = 1 AND subscribed_at IS NOT NULL GROUP BY 1"
        )
        return {(r[0] or "none"): r[1] for r in rows}

    async def last_push_at(self) -> datetime | None:
        return from_db(await self.db.scalar("SELECT max(last_push_at) FROM shipments WHERE last_push_at IS NOT NULL"))

    async def pull_forward(self, now: datetime) -> int:
        """The push channel went silent: every shipment waiting on a safety poll is due now (polling takes over)."""

        def fn(conn: Conn) -> int:
            return conn.execute(
                "UPDATE shipments SET next_sync_at = ?, schedule_reason = 'push channel silent: polling'"
                " WHERE active = 1 AND subscribed_at IS NOT NULL AND next_sync_at > ?"
                " AND schedule_reason LIKE 'push:%'",
                (to_db(now), to_db(now)),
            ).rowcount

        return await self.db.write(fn)
