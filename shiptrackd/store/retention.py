"""
Retention: delete history older than the configured ages, give the space back, and measure the tables.

What is old enough is decided by `cutoffs(now, config)`, a pure function. The deletes run in
batches of BATCH_ROWS, each its own short write transaction, with a yield between them: the
writer lock is fair, so a sync's batch waiting for it goes next and is delayed by one small
delete at most, never by the whole backlog. Freed pages go back to the file system with
`PRAGMA incremental_vacuum` (stores created since migration 4 have auto_vacuum=INCREMENTAL;
older ones reuse freed pages but do not shrink until converted, see packaging/README.md §8).

The table figures that `status` shows come from a connection of its own in a thread: counting
ten million events takes a second, which the status path (p99 < 10 ms) cannot pay on each call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from loguru import logger

from ..config import StoreConfig
from ..units import format_rfc3339
from .db import sqlite_measure, to_db
from .sql import Backend, Conn

BATCH_ROWS = 1000  # rows deleted per transaction
TERMINAL_BATCH = 100  # terminal shipments whose events go per transaction (some ten events each)
TABLES = ("shipments", "tracking_events", "sync_runs", "sync_errors", "health_reports", "alerts", "outbox")


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these times are deleted (for terminal shipments: their events)."""

    runs_before: datetime
    errors_before: datetime
    health_before: datetime
    alerts_before: datetime
    terminal_before: datetime
    deliveries_before: datetime | None = None  # None: keep every finished webhook


def cutoffs(now: datetime, config: StoreConfig) -> Cutoffs:
    """What is old enough at *now*; errors are never kept longer than the runs they belong to."""
    runs = now - timedelta(seconds=config.keep_runs)
    return Cutoffs(
        runs_before=runs,
        errors_before=max(now - timedelta(seconds=config.keep_errors), runs),
        health_before=now - timedelta(seconds=config.keep_health),
        alerts_before=now - timedelta(seconds=config.keep_alerts),
        terminal_before=now - timedelta(seconds=config.keep_terminal),
        deliveries_before=now - timedelta(seconds=config.keep_deliveries),
    )


@dataclass
class RetentionResult:
    """What one pass deleted, by kind, and the pages it gave back."""

    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    pages_freed: int = 0
    duration_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


# Each statement deletes at most `?` rows older than `?`, oldest first, through the time index.
_DELETES = {
    "sync_errors": "DELETE FROM sync_errors WHERE id IN"
    " (SELECT id FROM sync_errors WHERE occurred_at < ? ORDER BY occurred_at LIMIT ?)",
    "sync_runs": "DELETE FROM sync_runs WHERE id IN (SELECT id FROM sync_runs WHERE started_at < ?"
    " AND outcome != 'running'"
    " AND id != coalesce((SELECT max(id) FROM sync_runs WHERE outcome IN ('ok', 'partial')), 0)"
    " ORDER BY started_at LIMIT ?)",
    "health_reports": "DELETE FROM health_reports WHERE id IN (SELECT id FROM health_reports"
    " WHERE at < ? AND evaluated = 1 AND id != (SELECT max(id) FROM health_reports) ORDER BY at LIMIT ?)",
    "alerts": "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE created_at < ?"
    " AND status IN ('sent', 'failed') ORDER BY created_at LIMIT ?)",
    # Finished webhooks only (their attempts cascade); undelivered ones are never deleted.
    "outbox": "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE finished_at < ?"
    " AND state IN ('delivered', 'dead') ORDER BY finished_at LIMIT ?)",
}
# A bounded range scan of the shipments_terminal index (migration 4), whether or not events remain.
_TERMINAL_SQL = (
    "SELECT id, updated_at FROM shipments WHERE active = 0 AND updated_at < ? AND (updated_at, id) > (?, ?)"
    " ORDER BY updated_at, id LIMIT ?"
)


class RetentionStore:
    """Batched deletes, incremental vacuum, and the last measurement of the tables."""

    def __init__(self, db: Backend) -> None:
        self.db = db
        self.figures: dict[str, Any] | None = None  # the last measure(); None until the first
        # Terminal shipments below this updated_at were emptied by an earlier pass: the next one
        # starts here, so an hourly pass walks only the newly old ones, not every terminal shipment.
        self._terminal_done_before = ""

    async def run_once(self, cut: Cutoffs, *, batch_rows: int = BATCH_ROWS) -> RetentionResult:
        """Delete everything older than *cut*, batch by batch, then vacuum; what was done."""
        started = time.monotonic()
        result = RetentionResult()
        when = {
            "sync_errors": cut.errors_before,
            "sync_runs": cut.runs_before,
            "health_reports": cut.health_before,
            "alerts": cut.alerts_before,
            "outbox": cut.deliveries_before,
        }
        for kind, sql in _DELETES.items():
            if when[kind] is None:
                continue
            result.deleted[kind] = 0
            params = (to_db(when[kind]), batch_rows)

            def delete(conn: Conn, sql: str = sql, params: tuple[Any, ...] = params) -> int:
                return int(conn.execute(sql, params).rowcount)

            while True:
                n = await self.db.write(delete)
                result.deleted[kind] += n
                result.batches += 1
                await anyio.lowlevel.checkpoint()  # let a waiting writer (a sync batch) go first
                if n < batch_rows:
                    break
        result.deleted["terminal_events"] = await self._drop_terminal_events(cut.terminal_before, result)
        result.pages_freed = await self.vacuum()
        result.duration_s = round(time.monotonic() - started, 3)
        return result

    async def _drop_terminal_events(self, before: datetime, result: RetentionResult) -> int:
        """Events of shipments inactive since before *before*, walked by (updated_at, id) so none is seen twice."""
        deleted = 0
        stamp = to_db(before) or ""
        key = (self._terminal_done_before, "")

        def batch(conn: Conn) -> tuple[int, tuple[str, str] | None]:
            rows = conn.execute(_TERMINAL_SQL, (stamp, key[0], key[1], TERMINAL_BATCH)).fetchall()
            if not rows:
                return 0, None
            ids = [r[0] for r in rows]
            marks = ",".join("?" * len(ids))
            n = conn.execute(f"DELETE FROM tracking_events WHERE shipment_id IN ({marks})", ids).rowcount
            return n, (rows[-1][1], rows[-1][0])

        while True:
            n, last = await self.db.write(batch)
            deleted += n
            result.batches += 1
            await anyio.lowlevel.checkpoint()
            if last is None:
                self._terminal_done_before = max(self._terminal_done_before, stamp)
                return deleted
            key = last

    async def vacuum(self) -> int:
        """Give free space back, a bounded step per transaction; how many pages (0 where the backend does it itself)."""
        freed = 0
        while n := await self.db.vacuum_step():
            freed += n
            await anyio.lowlevel.checkpoint()
        return freed

    async def measure(self, now: datetime) -> dict[str, Any]:
        """Rows and bytes per table (indexes included), free space and the vacuum mode; kept in `figures`."""
        figures = await self.db.measure_tables(TABLES)
        figures["measured_at"] = format_rfc3339(now)
        self.figures = figures
        return figures


async def retention_pass(retention: RetentionStore, config: StoreConfig, now: datetime) -> str:
    """The retention loop's body: delete what the config calls old, vacuum, measure the tables for status."""
    result = await retention.run_once(cutoffs(now, config))
    figures = await retention.measure(now)
    rows = sum(t["rows"] for t in figures["tables"].values())
    log = logger.bind(loop="retention", deleted=result.deleted, pages_freed=result.pages_freed, rows=rows)
    log.log(
        "INFO" if result.total else "DEBUG",
        "retention deleted={} ({}) pages_freed={} in {:.2f}s",
        result.total,
        ", ".join(f"{kind} {n}" for kind, n in result.deleted.items() if n) or "nothing",
        result.pages_freed,
        result.duration_s,
    )
    return f"deleted {result.total} rows in {result.batches} batches, freed {result.pages_freed} pages"


def measure_tables(path: Path) -> dict[str, Any]:
    """The figures of the SQLite file at *path* (bench/bench_retention.py measures a template with it)."""
    return sqlite_measure(path, TABLES)
