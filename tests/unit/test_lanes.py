"""Per-account work queues (sync/lanes.py): a full queue makes the feeder wait, unless its account is paused."""

from __future__ import annotations

import anyio
import pytest
from row_samples import shipment as row
from test_throttle import ScriptedProvider, make

from shiptrackd.sync.lanes import Job, LaneQueues

pytestmark = pytest.mark.anyio


async def test_a_full_queue_of_a_paused_account_defers_and_the_others_go_on() -> None:
    paused, busy = make(ScriptedProvider()), make(ScriptedProvider())
    paused.config = busy.config = type(paused.config)(concurrency=1, rate_limit=None)  # queues of 2 jobs each
    queues = LaneQueues([paused, busy])
    assert [await queues.put(Job(paused, [row(id=f"ship_{i}")])) for i in range(2)] == [True, True]
    paused.pause(60)  # a Retry-After: its workers are waiting it out
    with anyio.fail_after(1):  # not waiting for room it will not get soon
        assert await queues.put(Job(paused, [row(id="ship_2")])) is False
        assert await queues.put(Job(busy, [row(id="ship_3")])) is True
    queues.close()
    for _, receive in queues.receive:
        receive.close()


async def test_a_full_queue_of_a_working_account_waits_for_room() -> None:
    lane = make(ScriptedProvider())
    lane.config = type(lane.config)(concurrency=1, rate_limit=None)
    queues = LaneQueues([lane])
    (_, receive), *_ = queues.receive
    for i in range(2):
        await queues.put(Job(lane, [row(id=f"ship_{i}")]))
    done = anyio.Event()

    async def put_third() -> None:
        assert await queues.put(Job(lane, [row(id="ship_2")])) is True
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(put_third)
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()  # backpressure: the feeder waits
        assert (await receive.receive()).shipments == [row(id="ship_0")]
        with anyio.fail_after(1):
            await done.wait()
    queues.close()
    assert [job.shipments async for job in receive] == [[row(id="ship_1")], [row(id="ship_2")]]
    receive.close()


def test_a_queue_holds_half_a_minute_of_its_accounts_work() -> None:
    from shiptrackd.sync.lanes import depth
    from shiptrackd.units import RateLimit

    lane = make(ScriptedProvider())
    lane.config = type(lane.config)(concurrency=4, rate_limit=RateLimit(20, 1.0))
    assert depth(lane, 2) == 600  # 30 s at 20 requests/s
    lane.config = type(lane.config)(concurrency=4, rate_limit=None)
    assert (depth(lane, 2), depth(lane, 500)) == (8, 500)  # unpaced: two a worker, or what the caller says


@pytest.mark.parametrize(
    ("kind", "configured", "expected"),
    [
        ("17track", None, "3/s"),  # left at the default: 17TRACK's documented 3 a second
        ("aftership", None, "5/s"),  # AfterShip's single-tracking reads
        ("17track", "10/s", "10/s"),  # set by the operator: kept
        ("shipengine", None, "200/min"),  # the default is ShipEngine's own
        ("easypost", None, "200/min"),  # EasyPost documents no account rate: the default stays
    ],
)
def test_an_account_left_at_the_default_rate_gets_its_providers_documented_one(
    kind: str, configured: str | None, expected: str
) -> None:
    from shiptrackd.config import ProviderConfig, format_rate_limit
    from shiptrackd.providers import PROVIDERS
    from shiptrackd.sandbox.state import parse_rate_limit
    from shiptrackd.sync.throttle import with_documented_rate

    config = (
        ProviderConfig(kind=kind)
        if configured is None
        else ProviderConfig(kind=kind, rate_limit=parse_rate_limit(configured))
    )
    documented = PROVIDERS[kind].limits.rate  # type: ignore[attr-defined]  # the class's declared Limits
    assert format_rate_limit(with_documented_rate(config, documented).rate_limit) == expected
