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
from .rows import AlertRow, AlertStateRow, DeliveryRow, NotificationRow, SilenceRow, at_db, from_db
from .sql import Backend, Conn

STATE_COLUMNS = (
    "check_name, level, failing_streak, passing_streak, notified_level, fired_at, last_notified_at, message, value"
)
ALERT_COLUMNS = (
    "id, notification_id, created_at, kind, severity, checks, title, body, channel, channel_key, status, attempts,"
    " claimed_at, finished_at, error"
)
DELIVERY_COLUMNS = "id, channel, status, attempts, error, claimed_at, finished_at"
SILENCE_COLUMNS = "id, check_name, created_at, until_at, comment, removed_at"


def _alert(r: Any) -> AlertRow:
    return AlertRow(
        id=r[0],
        notification_id=r[1],
        created_at=at_db(r[2]),
        kind=r[3],
        severity=r[4],
        checks=json.loads(r[5]),
        title=r[6],
        body=r[7],
        channel=r[8],
        channel_key=r[9],
        status=r[10],
        attempts=r[11],
        claimed_at=from_db(r[12]),
        finished_at=from_db(r[13]),
        error=r[14],
    )


def _delivery(r: Any) -> DeliveryRow:
    return DeliveryRow(
        id=r[0],
        channel=r[1],
        status=r[2],
        attempts=r[3],
        error=r[4],
        claimed_at=from_db(r[5]),
        finished_at=from_db(r[6]),
    )


def _silence(r: Any) -> SilenceRow:
    return SilenceRow(
        id=r[0],
        check_name=r[1],
        created_at=at_db(r[2]),
        until_at=at_db(r[3]),
        comment=r[4],
        removed_at=from_db(r[5]),
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

    async def states(self) -> list[AlertStateRow]:
        rows = await self.db.fetchall(f"SELECT {STATE_COLUMNS} FROM alert_state ORDER BY check_name")
        return [
            AlertStateRow(
                check_name=r[0],
                level=r[1],
                failing_streak=r[2],
                passing_streak=r[3],
                notified_level=r[4],
                fired_at=from_db(r[5]),
                last_notified_at=from_db(r[6]),
                message=r[7],
                value=r[8],
            )
            for r in rows
        ]

    async def commit_evaluation(
        self,
        report_id: int | None,
        states: Sequence[AlertStateRow],
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
                        s.check_name,
                        s.level,
                        s.failing_streak,
                        s.passing_streak,
                        s.notified_level,
                        to_db(s.fired_at),
                        to_db(s.last_notified_at),
                        s.message[:500],
                        s.value,
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

    async def pending(self, limit: int = 50) -> list[AlertRow]:
        rows = await self.db.fetchall(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'pending' AND claimed_at IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [_alert(r) for r in rows]

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

    async def deliveries(self, notification_id: int) -> list[DeliveryRow]:
        rows = await self.db.fetchall(
            f"SELECT {DELIVERY_COLUMNS} FROM alerts WHERE notification_id = ? ORDER BY id", (notification_id,)
        )
        return [_delivery(r) for r in rows]

    async def recent(self, limit: int = 20) -> list[NotificationRow]:
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
        rows = await self.db.fetchall(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE notification_id IN ({marks}) ORDER BY id", ids
        )
        by_id: dict[int, NotificationRow] = {}
        for row in map(_alert, rows):
            n = by_id.setdefault(
                row.notification_id,
                NotificationRow(
                    id=row.notification_id,
                    created_at=row.created_at,
                    kind=row.kind,
                    severity=row.severity,
                    checks=row.checks,
                    title=row.title,
                    body=row.body,
                    deliveries=[],
                ),
            )
            n.deliveries.append(
                DeliveryRow(
                    id=row.id,
                    channel=row.channel,
                    status=row.status,
                    attempts=row.attempts,
                    error=row.error,
                    claimed_at=row.claimed_at,
                    finished_at=row.finished_at,
                )
            )
        return [by_id[i] for i in ids if i in by_id]

    # --- silences ----------------------------------------------------------------------

    async def add_silence(self, check_name: str, until: datetime, comment: str, now: datetime) -> SilenceRow:
        def fn(conn: Conn) -> int:
            cur = conn.execute(
                "INSERT INTO silences (check_name, created_at, until_at, comment) VALUES (?, ?, ?, ?) RETURNING id",
                (check_name, to_db(now), to_db(until), comment),
            )
            return int(cur.fetchone()[0])

        silence_id = await self.db.write(fn)
        row = await self.db.fetchone(f"SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
        assert row is not None  # just written by this daemon; only `remove_silence` marks one, never deletes
        return _silence(row)

    async def silences(self, now: datetime, include_expired: bool = False) -> list[SilenceRow]:
        """The active silences, soonest to end first; with *include_expired*, the last 200 of any kind."""
        if include_expired:
            rows = await self.db.fetchall(f"SELECT {SILENCE_COLUMNS} FROM silences ORDER BY id DESC LIMIT 200")
        else:
            rows = await self.db.fetchall(
                f"SELECT {SILENCE_COLUMNS} FROM silences WHERE removed_at IS NULL AND until_at > ? ORDER BY until_at",
                (to_db(now),),
            )
        return [_silence(r) for r in rows]

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
