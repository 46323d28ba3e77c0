"""
Sync runs, their error audit trail, and the timer loops' remembered state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from .db import to_db
from .rows import RUN_COLUMNS, LoopState, Run, RunTotals, from_db, run_row
from .sql import Backend, Conn


@dataclass
class RunCounts:
    selected: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0


class RunStore:
    def __init__(self, db: Backend) -> None:
        self.db = db

    async def start(self, trigger: str, now: datetime, owner: str = "") -> int:
        def fn(conn: Conn) -> int:
            cur = conn.execute(
                "INSERT INTO sync_runs (trigger, started_at, owner) VALUES (?, ?, ?) RETURNING id",
                (trigger, to_db(now), owner),
            )
            return int(cur.fetchone()[0])

        return await self.db.write(fn)

    async def finish(self, run_id: int, counts: RunCounts, outcome: str, stop_reason: str, now: datetime) -> None:
        values = asdict(counts)

        def fn(conn: Conn) -> None:
            conn.execute(
                "UPDATE sync_runs SET finished_at = ?, selected = ?, updated = ?, unchanged = ?, failed = ?,"
                " skipped = ?, api_calls = ?, retries = ?, rate_limited = ?, outcome = ?, stop_reason = ?"
                " WHERE id = ?",
                (
                    to_db(now),
                    values["selected"],
                    values["updated"],
                    values["unchanged"],
                    values["failed"],
                    values["skipped"],
                    values["api_calls"],
                    values["retries"],
                    values["rate_limited"],
                    outcome,
                    stop_reason,
                    run_id,
                ),
            )

        await self.db.write(fn)

    async def add_error(
        self, run_id: int | None, kind: str, message: str, now: datetime, http_status: int | None = None
    ) -> None:
        """A run-level failure (bad key, circuit open) that belongs to no single shipment."""

        def fn(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO sync_errors (run_id, occurred_at, kind, message, http_status) VALUES (?, ?, ?, ?, ?)",
                (run_id, to_db(now), kind, message[:500], http_status),
            )

        await self.db.write(fn)

    async def interrupt_orphans(self, now: datetime, live_since: datetime | None = None) -> int:
        """Runs left 'running' by a crash or kill -9 are marked interrupted at the next start.

        With *live_since*, the runs of members whose heartbeat is that recent are left alone: on a
        shared store they belong to daemons still running.
        """
        live = " AND owner NOT IN (SELECT id FROM cluster_members WHERE heartbeat_at >= ?)" if live_since else ""
        params = (to_db(now),) if live_since is None else (to_db(now), to_db(live_since))

        def fn(conn: Conn) -> int:
            return conn.execute(
                "UPDATE sync_runs SET outcome = 'interrupted', finished_at = ?,"
                " stop_reason = 'the daemon stopped during the run' WHERE outcome = 'running'" + live,
                params,
            ).rowcount

        return await self.db.write(fn)

    async def get(self, run_id: int) -> Run | None:
        row = await self.db.fetchone(f"SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = ?", (run_id,))
        return None if row is None else run_row(row)

    async def recent(self, limit: int = 20) -> list[Run]:
        """The last *limit* runs, newest first."""
        rows = await self.db.fetchall(f"SELECT {RUN_COLUMNS} FROM sync_runs ORDER BY id DESC LIMIT ?", (limit,))
        return [run_row(r) for r in rows]

    async def last_successful(self) -> Run | None:
        row = await self.db.fetchone(
            f"SELECT {RUN_COLUMNS} FROM sync_runs WHERE outcome IN ('ok', 'partial') ORDER BY id DESC LIMIT 1"
        )
        return None if row is None else run_row(row)

    async def totals_since(self, since: datetime) -> RunTotals:
        """Summed run counters since *since* (runs, attempts, failures, API calls, retries, 429s)."""
        row = await self.db.fetchone(
            "SELECT count(*) AS runs, coalesce(sum(selected), 0) AS selected, coalesce(sum(updated), 0) AS updated,"
            " coalesce(sum(unchanged), 0) AS unchanged, coalesce(sum(failed), 0) AS failed,"
            " coalesce(sum(api_calls), 0) AS api_calls, coalesce(sum(retries), 0) AS retries,"
            " coalesce(sum(rate_limited), 0) AS rate_limited FROM sync_runs WHERE started_at >= ?",
            (to_db(since),),
        )
        assert row is not None
        return RunTotals(
            runs=row[0],
            selected=row[1],
            updated=row[2],
            unchanged=row[3],
            failed=row[4],
            api_calls=row[5],
            retries=row[6],
            rate_limited=row[7],
        )

    async def errors_by_kind(self, since: datetime) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT kind, count(*) FROM sync_errors WHERE occurred_at >= ? GROUP BY kind ORDER BY 2 DESC",
            (to_db(since),),
        )
        return {r[0]: r[1] for r in rows}

    # --- loop state ----------------------------------------------------------------

    async def loop_states(self) -> dict[str, LoopState]:
        """Each timer loop's remembered state, by loop name."""
        rows = await self.db.fetchall("SELECT name, last_run_at, last_outcome, paused FROM loop_state")
        return {r[0]: LoopState(last_run_at=from_db(r[1]), last_outcome=r[2], paused=bool(r[3])) for r in rows}

    async def save_loop(self, name: str, last_run_at: datetime | None, last_outcome: str, paused: bool) -> None:
        def fn(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO loop_state (name, last_run_at, last_outcome, paused) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at,"
                " last_outcome = excluded.last_outcome, paused = excluded.paused",
                (name, to_db(last_run_at), last_outcome, int(paused)),
            )

        await self.db.write(fn)
