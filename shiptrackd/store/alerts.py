"""
Alert state per check, the alert outbox (which is also the notification log), and silences.

An evaluation commits the new per-check state, the notification's rows (one per channel) and
the report's "evaluated" mark in one transaction: after a crash either all of it happened or
none, so a restart neither re-sends a notice nor loses one. The sender claims a row with
`UPDATE ... WHERE id = ? AND claimed_at IS NULL` and goes on only if that changed a row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .db import to_db
from .rows import from_db
from .sql import Backend, Conn

STATE_COLUMNS = (
    "check_name, level, failing_streak, passing_streak, notified_level, fired_at, last_notified_at, message, value"
)


@dataclass(frozen=True)
class NewNotification:
    """What to send: the same title and body to each of `channels` [(display name, key)]."""

    kind: str
    severity: str
    checks: list[dict[str, Any]]
    title: str
    body: str
    channels: Sequence[tuple[str, str]]


class AlertStore:
    def __init__(self, db: Backend) -> None:
        self.db = db

    # --- per-check state ---------------------------------------------------------------

    async def states(self) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(f"SELECT {STATE_COLUMNS} FROM alert_state ORDER BY check_name")
        out = []
        for r in rows:
            d = dict(r)
            for key in ("fired_at", "last_notified_at"):
                d[key] = from_db(d[key])
            out.append(d)
        return out

    async def commit_evaluation(
        self,
        report_id: int | None,
        states: Sequence[dict[str, Any]],
        notification: NewNotification | None,
        now: datetime,
    ) -> int | None:
        """Save the checks' new state and queue *notification* atomically; its notification id."""

        def fn(conn: Conn) -> int | None:
            stamp = to_db(now)
            conn.executemany(
                "INSERT INTO alert_state (check_name, level, failing_streak, passing_streak, notified_level,"
                " fired_at, last_notified_at, message, value, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (check_name) DO UPDATE SET level = excluded.level,"
                " failing_streak = excluded.failing_streak, passing_streak = excluded.passing_streak,"
                " notified_level = excluded.notified_level, fired_at = excluded.fired_at,"
                " last_notified_at = excluded.last_notified_at, message = excluded.message,"
                " value = excluded.value, updated_at = excluded.updated_at",
                [
                    (
                        s["check_name"],
                        s["level"],
                        s["failing_streak"],
                        s["passing_streak"],
                        s["notified_level"],
                        to_db(s["fired_at"]),
                        to_db(s["last_notified_at"]),
                        s["message"][:500],
                        s["value"],
                        stamp,
                    )
                    for s in states
                ],
            )
            if report_id is not None:
                conn.execute("UPDATE health_reports SET evaluated = 1 WHERE id = ?", (report_id,))
            return _insert_notification(conn, notification, stamp) if notification else None

        return await self.db.write(fn)

    async def queue(self, notification: NewNotification, now: datetime) -> int:
        """Queue a notification outside an evaluation (a test notice); its notification id."""

        def fn(conn: Conn) -> int:
            return _insert_notification(conn, notification, to_db(now))

        return await self.db.write(fn)

    async def notifications_since(self, since: datetime) -> int:
        """Notifications (not test notices) queued since *since*, for the hourly cap."""
        return int(
            await self.db.scalar(
                "SELECT count(DISTINCT notification_id) FROM alerts WHERE created_at >= ? AND kind != 'test'",
                (to_db(since),),
            )
        )

    # --- the outbox --------------------------------------------------------------------

    async def release_claims(self, live_since: datetime | None = None) -> int:
        """Rows left 'sending' by a crash go back to pending (at-least-once: better twice than never).

        With *live_since* (a shared store), only the rows of members not beating since then.
        """
        sql, params = "UPDATE alerts SET status = 'pending', claimed_at = NULL WHERE status = 'sending'", []
        if live_since is not None:
            sql += " AND claimed_by NOT IN (SELECT id FROM cluster_members WHERE heartbeat_at >= ?)"
            params = [to_db(live_since)]

        def fn(conn: Conn) -> int:
            return conn.execute(sql, params).rowcount

        return await self.db.write(fn)

    async def pending(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT * FROM alerts WHERE status = 'pending' AND claimed_at IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [dict(r) for r in rows]

    async def claim(self, row_id: int, now: datetime, owner: str = "") -> bool:
        def fn(conn: Conn) -> bool:
            cur = conn.execute(
                "UPDATE alerts SET status = 'sending', claimed_at = ?, claimed_by = ?"
                " WHERE id = ? AND claimed_at IS NULL",
                (to_db(now), owner, row_id),
            )
            return cur.rowcount == 1

        return await self.db.write(fn)

    async def record_attempt(self, row_id: int, attempts: int, error: str) -> None:
        def fn(conn: Conn) -> None:
            conn.execute("UPDATE alerts SET attempts = ?, error = ? WHERE id = ?", (attempts, error[:500], row_id))

        await self.db.write(fn)

    async def finish(self, row_id: int, status: str, attempts: int, error: str, now: datetime) -> None:
        def fn(conn: Conn) -> None:
            conn.execute(
                "UPDATE alerts SET status = ?, attempts = ?, error = ?, finished_at = ? WHERE id = ?",
                (status, attempts, error[:500], to_db(now), row_id),
            )

        await self.db.write(fn)

    async def deliveries(self, notification_id: int) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT id, channel, status, attempts, error, claimed_at, finished_at FROM alerts"
            " WHERE notification_id = ? ORDER BY id",
            (notification_id,),
        )
        return [dict(r) for r in rows]

    async def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The last *limit* notifications, newest first, each with its per-channel deliveries."""
        ids = [
            r[0]
            for r in await self.db.fetchall(
                "SELECT DISTINCT notification_id FROM alerts ORDER BY notification_id DESC LIMIT ?", (limit,)
            )
        ]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(f"SELECT * FROM alerts WHERE notification_id IN ({marks}) ORDER BY id", ids)
        by_id: dict[int, dict[str, Any]] = {}
        for r in rows:
            n = by_id.setdefault(
                r["notification_id"],
                {
                    "id": r["notification_id"],
                    "created_at": r["created_at"],
                    "kind": r["kind"],
                    "severity": r["severity"],
                    "checks": json.loads(r["checks"]),
                    "title": r["title"],
                    "body": r["body"],
                    "deliveries": [],
                },
            )
            n["deliveries"].append(
                {
                    "channel": r["channel"],
                    "status": r["status"],
                    "attempts": r["attempts"],
                    "error": r["error"],
                    "finished_at": r["finished_at"],
                }
            )
        return [by_id[i] for i in ids if i in by_id]

    # --- silences ----------------------------------------------------------------------

    async def add_silence(self, check_name: str, until: datetime, comment: str, now: datetime) -> dict[str, Any]:
        def fn(conn: Conn) -> int:
            cur = conn.execute(
                "INSERT INTO silences (check_name, created_at, until_at, comment) VALUES (?, ?, ?, ?) RETURNING id",
                (check_name, to_db(now), to_db(until), comment),
            )
            return int(cur.fetchone()[0])

        silence_id = await self.db.write(fn)
        row = await self.db.fetchone("SELECT * FROM silences WHERE id = ?", (silence_id,))
        return dict(row) if row else {"id": silence_id}

    async def silences(self, now: datetime, include_expired: bool = False) -> list[dict[str, Any]]:
        if include_expired:
            rows = await self.db.fetchall("SELECT * FROM silences ORDER BY id DESC LIMIT 200")
        else:
            rows = await self.db.fetchall(
                "SELECT * FROM silences WHERE removed_at IS NULL AND until_at > ? ORDER BY until_at", (to_db(now),)
            )
        return [dict(r) for r in rows]

    async def remove_silence(self, silence_id: int, now: datetime) -> bool:
        def fn(conn: Conn) -> bool:
            cur = conn.execute(
                "UPDATE silences SET removed_at = ? WHERE id = ? AND removed_at IS NULL", (to_db(now), silence_id)
            )
            return cur.rowcount == 1

        return await self.db.write(fn)


def _insert_notification(conn: Conn, n: NewNotification, stamp: str | None) -> int:
    notification_id = int(conn.execute("SELECT coalesce(max(notification_id), 0) + 1 FROM alerts").fetchone()[0])
    conn.executemany(
        "INSERT INTO alerts (notification_id, created_at, kind, severity, checks, title, body, channel, channel_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (notification_id, stamp, n.kind, n.severity, json.dumps(n.checks), n.title, n.body, name, key)
            for name, key in n.channels
        ],
    )
    return notification_id
