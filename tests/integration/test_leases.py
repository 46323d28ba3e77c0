"""
Work shared by leases (issue 13 item 2): claims are disjoint, a held claim is skipped until its
expiry and then taken over, and a writer that lost its lease writes nothing. On both backends;
then two real daemons on one PostgreSQL database against one sandbox.
"""

from __future__ import annotations

import io
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from pg_fixtures import truncate_all

from shiptrackd.api.client import ApiClient
from shiptrackd.ctl.render import Output
from shiptrackd.ctl.status import render_status
from shiptrackd.models import NewShipment, TrackingInfo
from shiptrackd.sandbox import Sandbox
from shiptrackd.store import FetchFailure, FetchSuccess, Store
from shiptrackd.wire.answers import RunDetail

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


async def test_claims_are_disjoint_held_until_expiry_then_taken_over(any_store: Store) -> None:
    """A and B claim disjoint batches; A's claims come free only after the expiry; A's late write is refused."""
    store = any_store
    await store.shipments.add_many([NewShipment("ups", f"1Z{i:03}") for i in range(10)], NOW)
    a = await store.leases.claim_due("A", NOW, NOW, NOW + LEASE, 6)
    b = await store.leases.claim_due("B", NOW, NOW, NOW + LEASE, 6)
    assert len(a) == 6 and len(b) == 4 and not {s.id for s in a} & {s.id for s in b}
    due = [s.next_sync_at for s in a]
    assert None not in due and due == sorted(at for at in due if at is not None)
    assert await store.leases.claim_due("C", NOW, NOW + LEASE - timedelta(seconds=1), NOW + 2 * LEASE, 10) == []
    assert await store.leases.held(NOW) == {"A": 6, "B": 4}

    # A dies; after the expiry C takes A's claims over (B has written and released its own meanwhile).
    later = NOW + timedelta(hours=4)
    info = TrackingInfo("x", "IT")
    written = await store.shipments.apply(None, [FetchSuccess(s.id, info, later, "r") for s in b], NOW, owner="B")
    assert written.write_errors == [] and written.updated == 4
    taken = await store.leases.claim_due("C", NOW, NOW + LEASE, NOW + 2 * LEASE, 10)
    assert sorted(s.id for s in taken) == sorted(s.id for s in a)

    # A comes back with results: neither its successes nor its failures land; C's do.
    late = await store.shipments.apply(
        None,
        [
            *(FetchSuccess(s.id, TrackingInfo("x", "DE"), None, "late") for s in a[:3]),
            *(FetchFailure(s.id, "transient", "503", 503, later, "late") for s in a[3:]),
        ],
        NOW,
        owner="A",
    )
    assert len(late.write_errors) == 6 and late.updated == late.failed == 0
    assert [r.status_code for r in await store.shipments.get_many([s.id for s in a])] == [None] * 6
    mine = await store.shipments.apply(None, [FetchSuccess(s.id, info, later, "r") for s in taken], NOW, owner="C")
    assert mine.updated == 6 and await store.leases.held(NOW + LEASE) == {}
    assert await store.shipments.count_due(NOW + timedelta(hours=1)) == 0


async def test_force_and_targeted_claims_skip_what_another_holds(any_store: Store) -> None:
    """A force walk and a targeted claim leave another owner's shipments to it; release frees them."""
    store = any_store
    ids = [a.id for a in (await store.shipments.add_many([NewShipment("ups", f"1Z{i}") for i in range(5)], NOW)).added]
    held = await store.leases.claim_ids("A", ids[:2], NOW, NOW + LEASE)
    assert [s.id for s in held] == ids[:2]
    walk = await store.leases.claim_active("B", "", NOW, NOW + LEASE, 100)
    assert [s.id for s in walk] == sorted(ids[2:])  # in id order
    assert await store.leases.claim_ids("C", [ids[1], ids[0]], NOW, NOW + LEASE) == []
    assert await store.leases.release("A") == 2
    assert [s.id for s in await store.leases.claim_ids("C", [ids[1], ids[0]], NOW, NOW + LEASE)] == [ids[1], ids[0]]


async def test_a_live_members_heartbeat_renews_its_leases_through_a_long_batch(any_store: Store) -> None:
    """A's beats renew its claims past the first expiry, so B cannot take them; once A stops beating
    they expire and B takes them over; an expired lease is never renewed back."""
    from shiptrackd.clock import FakeClock
    from shiptrackd.cluster.membership import Membership

    store = any_store
    clock = FakeClock(NOW)
    a = Membership(store, clock, "A", lease_s=LEASE.total_seconds())
    await a.join()
    await store.shipments.add_many([NewShipment("ups", f"1Z{i:03}") for i in range(4)], NOW)
    claimed = await store.leases.claim_due("A", NOW, NOW, NOW + LEASE, 10)
    assert len(claimed) == 4
    for _ in range(3):  # a batch three leases long: A lives and beats throughout
        await clock.advance(LEASE - timedelta(seconds=30))
        await a.beat()
    now = clock.now()
    assert now > NOW + 2 * LEASE
    assert await store.leases.claim_due("B", NOW, now, now + LEASE, 10) == []
    assert await store.leases.held(now) == {"A": 4}
    later = now + LEASE + timedelta(seconds=1)  # A died after its last beat: its claims expire
    assert await store.leases.renew("A", later, later + LEASE) == 0  # too late to renew
    assert len(await store.leases.claim_due("B", NOW, later, later + LEASE, 10)) == 4


async def test_lease_counts_leave_out_expired_leases(any_store: Store) -> None:
    """A member's expired claims are not held: neither held() nor the heartbeat's count (status's
    "leases held") counts them, though the rows still name the owner until someone takes them over."""
    from shiptrackd.store.cluster import Member

    store = any_store
    await store.shipments.add_many([NewShipment("ups", f"1Z{i:03}") for i in range(5)], NOW)
    await store.leases.claim_due("A", NOW, NOW, NOW + LEASE, 3)
    await store.leases.claim_due("B", NOW, NOW, NOW + 2 * LEASE, 2)
    await store.cluster.register(Member("A", "h", 1, "v", NOW), NOW)
    await store.cluster.heartbeat("A", NOW, [], NOW - LEASE)
    assert await store.leases.held(NOW) == {"A": 3, "B": 2}
    assert [(m.id, m.leases) for m in await store.cluster.members()] == [("A", 3)]

    later = NOW + LEASE  # A's leases end now (a claim takes them over from this instant); B's still run
    assert await store.leases.held(later) == {"B": 2}
    await store.cluster.heartbeat("A", later, [], NOW - LEASE)
    assert [(m.id, m.leases) for m in await store.cluster.members()] == [("A", 0)]
    assert await scalar_count(store, "A") == 3  # the rows still name A: only the count changed


async def scalar_count(store: Store, owner: str) -> int:
    return int(await store.db.scalar("SELECT count(*) FROM shipments WHERE lease_owner = ?", (owner,)))


async def test_concurrent_claimers_on_postgresql_never_share_a_shipment(pg_url: str) -> None:
    """Four stores (four daemons' connections) claiming at once in small batches: a partition of the due set."""
    truncate_all(pg_url)
    stores = [await Store.open(pg_url) for _ in range(4)]
    try:
        await stores[0].shipments.add_many([NewShipment("ups", f"1Z{i:04}") for i in range(400)], NOW)
        claimed: dict[str, list[str]] = {}

        async def claimer(n: int, store: Store) -> None:
            owner = f"d{n}"
            claimed[owner] = []
            while batch := await store.leases.claim_due(owner, NOW, NOW, NOW + LEASE, 7):
                claimed[owner] += [s.id for s in batch]

        async with anyio.create_task_group() as tg:
            for n, store in enumerate(stores):
                tg.start_soon(claimer, n, store)
        every = [sid for ids in claimed.values() for sid in ids]
        assert len(every) == len(set(every)) == 400
        assert sum(1 for ids in claimed.values() if ids) >= 2  # the work was shared, not taken by one
    finally:
        for store in stores:
            await store.close()


async def finished(client: ApiClient, run_id: int) -> RunDetail:
    with anyio.fail_after(30):
        while True:
            run = await client.run(run_id)
            if run.outcome != "running":
                return run
            await anyio.sleep(0.05)


async def test_two_daemons_on_one_database_sync_disjoint_batches(
    pg_url: str, tmp_path: Path, sandbox: Sandbox, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real daemons, one PostgreSQL database, one sandbox: a sync on both fetches each shipment once;
    status on either shows both members; one leads the singleton loops, and the other takes them when it stops."""
    from conftest import daemon_config

    from shiptrackd.daemon import Daemon

    truncate_all(pg_url)
    configs = [
        daemon_config(
            short_tmp / f"d{n}", sandbox.base_url, SHIPTRACK_STORE__URL=pg_url, SHIPTRACK_SYNC__BATCH_SIZE="10"
        )
        for n in range(2)
    ]
    sandbox.configure(latency_s=0.01)
    monkeypatch.setattr("shiptrackd.cluster.leader.TRY_EVERY_S", 0.1)  # a standby's next try, for the failover
    async with anyio.create_task_group() as tg:
        daemons = [await tg.start(Daemon(c, handle_signals=False).run) for c in configs]
        async with ApiClient(configs[0].daemon.socket) as first, ApiClient(configs[1].daemon.socket) as second:
            numbers = [f"1ZINTRANSIT{i:04}" for i in range(120)]
            await first.add_shipments([{"carrier_code": "ups", "tracking_number": n} for n in numbers])
            runs = [(await first.sync()).run_id, (await second.sync()).run_id]
            records = [await finished(first, runs[0]), await finished(second, runs[1])]
            status = await second.status()
            singletons = {"force", "health", "alerts", "retention"}
            held = [d.leadership.held for d in daemons]
            assert held[0] | held[1] == singletons and not held[0] & held[1]
            leader = 0 if held[0] else 1
            daemons[leader].stop()  # a clean stop closes its lock session; kill -9 drops it the same way
            with anyio.fail_after(10):
                while daemons[1 - leader].leadership.held != singletons:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
        daemons[1 - leader].stop()
    cluster = status.cluster
    assert cluster is not None
    assert len(cluster.members) == 2 and [m.this for m in cluster.members].count(True) == 1
    assert {tuple(m.roles) for m in cluster.members} == {(), tuple(sorted(singletons))}
    assert [r.outcome for r in records] == ["ok", "ok"]
    assert sum(r.updated for r in records) == 120 and all(r.updated > 0 for r in records)
    assert sorted(sandbox.stats.by_number) == numbers and set(sandbox.stats.by_number.values()) == {1}
    assert status.store.backend == "postgresql" and status.store.shipments == 120
    printed = io.StringIO()  # `shiptrackctl status` as a person reads it: both members, the leader's roles
    render_status(Output(stdout=printed, stderr=io.StringIO(), env={}), status)
    text = printed.getvalue()
    assert "cluster: 2 live member(s)" in text and text.count(f"{socket.gethostname()}:{os.getpid()}") == 2
    assert ", ".join(sorted(singletons)) in text and "(this)" in text
