"""
The EventBus behind /v1/events: numbered events, replay after a reconnect, gaps said out loud,
slow followers cut off rather than slowing the daemon, and clean endings on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from shiptrackd.events import EventBus

pytestmark = pytest.mark.anyio


async def take(stream: AsyncIterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    with anyio.fail_after(2):
        async for event in stream:
            out.append(event)
            if len(out) == n:
                break
    return out


async def test_publish_numbers_events_in_order() -> None:
    """Every event gets the next sequence number, a type, a time and its data."""
    bus = EventBus()
    first = bus.publish("a", x=1)
    second = bus.publish("b")
    assert (first["seq"], second["seq"], bus.seq) == (1, 2, 2)
    assert first["type"] == "a" and first["x"] == 1 and first["at"].endswith("+00:00")


async def test_a_follower_without_since_sees_only_new_events() -> None:
    """Subscribing without `since` starts at the present: nothing old is replayed."""
    bus = EventBus()
    bus.publish("old")
    stream = bus.subscribe()
    async with anyio.create_task_group() as tg:

        async def publish_later() -> None:
            await anyio.wait_all_tasks_blocked()
            bus.publish("new")

        tg.start_soon(publish_later)
        events = await take(stream, 1)
    await stream.aclose()
    assert [e["type"] for e in events] == ["new"]


async def test_since_replays_what_was_missed_then_continues_live_without_duplicates() -> None:
    """`since=N` yields every event after N from the ring, then live ones, each exactly once."""
    bus = EventBus()
    for i in range(5):
        bus.publish("e", i=i)
    stream = bus.subscribe(since=2)
    replay = await take(stream, 3)
    assert [e["seq"] for e in replay] == [3, 4, 5]
    async with anyio.create_task_group() as tg:

        async def publish_later() -> None:
            await anyio.wait_all_tasks_blocked()
            bus.publish("live")

        tg.start_soon(publish_later)
        live = await take(stream, 1)
    await stream.aclose()
    assert [(e["seq"], e["type"]) for e in live] == [(6, "live")]


async def test_since_older_than_the_ring_reports_a_gap_first() -> None:
    """A follower resuming from before the ring's oldest event is told with a `gap` event before the replay."""
    bus = EventBus(history=3)
    for _ in range(10):
        bus.publish("e")
    stream = bus.subscribe(since=2)
    events = await take(stream, 4)
    await stream.aclose()
    assert events[0]["type"] == "gap" and events[0]["seq"] == 2 and events[0]["resume_from"] == 10
    assert [e["seq"] for e in events[1:]] == [8, 9, 10]


async def test_since_at_the_present_replays_nothing() -> None:
    """`since` equal to the latest seq means nothing was missed: no gap, no replay."""
    bus = EventBus()
    bus.publish("e")
    stream = bus.subscribe(since=1)
    async with anyio.create_task_group() as tg:

        async def publish_later() -> None:
            await anyio.wait_all_tasks_blocked()
            bus.publish("next")

        tg.start_soon(publish_later)
        events = await take(stream, 1)
    await stream.aclose()
    assert [(e["seq"], e["type"]) for e in events] == [(2, "next")]


async def test_a_follower_that_falls_behind_is_cut_off_and_publish_never_blocks() -> None:
    """Publishing never waits for a slow follower; one that falls `buffer` events behind is dropped."""
    bus = EventBus(buffer=3)
    stream = bus.subscribe()
    started = anyio.Event()

    async def start() -> None:
        started.set()
        await take(stream, 1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(start)
        await started.wait()
        await anyio.wait_all_tasks_blocked()
        for _ in range(10):
            bus.publish("burst")  # synchronous: would deadlock here if it waited for the follower
    assert bus._subscribers == {}
    leftovers = [e async for e in stream]
    assert len(leftovers) <= 3  # what was buffered before the cut, then the stream ends


async def test_close_ends_every_follower() -> None:
    """Shutdown closes the bus and every open stream ends cleanly instead of hanging."""
    bus = EventBus()
    ended: list[int] = []

    async def follow(n: int) -> None:
        async for _ in bus.subscribe():
            pass
        ended.append(n)

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow, 1)
            tg.start_soon(follow, 2)
            await anyio.wait_all_tasks_blocked()
            bus.close()
    assert sorted(ended) == [1, 2]


async def test_leaving_during_the_replay_closes_the_subscription() -> None:
    """A follower that disconnects half-way through its replay is unsubscribed and leaks no stream."""
    bus = EventBus()
    for _ in range(5):
        bus.publish("e")
    stream = bus.subscribe(since=0)
    await take(stream, 2)
    assert len(bus._subscribers) == 1
    await stream.aclose()
    assert bus._subscribers == {}
