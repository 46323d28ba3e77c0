"""[[notices]] (issue 11, item 7): the outbox and the alerts' Apprise machinery tell people about chosen transitions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from alert_receivers import webhook

from shiptrackd.clock import SystemClock
from shiptrackd.config import load
from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.outbound.dispatcher import Dispatcher
from shiptrackd.store import FetchSuccess, Store

pytestmark = pytest.mark.anyio


def _info(status: str, detail: str = "") -> TrackingInfo:
    event = TrackingEvent(datetime.now(UTC), "Held at depot", status, "HD", city="Leeds")
    return TrackingInfo("x", status, status_detail_code=detail, events=(event,))


async def _run(tmp: Path, url: str, extra: str, changes: list[tuple[str, str]]) -> tuple[Store, Any]:
    path = tmp / "c.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp}"\nsocket = "{tmp}/c.sock"\n'
        f'[[notices]]\nname = "support"\non = ["EX", "OUT_FOR_DELIVERY"]\nto = ["{url}"]\n{extra}'
    )
    config = load(path, {})
    store = await Store.open(tmp / "s.db")
    dispatcher = Dispatcher(store, SystemClock(), config)
    now = datetime.now(UTC)
    added = await store.shipments.add_many(
        [NewShipment("ups", f"1ZNOTE{i:04}", reference=f"order-{i}") for i in range(len(changes))], now
    )
    results = [
        FetchSuccess(a.id, _info(status, detail), now, "x")
        for a, (status, detail) in zip(added.added, changes, strict=True)
    ]
    await store.shipments.apply(None, results, now)
    return store, dispatcher


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
