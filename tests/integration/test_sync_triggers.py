"""
Sync triggers through the control API of a running daemon: dry runs, targeted and force runs,
and one run at a time (a trigger during a run joins it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest
from conftest import Running

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.wire.answers import LoopInfo, RunDetail, ShipmentDetail, SyncStarted

T = TypeVar("T")

pytestmark = pytest.mark.anyio


async def poll(read: Callable[[], Awaitable[T]], done: Callable[[T], object], timeout_s: float = 10.0) -> T:
    """Call *read* until *done* holds for its value; fail after the deadline."""
    with anyio.fail_after(timeout_s):
        while True:
            value = await read()
            if done(value):
                return value
            await anyio.sleep(0.02)


async def wait_for_run(client: ApiClient, run_id: int) -> RunDetail:
    return await poll(lambda: client.run(run_id), lambda run: run.outcome != "running")


async def sync_loop(client: ApiClient) -> LoopInfo:
    return next(lp for lp in (await client.loops()).loops if lp.name == "sync")


async def add(client: ApiClient, *numbers: str) -> dict[str, str]:
    added = await client.add_shipments([{"carrier_code": "ups", "tracking_number": n} for n in numbers])
    return {a.tracking_number: a.id for a in added.added}


async def everything(client: ApiClient) -> list[ShipmentDetail]:
    """Every shipment with its events: the whole observable state of the store."""
    listed = (await client.shipments(limit=1000)).shipments
    return [await client.shipment(s.id) for s in listed]


async def test_dry_run_writes_nothing_and_calls_nothing(running: Running) -> None:
    """A dry run (regular, forced or targeted) names what would be synced without an API call or a write."""
    client, sandbox = running.client, running.sandbox
    ids = await add(client, "1ZINTRANSIT0001", "1ZDELIVERED0001", "1ZNOTYET00001")
    await wait_for_run(client, (await client.sync()).run_id)
    calls, before, runs_before = sandbox.stats.total, await everything(client), await client.runs()

    due = await client.sync_plan()
    forced = await client.sync_plan(force=True)
    targeted = await client.sync_plan(shipments=[ids["1ZNOTYET00001"], "ship_missing"])

    assert due.dry_run and due.would_sync == 0 and due.shipments == []
    assert forced.would_sync == 3 and {s.why for s in forced.shipments} == {"force: every active shipment"}
    assert targeted.would_sync == 1 and targeted.unknown_ids == ["ship_missing"]
    assert targeted.shipments[0].why == "named on the command line"
    assert sandbox.stats.total == calls
    assert await everything(client) == before
    assert await client.runs() == runs_before


async def test_targeted_sync_fetches_only_the_named_shipments(running: Running) -> None:
    """`sync --shipments` fetches exactly the named shipments, due or not, and records a targeted run."""
    client, sandbox = running.client, running.sandbox
    ids = await add(client, "1ZINTRANSIT0002", "1ZINTRANSIT0003", "1ZINTRANSIT0004")
    await wait_for_run(client, (await client.sync()).run_id)
    started = await client.sync(shipments=[ids["1ZINTRANSIT0003"]])
    assert started.trigger == "targeted" and not started.joined
    run = await wait_for_run(client, started.run_id)
    assert (run.trigger, run.selected, run.unchanged, run.api_calls) == ("targeted", 1, 1, 1)
    assert sandbox.stats.requests_for("1ZINTRANSIT0003") == 2
    assert sandbox.stats.requests_for("1ZINTRANSIT0002") == 1


async def test_force_sync_takes_every_active_shipment_and_skips_terminal_ones(running: Running) -> None:
    """A force run fetches every active shipment even when none is due, but not a terminal one."""
    client, sandbox = running.client, running.sandbox
    ids = await add(client, "1ZINTRANSIT0005", "1ZEXCEPTION0001", "1ZDELIVERED0002")
    await wait_for_run(client, (await client.sync()).run_id)
    # The confirming check of the delivered parcel makes it terminal (inactive).
    await wait_for_run(client, (await client.sync(shipments=[ids["1ZDELIVERED0002"]])).run_id)
    assert not (await client.shipment(ids["1ZDELIVERED0002"])).active

    regular = await wait_for_run(client, (await client.sync()).run_id)
    assert regular.selected == 0
    started = await client.sync(force=True)
    assert started.trigger == "force"
    forced = await wait_for_run(client, started.run_id)
    assert (forced.trigger, forced.selected, forced.failed) == ("force", 2, 0)
    assert sandbox.stats.requests_for("1ZDELIVERED0002") == 2
    assert sandbox.stats.requests_for("1ZINTRANSIT0005") == 2


async def test_triggers_during_a_run_join_it_and_a_targeted_one_is_refused(running: Running) -> None:
    """While a regular sync runs, another sync and a loop trigger join it; a force or targeted sync gets 409."""
    client, sandbox = running.client, running.sandbox
    ids = await add(client, *(f"1ZINTRANSIT{i:04}" for i in range(20, 36)))
    sandbox.configure(latency_s=0.4)  # 16 shipments at concurrency 8: two rounds, about 0.8 s
    first = await client.sync()
    assert not first.joined

    again = await client.sync()
    assert (again.run_id, again.joined) == (first.run_id, True)
    with pytest.raises(ApiError) as not_covered:  # joining would sync only the due ones
        await client.sync(force=True)
    assert not_covered.value.http_status == 409
    with pytest.raises(ApiError) as refused:
        await client.sync(shipments=[next(iter(ids.values()))])
    assert refused.value.http_status == 409 and refused.value.code == "conflict"
    assert f"run {first.run_id}" in str(refused.value)

    triggered = await client.loop_action("sync", "trigger")
    assert triggered.name == "sync"
    loop = await poll(lambda: sync_loop(client), lambda lp: lp.runs >= 1)
    assert loop.last_outcome == f"joined run {first.run_id}"

    run = await wait_for_run(client, first.run_id)
    assert run.outcome == "ok" and run.selected == 16 and run.api_calls == 16
    assert [r.id for r in (await client.runs()).runs] == [first.run_id]
    assert sandbox.stats.total == 16


@pytest.mark.parametrize("force", [False, True], ids=["regular", "force"])
async def test_a_trigger_after_the_run_is_recorded_starts_a_new_run(
    running: Running, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    """Once a run's record says it finished, a new trigger starts a new run: never a 409, never a finished run."""
    client, engine = running.client, running.daemon.engine
    assert engine is not None
    await add(client, "1ZINTRANSIT0601")
    recorded, release = anyio.Event(), anyio.Event()
    real_finish = engine.store.runs.finish

    async def finish_then_hold(*args: Any) -> None:
        await real_finish(*args)
        recorded.set()
        await release.wait()  # hold the engine between "record written" and "idle", as a busy loop might

    monkeypatch.setattr(engine.store.runs, "finish", finish_then_hold)
    first = await client.sync()
    await recorded.wait()
    monkeypatch.undo()
    assert (await client.run(first.run_id)).outcome == "ok"  # what a client polling the run sees

    result: list[SyncStarted] = []

    async def trigger() -> None:
        result.append(await client.sync(force=force))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(trigger)
            await anyio.wait_all_tasks_blocked()  # the trigger has reached the daemon
            release.set()
    finally:
        release.set()
    [started] = result
    assert not started.joined and started.run_id != first.run_id
    second = await wait_for_run(client, started.run_id)
    assert second.trigger == ("force" if force else "manual") and second.outcome == "ok"
