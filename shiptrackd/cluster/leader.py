"""
Singletons elected, not configured: on a PostgreSQL store the schedule-like loops (force sync,
health evaluation feeding alerts, alert evaluation, retention, the outside heartbeat) run on one
daemon of the cluster at a time.

Each singleton is a session-level `pg_try_advisory_lock` held on a connection of its own
(reference/webhooks.md): the server releases it when that connection dies, so a killed or
partitioned leader loses it with no extra machinery, and a standby takes it at its next try
(every TRY_EVERY_S; TCP keepalives bound how long a dead host's connection lingers). On SQLite
there is one daemon, which leads everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus
from loguru import logger

if TYPE_CHECKING:
    import psycopg

TRY_EVERY_S = 5.0  # a standby's next try: failover within this (plus keepalive detection)
LOCK_NAMESPACE = 0x5348_5054  # "SHPT": the first key of the two-int advisory lock


def lock_key(name: str) -> int:
    """A stable 31-bit key for a singleton's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFF_FFFF


class Leadership:
    """Which singletons this daemon leads now; `leads(name)` is what a loop body asks before it runs."""

    def __init__(self, names: list[str], connect: Callable[[], Awaitable[Any]] | None) -> None:
        self.names = list(names)
        self._connect = connect  # None: a store of one daemon (SQLite), which leads everything
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.held: set[str] = set(names) if connect is None else set()
        self.on_change: Callable[[set[str]], None] = lambda held: None

    def leads(self, name: str) -> bool:
        return name not in self.names or name in self.held

    async def try_once(self) -> None:
        """Take every free singleton; notice a lost connection (all lost)."""
        if self._connect is None:
            return
        from psycopg import Error as PgError  # here: a SQLite daemon never loads psycopg

        before = set(self.held)
        try:
            if self._conn is None or self._conn.closed:
                self.held.clear()
                self._conn = await self._connect()
            for name in self.names:
                if name in self.held:
                    continue
                cursor = await self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, lock_key(name))
                )
                row = await cursor.fetchone()
                if row and row[0]:
                    self.held.add(name)
            await self._conn.execute("SELECT 1")  # a dead connection shows here, not at the next try
        except PgError as exc:
            self.held.clear()
            if self._conn is not None:
                with anyio.CancelScope(shield=True):
                    await self._conn.close()
            self._conn = None
            logger.warning("leader election: store unreachable, leading nothing until it is back: {}", exc)
        if self.held != before:
            gained, lost = sorted(self.held - before), sorted(before - self.held)
            logger.info(
                "leader election: now leading {} (took {}, lost {})", sorted(self.held) or "nothing", gained, lost
            )
            self.on_change(set(self.held))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.try_once()
        task_status.started()
        if self._connect is None:
            return
        try:
            while True:
                await anyio.sleep(TRY_EVERY_S)
                await self.try_once()
        finally:
            if self._conn is not None:
                with anyio.CancelScope(shield=True):
                    await self._conn.close()  # the server releases every lock this session held


__all__ = ["LOCK_NAMESPACE", "Leadership", "TRY_EVERY_S", "lock_key"]
