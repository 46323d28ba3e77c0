"""
One account, one budget, and elected singletons (issue 13 items 3 and 4), on a real PostgreSQL:
the shared token bucket never grants more than its burst plus its rate, a 429's pause reaches
every daemon, every `[[providers]]` account of two real daemons is on a budget of its own, and a
singleton's advisory lock moves to a standby when its leader's session dies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import SANDBOX_KEY, daemon_config, quiet_daemon_env
from pg_fixtures import PgServer, pg_connect

from shiptrackd.api.client import ApiClient
from shiptrackd.cluster.budget import SharedBudget
from shiptrackd.cluster.leader import Leadership
from shiptrackd.config import ProviderConfig, load
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.sandbox.seventeen import PREFIX
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
        # Drained, the bucket grants no more than the rate refills: soon a caller is told to wait, and
        # never more than one pace (taking in a loop, as a slow box may have refilled a token or two).
        waits = [await budgets[1].try_take() for _ in range(20)]
        assert any(w > 0 for w in waits) and max(waits) <= 1 / 20 + 0.01

        paused = time.monotonic()
        await budgets[0].pause(5.0)  # a 429 answered to one daemon...
        for budget in budgets[1:]:  # ...holds the others: their next token is 5 s away, whatever the bucket holds
            wait = await budget.try_take()
            left = 5.0 - (time.monotonic() - paused)  # measured after: the server's interval lies inside ours
            assert left < wait <= 5.0 and budget.pause_left_s > left
        other = SharedBudget(pg_connect(pg_store), provider_config("20/s", "TEST_other"))
        assert await other.try_take() == 0.0  # another account has its own budget
        await other.aclose()
    finally:
        for budget in budgets:
            await budget.aclose()


KEY17 = "TEST_17track_cluster"


def two_accounts(sandbox: Sandbox) -> str:
    """ShipEngine by default, 17TRACK (its own key, URL and limit) for USPS: two accounts."""
    return f"""
[[providers]]
name = "domestic"
kind = "shipengine"
api_key = "{SANDBOX_KEY}"
base_url = "{sandbox.base_url}"
rate_limit = "none"
default = true

[[providers]]
name = "intl"
kind = "17track"
api_key = "{KEY17}"
base_url = "{sandbox.base_url}{PREFIX}"
rate_limit = "20/s"
carriers = ["usps"]
"""


async def test_every_account_of_two_daemons_is_on_a_shared_budget_of_its_own(
    pg_server: PgServer, short_tmp: Path, sandbox: Sandbox
) -> None:
    """Two daemons, two accounts: every 17TRACK request of both takes its token from one bucket (not the
    default account's), and a 429's pause on one daemon's 17TRACK account holds the other's, not its ShipEngine."""
    sandbox.seventeen.configure(api_key=KEY17)
    url = pg_server.create()
    daemons: list[Any] = []
    async with anyio.create_task_group() as tg:
        for name in ("a", "b"):
            state = short_tmp / name
            state.mkdir()
            (state / "shiptrackd.toml").write_text(two_accounts(sandbox), encoding="utf-8")
            env = quiet_daemon_env(state, sandbox.base_url, SHIPTRACK_STORE__URL=url, SHIPTRACK_SYNC__BATCH_SIZE="40")
            env = {k: v for k, v in env.items() if not k.startswith("SHIPTRACK_PROVIDER__")}
            config = load(state / "shiptrackd.toml", env)
            daemons.append(await tg.start(Daemon(config, handle_signals=False).run))
        clients = [ApiClient(d.config.daemon.socket) for d in daemons]
        numbers = [f"9400INTRANSIT{i:04}" for i in range(400)]
        await clients[0].add_shipments([{"carrier_code": "usps", "tracking_number": n} for n in numbers])
        before = sandbox.stats.total
        runs = [(await c.sync(force=True)).run_id for c in clients]
        with anyio.fail_after(30):
            for client, run_id in zip(clients, runs, strict=True):
                while (await client.run(run_id)).outcome == "running":  # noqa: ASYNC110 - another daemon's run
                    await anyio.sleep(0.05)
        assert set(sandbox.stats.by_number) == set(numbers)
        lanes = [d.engine.account("intl") for d in daemons]
        defaults = [d.engine.throttle for d in daemons]
        assert all(lane.shared is not None for lane in lanes + defaults)
        assert lanes[0].shared.account == lanes[1].shared.account != defaults[0].shared.account
        assert lanes[0].shared.rate == 20.0  # the account's own limit, not the default's
        # Every request to 17TRACK, from either daemon, took a token from the one bucket.
        assert sum(lane.shared.taken for lane in lanes) == sandbox.stats.total - before > 0
        assert sum(d.shared.taken for d in defaults) == 0
        paused = time.monotonic()
        await lanes[0].shared.pause(5.0)  # a 429 answered to daemon A's 17TRACK requests...
        wait = await lanes[1].shared.try_take()
        assert 5.0 - (time.monotonic() - paused) < wait <= 5.0  # ...holds daemon B's
        assert await defaults[1].shared.try_take() == 0.0  # and not its other account
        assert await daemons[0].store.db.scalar("SELECT count(*) FROM rate_budget") == 2
        for client in clients:
            await client.aclose()
        for daemon in daemons:
            daemon.stop()


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


async def test_a_reload_with_a_new_key_closes_the_old_budgets_connection(
    pg_server: PgServer, short_tmp: Path, sandbox: Sandbox
) -> None:
    """A rotated key is a new account's budget: the old one's connection closes once the engine is idle."""
    url = pg_server.create()
    before = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_STORE__URL=url)
    after = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_STORE__URL=url, SHIPTRACK_PROVIDER__API_KEY="TEST_b")
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(before, load_config=lambda: after, handle_signals=False).run)
        old = daemon.engine.throttle.shared
        async with ApiClient(before.daemon.socket) as client:
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
            run_id = (await client.sync()).run_id
            with anyio.fail_after(10):
                while (await client.run(run_id)).outcome == "running":  # noqa: ASYNC110 - a run in the daemon
                    await anyio.sleep(0.02)
            assert old is not None and old.taken == 1 and old._conn is not None
            assert "provider" in (await client.reload()).changed
        new = daemon.engine.throttle.shared
        assert new is not None and new is not old and new.account != old.account
        with anyio.fail_after(10):
            while old._conn is not None:  # noqa: ASYNC110 - closed by a task of the daemon's
                await anyio.sleep(0.02)
        daemon.stop()


async def test_a_pause_another_daemon_was_given_holds_the_health_probe(
    pg_server: PgServer, short_tmp: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 answered to another daemon on the account holds this one's connectivity probe too: no request
    reaches the sandbox inside the pause, and the check says why it did not probe."""
    monkeypatch.setattr("shiptrackd.health.monitor.PROBE_WAIT_S", 0.5)
    url = pg_server.create()
    config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_STORE__URL=url)
    other = await Store.open(url)
    peer = SharedBudget(pg_connect(other), config.provider)  # another daemon's budget on the same account
    try:
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, handle_signals=False).run)
            async with ApiClient(config.daemon.socket) as client:
                assert (await client.health(fresh=True)).level == "ok"  # probed: the account is free
                await peer.pause(60.0)
                before = sandbox.stats.total
                report = await client.health(fresh=True)
                check = next(c for c in report.checks if c.name == "api_connectivity")
                assert "asked the cluster to wait" in check.message and "(429)" in check.message, check.message
                assert sandbox.stats.total == before
            daemon.stop()
    finally:
        await peer.aclose()
        await other.close()
