"""
Cluster-wide status changes on one node's event stream (issue 13 item 5, LISTEN/NOTIFY): a real
daemon on a real PostgreSQL database, and a second node (its own store connections, event bus
and relay) on the same database. What one writes shows on the other's /v1/events with `origin`;
nothing echoes back; a burst is packed into few notifications.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import daemon_config
from pg_fixtures import PgServer, pg_connect

from shiptrackd.api.client import ApiClient
from shiptrackd.cluster.events import MAX_PAYLOAD, ClusterEvents, pack
from shiptrackd.daemon import Daemon
from shiptrackd.events import EventBus
from shiptrackd.store import Store
from shiptrackd.wire.events import ShipmentStatusChanged
from shiptrackd.wire.names import EVENT_SHIPMENT_STATUS_CHANGED, EVENT_SHIPMENTS_ADDED

pytestmark = pytest.mark.anyio
BURST = 300


def test_pack_fits_the_notify_limit_and_keeps_the_order() -> None:
    """Events are packed into payloads under NOTIFY's limit, in order; one too large alone is dropped."""
    events = [{"type": "shipment.status_changed", "id": f"ship_{i:05}", "old": "IT", "new": "DE"} for i in range(500)]
    huge = {"type": "shipments.added", "count": 1, "note": "x" * MAX_PAYLOAD}
    payloads, dropped = pack("node-a", [*events[:250], huge, *events[250:]])
    assert dropped == 1 and 1 < len(payloads) < 20
    assert all(len(p.encode()) <= MAX_PAYLOAD for p in payloads)
    docs = [json.loads(p) for p in payloads]
    assert {d["origin"] for d in docs} == {"node-a"}
    assert [e for d in docs for e in d["events"]] == events


async def test_one_nodes_event_stream_carries_another_nodes_status_changes(
    pg_server: PgServer, short_tmp: Path, sandbox: Any
) -> None:
    """A burst of changes on the second node reaches the daemon's /v1/events marked with its origin; the
    daemon's own change reaches the second node's bus; neither comes back to where it was written."""
    url = pg_server.create()
    config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_STORE__URL=url)
    other_store = await Store.open(url)
    other_bus = EventBus()
    relay = ClusterEvents(other_bus, "node-b", pg_connect(other_store))
    try:
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, handle_signals=False).run)
            assert daemon.member is not None
            async with anyio.create_task_group() as relays:
                await relays.start(relay.run)
                async with ApiClient(config.daemon.socket) as client:
                    since = (await client.status()).event_seq
                    seen: list[ShipmentStatusChanged] = []

                    async def follow() -> None:
                        with anyio.fail_after(15):
                            await collect()

                    async def collect() -> None:
                        async with aclosing(client.events(since=since)) as events:
                            async for event in events:
                                if isinstance(event, ShipmentStatusChanged):
                                    seen.append(event)
                                    if len(seen) == BURST + 1:
                                        return

                    async with anyio.create_task_group() as readers:
                        readers.start_soon(follow)
                        # The daemon listens before it answers: its relay starts before READY.
                        for i in range(BURST):
                            other_bus.publish(EVENT_SHIPMENT_STATUS_CHANGED, id=f"ship_{i:04}", old="IT", new="DE")
                        other_bus.publish(EVENT_SHIPMENT_STATUS_CHANGED, id="ship_push", old=None, new="DE", via="push")

                    assert [e.id for e in seen] == [f"ship_{i:04}" for i in range(BURST)] + ["ship_push"]  # in order
                    assert seen[-1].via == "push" and seen[-1].run_id is None  # a push's change fits its wire type
                    assert {e.origin for e in seen} == {"node-b"} and seen[0].new == "DE"
                    assert 0 < relay.sent < BURST / 10  # packed, not one notification per change

                    # The other way: the daemon's own change reaches node-b with the daemon's member id.
                    mark = other_bus.seq
                    await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
                    with anyio.fail_after(10):
                        async with aclosing(other_bus.subscribe(since=mark)) as events:
                            async for event in events:
                                if event["type"] == EVENT_SHIPMENTS_ADDED:
                                    break
                    assert event["origin"] == daemon.member.id and event["count"] == 1
                    # Nothing came back: node-b's burst is on node-b's bus once (its own, with no origin).
                    mine = [e for e in other_bus._history if e["type"] == EVENT_SHIPMENT_STATUS_CHANGED]
                    assert len(mine) == BURST + 1 and not any("origin" in e for e in mine)
                    assert relay.received == 1
                relays.cancel_scope.cancel()
            daemon.stop()
    finally:
        await other_store.close()


async def test_the_relay_reconnects_after_the_server_drops_its_sessions(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch, logs: list[str]
) -> None:
    """The server ends both relays' sessions (a restart, a failover): each reconnects, and changes flow again."""
    import psycopg

    monkeypatch.setattr("shiptrackd.cluster.events.RETRY_S", 0.1)
    url = pg_server.create()
    store = await Store.open(url)
    buses = [EventBus(), EventBus()]
    relays = [ClusterEvents(bus, name, pg_connect(store)) for bus, name in zip(buses, ("a", "b"), strict=True)]

    async def arrives(n: int) -> None:
        """Publish change n on a's bus (again and again: one sent into a dying session is lost) until b has it."""
        with anyio.fail_after(15):
            while not any(e.get("id") == f"ship_{n}" for e in buses[1]._history):
                buses[0].publish(EVENT_SHIPMENT_STATUS_CHANGED, id=f"ship_{n}", old="IT", new="DE")
                await anyio.sleep(0.1)

    try:
        async with anyio.create_task_group() as tg:
            for relay in relays:
                await tg.start(relay.run)
            await arrives(1)
            with psycopg.connect(url, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%LISTEN%'"
                ).fetchone()
            assert ended is not None and ended[0] == 2  # both listeners (each relay's sender goes with its retry)
            await arrives(2)
            tg.cancel_scope.cancel()
    finally:
        await store.close()
    assert any("cluster events: store unreachable" in line for line in logs)
