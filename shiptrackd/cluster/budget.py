"""
One account, one budget: the provider's rate limit and its Retry-After pause shared by every daemon
on a PostgreSQL store.

A token bucket in one row of `rate_budget` (migration 5), refilled at the account's rate and
debited one token per request by a single UPDATE on a connection of its own (the sync writer's
transactions never queue it). Times are the database server's clock (clock_timestamp()), so the
daemons' clocks need not agree. A 429 anywhere moves `paused_until`, and every daemon's next
request waits it out. The bucket holds at most BURST_SHARE of the limit's own burst, so the
requests of all daemons together stay under the provider's bucket even when their arrival jitters.
If the database cannot be reached the throttle goes on with its own pace and pause (logged once).
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import anyio
from loguru import logger

from ..config import ProviderConfig

if TYPE_CHECKING:
    import psycopg

BURST_SHARE = 0.1  # of the limit's count: 5 of "50/s"
_NOW = "extract(epoch from clock_timestamp())::float8"
_TAKE = f"""
WITH cur AS (
    SELECT b.account, b.paused_until, {_NOW} AS t,
           least(%(burst)s, b.tokens + ({_NOW} - b.refilled_at) * %(rate)s) AS avail
      FROM rate_budget b WHERE b.account = %(account)s FOR UPDATE
)
UPDATE rate_budget r
   SET tokens = cur.avail - CASE WHEN cur.paused_until <= cur.t AND cur.avail >= 1 THEN 1 ELSE 0 END,
       refilled_at = cur.t
  FROM cur WHERE r.account = cur.account
RETURNING CASE WHEN cur.paused_until <= cur.t AND cur.avail >= 1 THEN 0.0
               ELSE greatest(cur.paused_until - cur.t, (1 - cur.avail) / %(rate)s) END,
          greatest(cur.paused_until - cur.t, 0.0)
"""
_CREATE = (
    f"INSERT INTO rate_budget (account, tokens, refilled_at, paused_until) VALUES (%s, %s, {_NOW}, 0)"
    " ON CONFLICT (account) DO NOTHING"
)
_PAUSE = f"UPDATE rate_budget SET paused_until = greatest(paused_until, {_NOW} + %s) WHERE account = %s"


def account_key(config: ProviderConfig) -> str:
    """Which account a budget belongs to: the provider, its URL and a hash of its key (never the key)."""
    digest = hashlib.sha256(config.api_key.get().encode()).hexdigest()[:16]
    return f"{config.name}:{config.base_url}:{digest}"


class SharedBudget:
    """Take a token (or learn how long to wait) from the cluster's bucket; spread a 429's pause."""

    def __init__(self, connect: Any, config: ProviderConfig) -> None:
        self._connect = connect  # async () -> psycopg.AsyncConnection (autocommit)
        self.account = account_key(config)
        limit = config.rate_limit
        self.rate = limit.per_second if limit else 1e9  # no limit configured: only the shared pause
        self.burst = max(1.0, math.floor(limit.count * BURST_SHARE)) if limit else 1e9
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = anyio.Lock()
        self._failing = False
        self.pause_left_s = 0.0  # the shared pause as last seen (status shows it)
        self.taken = 0

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
            await self._conn.execute(_CREATE, (self.account, self.burst))
        return self._conn

    async def _call(self, sql: str, params: dict[str, Any] | tuple[Any, ...]) -> Any:
        from psycopg import Error as PgError  # here: a SQLite daemon never loads psycopg

        async with self._lock:
            try:
                conn = await self._connection()
                cursor = await conn.execute(sql, params)
                row = await cursor.fetchone() if cursor.description else None
            except PgError as exc:
                if self._conn is not None:
                    await self._conn.close()
                    self._conn = None
                if not self._failing:
                    logger.warning("shared rate budget unavailable, pacing alone until it is back: {}", exc)
                self._failing = True
                return None
            if self._failing:
                logger.info("shared rate budget available again")
                self._failing = False
            return row

    async def try_take(self) -> float:
        """Take a token now (0.0), or how many seconds until one may be free (the pause included)."""
        row = await self._call(_TAKE, {"account": self.account, "burst": self.burst, "rate": self.rate})
        if row is None:  # unreachable: the local pacer alone
            return 0.0
        wait_s, self.pause_left_s = float(row[0]), float(row[1])
        if wait_s <= 0:
            self.taken += 1
        return max(wait_s, 0.0)

    async def take(self) -> None:
        """Return when this daemon may send one request under the cluster's limit and pause."""
        while True:
            wait_s = await self.try_take()
            if not wait_s:
                return
            await anyio.sleep(wait_s)  # a pace or a pause away: the bucket says how long

    async def pause(self, seconds: float) -> None:
        """A 429's Retry-After holds for every daemon on the account."""
        await self._call(_PAUSE, (seconds, self.account))
        self.pause_left_s = max(self.pause_left_s, seconds)

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


__all__ = ["SharedBudget", "account_key"]
