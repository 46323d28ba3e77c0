"""[[notices]] (issue 11, item 7): the outbox and the alerts' Apprise machinery tell people about chosen transitions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from alert_receivers import webhook

from shiptrackd.clock import Clock, FakeClock, SystemClock
from shiptrackd.config import load
from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.outbound.dispatcher import Dispatcher
from shiptrackd.store import FetchSuccess, Store

pytestmark = pytest.mark.anyio


def _info(status: str, detail: str = "") -> TrackingInfo:
    event = TrackingEvent(datetime.now(UTC), "Held at depot", status, "HD", city="Leeds")
    return TrackingInfo("x", status, status_detail_code=detail, events=(event,))


async def _run(
    tmp: Path, url: str, extra: str, changes: list[tuple[str, str]], clock: Clock | None = None
) -> tuple[Store, Any]:
    path = tmp / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp}"\nsocket = "{tmp}/c.sock"\n'
        f'[[notices]]\nname = "support"\non = ["EX", "OUT_FOR_DELIVERY"]\nto = ["{url}"]\n{extra}'
    )
    config = load(path, {})
    store = await Store.open(tmp / "s.db")
    dispatcher = Dispatcher(store, clock or SystemClock(), config)
    await _change(store, dispatcher.clock.now(), changes)
    return store, dispatcher


async def _change(store: Store, now: datetime, changes: list[tuple[str, str]], first: int = 0) -> None:
    """New shipments 1ZNOTE<first>... reaching the given (status, detail), committed together at *now*."""
    added = await store.shipments.add_many(
        [NewShipment("ups", f"1ZNOTE{first + i:04}", reference=f"order-{first + i}") for i in range(len(changes))],
        now,
    )
    results = [
        FetchSuccess(a.id, _info(status, detail), now, "x")
        for a, (status, detail) in zip(added.added, changes, strict=True)
    ]
    await store.shipments.apply(None, results, now)


async def until(done: Any, timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while True:
            if done():
                return
            await anyio.sleep(0.02)


@pytest.fixture
async def hook() -> AsyncIterator[Any]:
    async with webhook() as h:
        yield h


async def test_a_chosen_transition_is_told_and_others_are_not(tmp_path: Path, hook: Any) -> None:
    store, dispatcher = await _run(tmp_path, hook.url, "", [("EX", ""), ("IT", ""), ("IT", "OUT_FOR_DELIVERY")])
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        got = await hook.wait_for(2)
        tg.cancel_scope.cancel()
    await store.close()
    titles = sorted(m["json"]["title"] for m in got)
    assert titles == ["1ZNOTE0000 (ups): exception", "1ZNOTE0002 (ups): in transit"]
    exception = next(m["json"]["message"] for m in got if "exception" in m["json"]["title"])
    assert "order-0" in exception and "Held at depot, Leeds" in exception
    assert len(hook.items) == 2  # the plain in-transit change is nobody's business


async def test_a_send_longer_than_a_dispatcher_turn_is_settled(tmp_path: Path, hook: Any) -> None:
    """The dispatcher turns every 10 ms here, many times during one send: the outcome is still recorded."""
    store, dispatcher = await _run(tmp_path, hook.url, '[outbound_dispatch]\npoll = "10ms"\n', [("EX", "")])
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        await hook.wait_for(1)
        await until(lambda: dispatcher.attempts["delivered"] >= 1)
        tg.cancel_scope.cancel()
    [row] = await store.outbox.list(endpoint="notice:support")
    await store.close()
    assert row.state == "delivered" and row.attempts == 1


async def test_a_burst_becomes_one_digest(tmp_path: Path, hook: Any) -> None:
    store, dispatcher = await _run(tmp_path, hook.url, "digest_after = 2\n", [("EX", "")] * 4)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        [digest] = await hook.wait_for(1)
        await until(lambda: dispatcher.attempts["delivered"] >= 4)
        tg.cancel_scope.cancel()
    await store.close()
    assert digest["json"]["title"] == "4 shipments: exception"
    assert digest["json"]["message"].count("1ZNOTE") == 4
    assert len(hook.items) == 1


async def test_the_digest_window_runs_on_the_daemons_clock(tmp_path: Path, hook: Any) -> None:
    """Two notices go out singly; two more a minute later (inside the window) become one digest; two more
    eleven minutes on (outside it) go out singly again. Only the FakeClock moved between the last two."""
    clock = FakeClock()
    extra = 'digest_after = 2\ndigest_window = "10m"\n'
    store, dispatcher = await _run(tmp_path, hook.url, extra, [("EX", "")] * 2, clock)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        await until(lambda: dispatcher.attempts["delivered"] >= 2)
        await clock.advance(minutes=1)
        await _change(store, clock.now(), [("EX", "")] * 2, first=2)
        await until(lambda: dispatcher.attempts["delivered"] >= 4)
        await clock.advance(minutes=11)
        await _change(store, clock.now(), [("EX", "")] * 2, first=4)
        await until(lambda: dispatcher.attempts["delivered"] >= 6)
        tg.cancel_scope.cancel()
    await store.close()
    titles = [m["json"]["title"] for m in hook.items]
    assert sorted(titles[:2]) == ["1ZNOTE0000 (ups): exception", "1ZNOTE0001 (ups): exception"]
    assert titles[2] == "2 shipments: exception"
    assert sorted(titles[3:]) == ["1ZNOTE0004 (ups): exception", "1ZNOTE0005 (ups): exception"]


async def test_a_trickle_past_the_limit_is_held_and_goes_as_one_digest(tmp_path: Path, hook: Any) -> None:
    """One notice a minute with digest_after = 2 in 10 minutes: two go singly, the next ones wait for the
    window's first message to age out and then go together as one digest, not one by one."""
    clock = FakeClock()
    extra = 'digest_after = 2\ndigest_window = "10m"\n'
    store, dispatcher = await _run(tmp_path, hook.url, extra, [("EX", "")], clock)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        await until(lambda: dispatcher.attempts["delivered"] >= 1)
        for n in range(1, 4):  # minutes 1, 2, 3: the second goes singly, the next two are held
            await clock.advance(minutes=1)
            await _change(store, clock.now(), [("EX", "")], first=n)
            await until(lambda n=n: dispatcher.attempts["delivered"] + dispatcher.attempts["deferred"] >= n + 1)
        assert len(hook.items) == 2
        await clock.advance(minutes=7, seconds=1)  # the first message is 10 minutes old: a slot is free
        await hook.wait_for(3)
        await until(lambda: dispatcher.attempts["delivered"] >= 4)
        tg.cancel_scope.cancel()
    await store.close()
    titles = [m["json"]["title"] for m in hook.items]
    assert titles[:2] == ["1ZNOTE0000 (ups): exception", "1ZNOTE0001 (ups): exception"]
    assert titles[2:] == ["2 shipments: exception"] and hook.items[2]["json"]["message"].count("1ZNOTE") == 2


async def test_quiet_hours_hold_a_notice_until_the_window_ends(tmp_path: Path, hook: Any) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    quiet = f'quiet_hours = "{start:%H:%M}-{end:%H:%M}"\n'
    store, dispatcher = await _run(tmp_path, hook.url, quiet, [("EX", "")])
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        await until(lambda: dispatcher.attempts["deferred"] >= 1)
        tg.cancel_scope.cancel()
    [row] = await store.outbox.list(endpoint="notice:support")
    await store.close()
    assert hook.items == [] and row.state == "pending" and row.attempts == 0
    assert row.next_attempt_at is not None
    assert (
        f"{row.next_attempt_at:%Y-%m-%dT%H:%M}" == f"{(end if end > now else end + timedelta(days=1)):%Y-%m-%dT%H:%M}"
    )
