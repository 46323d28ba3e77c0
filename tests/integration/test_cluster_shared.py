"""
One account, one budget, and elected singletons (issue 13 items 3 and 4), on a real PostgreSQL:
the shared token bucket never grants more than its burst plus its rate, a 429's pause reaches
every daemon, and a singleton's advisory lock moves to a standby when its leader's session dies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest
from pg_fixtures import PgServer, pg_connect

from shiptrackd.cluster.budget import SharedBudget
from shiptrackd.cluster.leader import Leadership
from shiptrackd.config import ProviderConfig, load
from shiptrackd.store import Store

pytestmark = pytest.mark.anyio


def provider_config(rate: str, key: str = "TEST_k") -> ProviderConfig:
    env = {
        "SHIPTRACK_DAEMON__STATE_DIR": "/tmp/unused",
        "SHIPTRACK_PROVIDER__API_KEY": key,
        "SHIPTRACK_PROVIDER__RATE_LIMIT": rate,
    }
    return load(None, env=env).provider


@pytest.fixture
async def pg_store(pg_server: PgServer) -> AsyncIterator[Store]:
    """A database of its own: advisory locks are per database, and other tests' daemons take them."""
    store = await Store.open(pg_server.create())
    yield store
    await store.close()


async def test_three_daemons_share_one_bucket_and_one_pause(pg_store: Store) -> None:
    """Three daemons' budgets on one account: together at most burst + rate x elapsed; one pause holds for all."""
    config = provider_config("20/s")
    budgets = [SharedBudget(pg_connect(pg_store), config) for _ in range(3)]
    try:
        assert budgets[0].account == budgets[2].account and "TEST_k" not in budgets[0].account
        started = time.monotonic()
        granted = 0
        for _ in range(10):
            for budget in budgets:
                granted += await budget.try_take() == 0.0
        elapsed = time.monotonic() - started
        assert budgets[0].burst == 2.0
        assert 2 <= granted <= 2 + 20 * elapsed + 1  # the burst, then only what the rate refilled
        assert 0 < await budgets[1].try_take() <= 1 / 20 + 0.01  # the next token is a pace away

        await budgets[0].pause(5.0)  # a 429 answered to one daemon...
        for budget in budgets[1:]:  # ...holds the others: their next token is 5 s away, whatever the bucket holds
            assert 4.5 < await budget.try_take() <= 5.0 and budget.pause_left_s > 4.5
        other = SharedBudget(pg_connect(pg_store), provider_config("20/s", "TEST_other"))
        assert await other.try_take() == 0.0  # another account has its own budget
        await other.aclose()
    finally:
        for budget in budgets:
            await budget.aclose()


async def test_a_singleton_moves_to_a_standby_when_its_leaders_session_dies(pg_store: Store) -> None:
    """Advisory locks on a connection of its own: one leader per singleton; its death frees them at once."""
    names = ["force", "health"]
    first = Leadership(names, pg_connect(pg_store))
    second = Leadership(names, pg_connect(pg_store))
    seen: list[set[str]] = []
    second.on_change = seen.append
    try:
        await first.try_once()
        await second.try_once()
        assert first.held == {"force", "health"} and second.held == set()
        assert first.leads("force") and not second.leads("health") and second.leads("sync")  # sync is no singleton
        assert first._conn is not None
        await first._conn.close()  # the leader's session dies (kill -9, a lost host: the server drops it)
        # The server releases the locks when it has noticed the session end: poll, with a deadline.
        with anyio.fail_after(10):
            while second.held != {"force", "health"}:
                await second.try_once()
                await anyio.sleep(0.02)
        assert seen[-1] == {"force", "health"}
        await first.try_once()  # back, reconnected: a standby now
        assert first.held == set()
    finally:
        for leadership in (first, second):
            if leadership._conn is not None:
                await leadership._conn.close()
