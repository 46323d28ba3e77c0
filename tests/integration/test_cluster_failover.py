"""
Three daemons on one PostgreSQL database against one sandbox (issue 13's cluster test, reduced to
what runs in seconds): one daemon in a process of its own is killed with -9 in the middle of a
force sync; the other two finish the work, take over its leases once they expire, and in the end
every shipment is synced, and no shipment was fetched twice except those the dead daemon held
(fetched by it, never written). Its alert (a stale heartbeat: 30 s) and outbound deliveries are
left to the health and outbound tests.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import daemon_config, quiet_daemon_env
from pg_fixtures import PgServer

from shiptrackd.api.client import ApiClient
from shiptrackd.daemon import Daemon

pytestmark = pytest.mark.anyio
SHIPMENTS = 300
LEASE = "10s"  # the shortest [sync] lease: how long the dead daemon's claims wait


async def finished(client: ApiClient, run_id: int) -> Any:
    with anyio.fail_after(30):
        while True:
            run = await client.run(run_id)
            if run.outcome != "running":
                return run
            await anyio.sleep(0.05)


async def test_a_daemon_killed_mid_sync_loses_its_leases_and_nothing_is_lost_or_fetched_twice(
    pg_server: PgServer, short_tmp: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 during a force sync: the others sync the rest, then the dead one's claims after their
    expiry; every shipment synced once, but for the few the dead one fetched and never wrote."""
    url = pg_server.create()
    monkeypatch.setattr("shiptrackd.cluster.leader.TRY_EVERY_S", 0.2)
    sandbox.configure(latency_s=0.02)
    settings = {
        "SHIPTRACK_STORE__URL": url,
        "SHIPTRACK_SYNC__LEASE": LEASE,
        "SHIPTRACK_SYNC__BATCH_SIZE": "20",
        "SHIPTRACK_PROVIDER__TIMEOUT": "20s",  # a loaded machine's slow answer must not be retried (fetched twice)
    }
    doomed_dir = short_tmp / "c"
    doomed_dir.mkdir()
    env = {**os.environ, **quiet_daemon_env(doomed_dir, sandbox.base_url, **settings)}
    doomed = await anyio.open_process([sys.executable, "-m", "shiptrackd"], env=env, stdout=None, stderr=None)
    try:
        configs = [daemon_config(short_tmp / n, sandbox.base_url, **settings) for n in ("a", "b")]
        async with anyio.create_task_group() as tg:
            daemons = [await tg.start(Daemon(c, handle_signals=False).run) for c in configs]
            store = daemons[0].store
            assert store is not None
            async with (
                ApiClient(configs[0].daemon.socket) as a,
                ApiClient(configs[1].daemon.socket) as b,
                ApiClient(doomed_dir / "ctl.sock") as c,
            ):
                with anyio.fail_after(30):  # the process is up when its socket answers
                    while True:
                        try:
                            cluster = (await c.status()).cluster
                            assert cluster is not None
                            doomed_id = cluster.member
                            break
                        except Exception:
                            await anyio.sleep(0.1)
                numbers = [f"1ZINTRANSIT{i:04}" for i in range(SHIPMENTS)]
                await a.add_shipments([{"carrier_code": "ups", "tracking_number": n} for n in numbers])

                # A force sync on all three at once (C last, so the others' walks pass over what it writes).
                runs = [(await a.sync(force=True)).run_id, (await b.sync(force=True)).run_id]
                await c.sync(force=True)
                with anyio.fail_after(20):  # kill it in the middle: a quarter done, and it holds claims
                    while not (  # noqa: ASYNC110 - the state of another process: polled
                        sandbox.stats.total >= SHIPMENTS // 4 and (await store.leases.held()).get(doomed_id, 0)
                    ):
                        await anyio.sleep(0.01)
                doomed.send_signal(signal.SIGKILL)
                await doomed.wait()
                orphaned = {
                    r[0]
                    for r in await store.db.fetchall(
                        "SELECT tracking_number FROM shipments WHERE lease_owner = ?", (doomed_id,)
                    )
                }
                assert orphaned, "the killed daemon held no lease"
                records = [await finished(a, runs[0]), await finished(b, runs[1])]
                assert [r.outcome for r in records] == ["ok", "ok"]
                # The dead daemon's claims free themselves at their expiry; a regular sync then takes them.
                with anyio.fail_after(30):
                    while await store.db.scalar("SELECT count(*) FROM shipments WHERE last_synced_at IS NULL"):
                        await finished(a, (await a.sync()).run_id)
                        await anyio.sleep(0.2)
                assert doomed_id not in await store.leases.held()
            for daemon in daemons:
                daemon.stop()
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
    counts = sandbox.stats.by_number
    assert sorted(counts) == numbers  # every shipment fetched
    twice = {n for n, k in counts.items() if k > 1}
    assert twice <= orphaned and max(counts.values()) <= 2  # only what the dead daemon never wrote, once more
