"""
The `cluster` health check (issue 13 item 5) in a real daemon on a real PostgreSQL database: ok
with one leader, warning when another member's heartbeat goes stale (moved by the clock seam),
critical when the leader's lock session ends, ok again when a standby takes over; shown by
`shiptrackctl health` and on /metrics. `[cluster] member_stale` sets when a member is lost, and one
silent past `member_forget` (its leases expired) is forgotten, so the check does not warn forever.
(On SQLite the check is absent: test_health_daemon.py.)
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import daemon_config
from pg_fixtures import PgServer, pg_connect
from prometheus_client.parser import text_string_to_metric_families

from shiptrackd.api.client import ApiClient
from shiptrackd.clock import FakeClock
from shiptrackd.cluster.leader import Leadership
from shiptrackd.cluster.membership import Membership
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.store import Store
from shiptrackd.wire.answers import Check

pytestmark = pytest.mark.anyio

_SCRIPT = Path(sys.executable).with_name("shiptrackctl")
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shiptrackd.ctl"]
SINGLETONS = {"force", "health", "alerts", "retention"}


async def cluster_check(client: ApiClient) -> Check:
    report = await client.health(fresh=True)
    return next(c for c in report.checks if c.name == "cluster")


async def check_state(sock: Path) -> dict[str, float]:
    """shiptrackd_health_check_state{check="cluster"} by state, from /metrics."""
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(sock))) as http:
        text = (await http.get("http://shiptrackd/metrics")).text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    samples = fams["shiptrackd_health_check_state"].samples
    return {s.labels["state"]: s.value for s in samples if s.labels["check"] == "cluster"}


async def test_cluster_check_sees_stale_members_and_singletons_without_a_leader(
    pg_server: PgServer, short_tmp: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One daemon and a second member on one database: ok, then warning (stale heartbeat), critical
    (the leader's lock session closed), and ok-but-stale once a standby leads; ctl and /metrics agree."""
    url = pg_server.create()
    # The daemon's own election does not retry during the test: the standby below is what takes over.
    monkeypatch.setattr("shiptrackd.cluster.leader.TRY_EVERY_S", 3600.0)
    monkeypatch.setattr("shiptrackd.metrics.CACHE_S", 0.0)  # /metrics reads the store at each scrape
    clock = FakeClock()
    config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_STORE__URL=url, SHIPTRACK_ALERTS__FOR_REPORTS="1")
    other = await Store.open(url)
    standby = Leadership(sorted(SINGLETONS), pg_connect(other))
    try:
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, clock=clock, handle_signals=False).run)
            async with ApiClient(config.daemon.socket) as client:
                me = f"{socket.gethostname()}:{os.getpid()}"
                check = await cluster_check(client)
                assert check.level == "ok", check.message
                assert check.message.startswith("1 member(s) beating;") and f"led by {me}" in check.message
                assert set(check.details["leaders"]) == SINGLETONS

                # A second member joins, then falls silent: 31 s on the clock, only the daemon beats.
                ghost = Membership(other, clock, "ghost")
                await ghost.join()
                await standby.try_once()
                assert standby.held == set()  # the daemon leads them all
                await clock.advance(seconds=31)
                await daemon.member.beat()
                check = await cluster_check(client)
                assert check.level == "warning" and "silent for 31s" in check.message, check.message
                assert [m["id"] for m in check.details["stale"]] == ["ghost"]
                with anyio.fail_after(30):
                    done = await anyio.run_process([*CTL, "--socket", str(config.daemon.socket), "health"], check=False)
                out = done.stdout.decode()
                assert done.returncode == 1 and "cluster" in out and "silent for 31s" in out, out
                assert (await check_state(config.daemon.socket))["warning"] == 1
                # The lost member is alerted once: a second evaluation of the same state sends nothing.
                await client.alert_evaluate()
                await client.alert_evaluate()
                about = [
                    n for n in (await client.alerts()).notifications if any(c.check == "cluster" for c in n.checks)
                ]
                assert [(c.check, c.kind, c.level) for n in about for c in n.checks] == [
                    ("cluster", "firing", "warning")
                ]

                # The leader's lock session ends (a kill -9 or a lost host drops it the same way).
                assert daemon.leadership._conn is not None
                await daemon.leadership._conn.close()
                with anyio.fail_after(10):  # the server frees the locks once it has seen the session end
                    while (check := await cluster_check(client)).level != "critical":  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                assert "no leader holds" in check.message and "retention" in check.message
                assert (await check_state(config.daemon.socket))["critical"] == 1

                # The standby takes the singletons: nothing is unled; the ghost's silence still warns.
                await standby.try_once()
                assert standby.held == SINGLETONS
                check = await cluster_check(client)
                assert check.level == "warning" and check.details["unled"] == [], check.message
            daemon.stop()
    finally:
        if standby._conn is not None:
            await standby._conn.close()
        await other.close()


async def test_a_lost_member_warns_after_member_stale_and_is_forgotten_after_member_forget(
    pg_server: PgServer, short_tmp: Path, sandbox: Sandbox
) -> None:
    """member_stale = 5s: a member silent 6 s warns; silent past member_forget = 1m it is kept while it
    still holds a lease (status shows what it holds), then the next beat forgets it and the check is ok."""
    url = pg_server.create()
    clock = FakeClock()
    config = daemon_config(
        short_tmp,
        sandbox.base_url,
        SHIPTRACK_STORE__URL=url,
        SHIPTRACK_CLUSTER__MEMBER_STALE="5s",
        SHIPTRACK_CLUSTER__MEMBER_FORGET="1m",
    )
    other = await Store.open(url)
    try:
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, clock=clock, handle_signals=False).run)
            assert daemon.member.heartbeat_s < 1.0  # six beats to a member_stale: a live member never looks lost
            async with ApiClient(config.daemon.socket) as client:
                await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
                ghost = Membership(other, clock, "ghost", cluster=config.cluster)
                await ghost.join()
                now = clock.now()
                assert len(await other.leases.claim_active("ghost", "", now, now + timedelta(minutes=2), 10)) == 1

                async def after(seconds: float) -> Check:
                    await clock.advance(seconds=seconds)
                    await daemon.member.beat()
                    return await cluster_check(client)

                assert (check := await after(4)).level == "ok", check.message
                check = await after(2)
                assert check.level == "warning" and "silent for 6s (stale after 5s)" in check.message, check.message
                check = await after(60)  # silent 66 s, past member_forget, but its lease runs to 2 min
                assert check.level == "warning" and [m["id"] for m in check.details["stale"]] == ["ghost"]
                assert "ghost" in {m.id for m in await other.cluster.members()}
                check = await after(60)  # its lease expired: forgotten at this beat
                assert check.level == "ok" and check.details["stale"] == [], check.message
                assert [m.id for m in await other.cluster.members()] == [daemon.member.id]
                assert (await client.status()).cluster.stale == 0  # type: ignore[union-attr]
            daemon.stop()
    finally:
        await other.close()


async def test_a_reload_applies_new_member_thresholds(short_tmp: Path, sandbox: Sandbox) -> None:
    """[cluster] is reloadable: the next beat and the next judgement use the new member_stale and member_forget."""
    before = daemon_config(short_tmp, sandbox.base_url)
    after = daemon_config(
        short_tmp, sandbox.base_url, SHIPTRACK_CLUSTER__MEMBER_STALE="6s", SHIPTRACK_CLUSTER__MEMBER_FORGET="2m"
    )
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(before, load_config=lambda: after, handle_signals=False).run)
        assert daemon.member.stale_after_s == 30.0 and daemon.member.heartbeat_s == 5.0
        async with ApiClient(before.daemon.socket) as client:
            answer = await client.reload()
        assert "cluster" in answer.changed and answer.needs_restart == []
        assert daemon.member.stale_after_s == 6.0 and daemon.member.heartbeat_s == 1.0
        assert daemon.member.cluster.member_forget_s == 120.0
        daemon.stop()
