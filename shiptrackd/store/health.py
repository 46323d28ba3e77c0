"""
Health reports, and the store's own health: a tiny write, an integrity check, stale shipments.

The expensive reads (PRAGMA quick_check, counting stale shipments over a large store) run on a
short-lived read-only connection in a worker thread, never on the shared reader connection, so a
status query is not queued behind them.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from .db import to_db
from .rows import SHIPMENT_COLUMNS, HealthRecord, Shipment, at_db, shipment_row
from .sql import Backend, Conn

_REPORT_COLUMNS = "id, at, level, summary, report"


def _record(r: Any) -> HealthRecord:
    return HealthRecord(id=r[0], at=at_db(r[1]), level=r[2], summary=r[3], report={**json.loads(r[4]), "id": r[0]})


class HealthStore:
    def __init__(self, db: Backend) -> None:
        self.db = db

    # --- reports ---------------------------------------------------------------------

    async def save_report(self, report: dict[str, Any], trigger: str, *, evaluated: bool = False) -> HealthRecord:
        """Store a report (the dict the API serves), as stored. Old ones go in the retention loop (store/retention.py).

        `evaluated=True` keeps it out of the alert rules (a report an operator asked for).
        """
        at = datetime.fromisoformat(report["at"])

        def fn(conn: Conn) -> int:
            cur = conn.execute(
                "INSERT INTO health_reports (at, level, summary, trigger, report, evaluated) VALUES (?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (
                    to_db(at),
                    report["level"],
                    report["summary"],
                    trigger,
                    json.dumps(report, default=str),
                    int(evaluated),
                ),
            )
            return int(cur.fetchone()[0])

        report_id = await self.db.write(fn)
        return HealthRecord(
            id=report_id, at=at, level=report["level"], summary=report["summary"], report={**report, "id": report_id}
        )

    async def latest(self) -> HealthRecord | None:
        row = await self.db.fetchone(f"SELECT {_REPORT_COLUMNS} FROM health_reports ORDER BY id DESC LIMIT 1")
        return None if row is None else _record(row)

    async def unevaluated(self, limit: int = 20) -> list[HealthRecord]:
        """Reports the alert rules have not seen yet, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {_REPORT_COLUMNS} FROM health_reports WHERE evaluated = 0 ORDER BY id LIMIT ?", (limit,)
        )
        return [_record(r) for r in rows]

    # --- metrics -----------------------------------------------------------------------

    async def shipment_mix(self) -> list[tuple[str, bool, int]]:
        """(status, active, count) over every shipment, from shipment_tally (a few rows, not a scan)."""
        rows = await self.db.fetchall(
            "SELECT CASE status_code WHEN '' THEN 'none' ELSE status_code END, active, n FROM shipment_tally"
            " WHERE n > 0 ORDER BY 1, 2"
        )
        return [(r[0], bool(r[1]), r[2]) for r in rows]

    async def run_counts(self) -> list[tuple[str, str, int]]:
        """(trigger, outcome, count) of finished sync runs."""
        rows = await self.db.fetchall(
            "SELECT trigger, outcome, count(*) FROM sync_runs WHERE outcome != 'running' GROUP BY 1, 2"
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # --- the store's own checks --------------------------------------------------------

    async def probe_write(self, now: datetime) -> float:
        """Commit one tiny row through the writer; the seconds it took (StoreError if it cannot)."""
        started = time.perf_counter()

        def fn(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO store_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (to_db(now),),
            )

        await self.db.write(fn)
        return time.perf_counter() - started

    async def quick_check(self) -> str:
        """The backend's own integrity check on a connection of its own: "ok", or its first complaints."""
        return await self.db.quick_check()

    async def stale(self, older_than: datetime, limit: int) -> tuple[int, int, list[Shipment]]:
        """(stale count, active count, the *limit* stalest) for active shipments not updated since *older_than*."""
        cutoff = to_db(older_than)

        def fn(conn: Conn) -> tuple[int, int, list[Shipment]]:
            count, active = conn.execute(
                "SELECT count(*) FILTER (WHERE coalesce(last_synced_at, created_at) < ?), count(*)"
                " FROM shipments WHERE active = 1",
                (cutoff,),
            ).fetchone()
            top = []
            if limit and count:
                top = [
                    shipment_row(r)
                    for r in conn.execute(
                        f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE active = 1"
                        " AND coalesce(last_synced_at, created_at) < ?"
                        " ORDER BY coalesce(last_synced_at, created_at) LIMIT ?",
                        (cutoff, limit),
                    )
                ]
            return int(count), int(active), top

        return await self.db.isolated_read(fn)
