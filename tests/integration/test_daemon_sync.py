"""The daemon syncing against the sandbox over loopback: the heart of the product, end to end."""

from __future__ import annotations

import anyio
import pytest
from conftest import Running

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.wire.answers import RunDetail
from shiptrackd.wire.events import SyncStartedEvent

pytestmark = pytest.mark.anyio


@pytest.fixture
async def running(running_any: Running) -> Running:
    """Each test here runs a daemon on a SQLite file and on PostgreSQL: the product end to end on both."""
    return running_any


async def wait_for_run(client: ApiClient, run_id: int, timeout_s: float = 10.0) -> RunDetail:
    with anyio.fail_after(timeout_s):
        while True:
            run = await client.run(run_id)
            if run.outcome != "running":
                return run
            await anyio.sleep(0.02)


async def test_full_sync_updates_statuses_and_events(running: Running) -> None:
    """A manual sync fetches every due shipment and stores its status and event history."""
    client, sandbox = running.client, running.sandbox
    added = await client.add_shipments(
        [{"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT{i:04}"} for i in range(20)]
    )
    assert len(added.added) == 20
    sandbox.advance(days=1)
    started = await client.sync()
    run = await wait_for_run(client, started.run_id)
    assert (run.outcome, run.selected, run.updated, run.failed) == ("ok", 20, 20, 0)
    shipment = await client.shipment(added.added[0].id)
    assert shipment.status_code == "IT"
    assert shipment.events and shipment.next_sync_at
    assert sandbox.stats.total == 20


async def test_second_sync_only_takes_due_shipments(running: Running) -> None:
    """Right after a sync nothing is due, so a regular sync selects nothing and calls no API."""
    client = running.client
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
    await wait_for_run(client, (await client.sync()).run_id)
    second = await wait_for_run(client, (await client.sync()).run_id)
    assert second.selected == 0 and second.api_calls == 0


async def test_targeted_sync_reports_unknown_ids(running: Running) -> None:
    """`sync --shipments` syncs the known ids and names the unknown ones."""
    client = running.client
    sid = (await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0002"}])).added[0].id
    run = await wait_for_run(client, (await client.sync(shipments=[sid, "ship_nope"])).run_id)
    assert run.selected == 1 and run.updated == 1
    assert "ship_nope" in run.stop_reason


async def test_dry_run_changes_nothing(running: Running) -> None:
    """A dry run lists what would be synced and why, without an API call or a write."""
    client, sandbox = running.client, running.sandbox
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT{i:04}"} for i in range(3)])
    plan = await client.sync_plan()
    assert plan.would_sync == 3 and all(s.why.startswith("due since") for s in plan.shipments)
    assert sandbox.stats.total == 0
    assert (await client.runs()).runs == []


async def test_bad_key_stops_the_run(running: Running) -> None:
    """A 401 stops the run at once (no hammering) and leaves every shipment untouched."""
    client, sandbox = running.client, running.sandbox
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT{i:04}"} for i in range(30)])
    sandbox.configure(api_key="TEST_other_key")
    run = await wait_for_run(client, (await client.sync()).run_id)
    assert run.outcome == "failed" and "rejected the key" in run.stop_reason
    assert run.api_calls <= running.config.provider.concurrency
    listed = await client.shipments()
    assert all(s.status_code is None for s in listed.shipments)


async def test_add_rejects_bad_input_with_reasons(running: Running) -> None:
    """Invalid shipments are rejected with the reason; the valid ones in the same request are added."""
    client = running.client
    result = await client.add_shipments(
        [
            {"carrier_code": "ups", "tracking_number": "1Z OK"},
            {"carrier_code": "UPS", "tracking_number": "1Z1"},
            {"carrier_code": "ups", "tracking_number": ""},
            {"carrier_code": "ups", "tracking_number": "1Z\x07"},
            {"carrier_code": "ups", "tracking_number": "1ZGOOD"},
        ]
    )
    assert [i.index for i in result.invalid] == [0, 1, 2, 3]
    assert [a.index for a in result.added] == [4]
    with pytest.raises(ApiError) as info:
        await client.request("POST", "/v1/shipments", json_body={"carrier_code": "ups"})
    assert info.value.http_status == 400 and "tracking_number" in str(info.value)


async def test_force_loop_during_a_regular_run_runs_after_it(running: Running) -> None:
    """The daily force sync never merges into a regular run (that would sync only the due ones): it runs next."""
    client, sandbox, engine = running.client, running.sandbox, running.daemon.engine
    assert engine is not None
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT{i:04}"} for i in range(16)])
    sandbox.configure(latency_s=0.2)
    regular = await client.sync()
    forced = await engine.run_once("force")
    assert forced["trigger"] == "force" and forced["id"] != regular.run_id
    assert forced["selected"] == 16 and not forced.get("joined")
    assert (await client.run(regular.run_id)).outcome == "ok"


async def test_sync_started_announces_its_planned_total(running: Running) -> None:
    """A run says at its start how many shipments it expects, so progress bars never step back."""
    client = running.client
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT{i:04}"} for i in range(7)])
    since = (await client.status()).event_seq
    started = await client.sync()
    with anyio.fail_after(10):
        async for event in client.events(since=since):
            if isinstance(event, SyncStartedEvent) and event.run_id == started.run_id:
                assert event.planned == 7
                break
    await wait_for_run(client, started.run_id)
