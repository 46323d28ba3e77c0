"""
Issue 13's cluster test at its full size: three daemons on one PostgreSQL database against one
sandbox, 3,000 shipments, a force sync on all three, and the daemon that leads the singletons (in a
process of its own) killed with -9 in the middle of it. At the end: every shipment synced; none
fetched twice but those the dead daemon held (fetched, never written: taken over once its lease
expired); its singletons led by a survivor; the alert for its loss sent once, to a real Apprise
json:// receiver; and every status change delivered to a real outbound receiver, none lost to the kill.

Fast on 2 cores: sandbox latency 2 ms, no rate limit but the shared budget's pause, a 10 s lease
(the shortest) and `[cluster] member_stale = "5s"`. The figures (wall time, failover) are printed
(`pytest -s`); bench/bench_cluster.py is where speed is measured.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from alert_receivers import Webhook, webhook
from conftest import quiet_daemon_env
from pg_fixtures import PgServer
from webhook_receivers import Receiver, outbound_toml

from shiptrackd.api.client import ApiClient
from shiptrackd.cluster.wiring import SINGLETONS
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.store import Store

pytestmark = pytest.mark.anyio
SHIPMENTS = 3000
ADD_BATCH = 500
LEASE = "10s"  # the shortest [sync] lease: how long the dead daemon's claims wait
LED = set(SINGLETONS) - {"heartbeat"}  # no heartbeat URL: no heartbeat loop to lead


async def finished(client: ApiClient, run_id: int, timeout_s: float = 60) -> Any:
    with anyio.fail_after(timeout_s):
        while True:
            run = await client.run(run_id)
            if run.outcome != "running":
                return run
            await anyio.sleep(0.05)


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 60, every_s: float = 0.05) -> None:
    """Poll *condition* (the state of a database, or of another process) until it holds, with a deadline."""
    with anyio.fail_after(timeout_s):
        while not await condition():  # noqa: ASYNC110 - nothing to wait on: polled
            await anyio.sleep(every_s)


async def scalar(store: Store, sql: str, *params: Any) -> int:
    return int(await store.db.scalar(sql, params) or 0)


def cluster_alerts(hook: Webhook, pid: int) -> list[str]:
    """The lines of the alerts received that fire the `cluster` check about the member with *pid*."""
    lines = [line for item in hook.items for line in str(item["json"].get("message", "")).splitlines()]
    return [line for line in lines if " cluster" in line.split(":", 1)[0] and f":{pid} silent" in line]


async def test_a_leader_killed_mid_sync_loses_nothing_and_is_alerted_once(
    pg_server: PgServer, short_tmp: Path, sandbox: Any
) -> None:
    """3,000 shipments, three daemons, kill -9 of the leader during a force sync: all synced, none fetched
    twice within a lease, its leases and singletons taken over, one alert, every status change delivered."""
    began = time.monotonic()
    url = pg_server.create()
    sandbox.configure(latency_s=0.002)
    async with webhook() as alerts_rx, Receiver().serve() as app_rx:
        toml = outbound_toml("shop", app_rx.url, events=["shipment.status_changed"], retry_schedule=["0s", "100ms"])
        settings = {
            "SHIPTRACK_STORE__URL": url,
            "SHIPTRACK_SYNC__LEASE": LEASE,
            "SHIPTRACK_SYNC__BATCH_SIZE": "50",
            "SHIPTRACK_PROVIDER__CONCURRENCY": "16",
            "SHIPTRACK_PROVIDER__TIMEOUT": "20s",  # a loaded machine's slow answer must not be retried (fetched twice)
            "SHIPTRACK_CLUSTER__MEMBER_STALE": "5s",
            "SHIPTRACK_HEALTH__SCHEDULE": "1s",
            "SHIPTRACK_ALERTS__URLS": json.dumps([alerts_rx.url]),
            "SHIPTRACK_ALERTS__FOR_REPORTS": "1",
        }
        dirs = {n: short_tmp / n for n in ("a", "b", "c")}
        for path in dirs.values():
            path.mkdir()
            (path / "shiptrackd.toml").write_text(toml)
        env = {**os.environ, **quiet_daemon_env(dirs["c"], sandbox.base_url, **settings)}
        argv = [sys.executable, "-m", "shiptrackd", "--config", str(dirs["c"] / "shiptrackd.toml")]
        doomed = await anyio.open_process(argv, env=env, stdout=None, stderr=None)
        try:
            async with ApiClient(dirs["c"] / "ctl.sock") as c:
                with anyio.fail_after(30):  # up when its socket answers; the leader when it leads all
                    while True:
                        try:
                            cluster = (await c.status()).cluster
                            assert cluster is not None
                            if set(cluster.leads) >= LED:
                                doomed_id = cluster.member
                                break
                        except Exception:
                            pass
                        await anyio.sleep(0.1)
                configs = [
                    load(dirs[n] / "shiptrackd.toml", quiet_daemon_env(dirs[n], sandbox.base_url, **settings))
                    for n in ("a", "b")
                ]
                async with anyio.create_task_group() as tg:
                    daemons = [await tg.start(Daemon(cfg, handle_signals=False).run) for cfg in configs]
                    store: Store = daemons[0].store
                    async with ApiClient(configs[0].daemon.socket) as a, ApiClient(configs[1].daemon.socket) as b:
                        numbers = [f"1ZINTRANSIT{i:05}" for i in range(SHIPMENTS)]
                        for i in range(0, SHIPMENTS, ADD_BATCH):
                            await a.add_shipments(
                                [{"carrier_code": "ups", "tracking_number": n} for n in numbers[i : i + ADD_BATCH]]
                            )
                        # A force sync on all three at once (C last, so the others' walks pass over what it writes).
                        runs = [(await a.sync(force=True)).run_id, (await b.sync(force=True)).run_id]
                        await c.sync(force=True)

                        async def in_the_middle() -> bool:  # a third done, and it holds claims
                            held = await store.leases.held(datetime.now(UTC))
                            return sandbox.stats.total >= SHIPMENTS // 3 and held.get(doomed_id, 0) > 0

                        await until(in_the_middle, every_s=0.01)
                        doomed.send_signal(signal.SIGKILL)
                        killed_at = time.monotonic()
                        await doomed.wait()
                        orphaned = {
                            r[0]
                            for r in await store.db.fetchall(
                                "SELECT tracking_number FROM shipments WHERE lease_owner = ?", (doomed_id,)
                            )
                        }
                        assert orphaned, "the killed daemon held no lease"

                        # Its singletons: the server drops its advisory locks; a standby takes them at its next try.
                        async def failed_over() -> bool:
                            return set().union(*(d.leadership.held for d in daemons)) >= LED

                        await until(failed_over, 30, every_s=0.02)
                        failover_s = time.monotonic() - killed_at

                        records = [await finished(a, runs[0]), await finished(b, runs[1])]
                        assert [r.outcome for r in records] == ["ok", "ok"]
                        # The dead daemon's claims free themselves at their expiry; a regular sync then takes them.
                        with anyio.fail_after(60):
                            while await scalar(store, "SELECT count(*) FROM shipments WHERE last_synced_at IS NULL"):
                                await finished(a, (await a.sync()).run_id)
                                await anyio.sleep(0.2)
                        synced_s = time.monotonic() - killed_at
                        assert doomed_id not in await store.leases.held(datetime.now(UTC))

                        # Its loss is alerted once: wait for the alert, then three more evaluated reports.
                        async def alerted() -> bool:
                            return bool(cluster_alerts(alerts_rx, doomed.pid))

                        async def three_more_reports_evaluated() -> bool:
                            sql = "SELECT count(*) FROM health_reports WHERE id > ? AND evaluated = 1"
                            return await scalar(store, sql, seen) >= 3

                        await until(alerted, 30)
                        seen = await scalar(store, "SELECT max(id) FROM health_reports")
                        await until(three_more_reports_evaluated, 30)
                        [line] = cluster_alerts(alerts_rx, doomed.pid)
                        assert line.startswith("WARNING cluster"), line

                        # Every status change reaches the application: the outbox drains, none dead, none lost.
                        async def outbox_drained() -> bool:
                            return not await scalar(store, "SELECT count(*) FROM outbox WHERE state != 'delivered'")

                        await until(outbox_drained, every_s=0.1)
                        rows = await scalar(store, "SELECT count(*) FROM outbox")
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
    delivered = {r.payload["data"]["tracking_number"] for r in app_rx.delivered()}
    assert rows >= SHIPMENTS and delivered == set(numbers)  # every status change, at least once
    print(
        f"\ncluster test: {SHIPMENTS} shipments, 3 daemons, wall {time.monotonic() - began:.1f}s;"
        f" leader killed with {len(orphaned)} leases held; singletons failed over in {failover_s:.2f}s;"
        f" all synced {synced_s:.1f}s after the kill; {len(twice)} fetched twice (all the dead one's);"
        f" {len(app_rx.delivered())} webhooks for {rows} outbox rows"
    )
