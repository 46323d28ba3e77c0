"""
A notice to several targets is delivered per target (issue 11, item 7): each gets it once, a retry goes
only to the targets that failed, and the row is done when every target has it or the schedule ran out.

Real json:// receivers on 127.0.0.1, the real outbox on SQLite and the real dispatcher; the daemon's
clock is a FakeClock, so the retry schedule's 5 s (and its days, for the dead row) pass at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from alert_receivers import Webhook, closed_port, webhook
from test_outbound_notices import until

from shiptrackd.clock import FakeClock
from shiptrackd.config import load
from shiptrackd.config.shapes import DEFAULT_RETRY_SCHEDULE
from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.outbound.dispatcher import Dispatcher
from shiptrackd.store import FetchSuccess, Store
from shiptrackd.store.rows import OutboxRow

pytestmark = pytest.mark.anyio
Steps = Callable[[Dispatcher, FakeClock], Awaitable[None]]
PASSWORD = "t4rgetPassw0rd"  # in the failing target's URL: never in an attempt's error


def url(hook: Webhook, path: str = "hook") -> str:
    return f"json://desk:{PASSWORD}@127.0.0.1:{hook.port}/{path}"


async def _exceptions(store: Store, clock: FakeClock, count: int) -> None:
    now = clock.now()
    added = await store.shipments.add_many([NewShipment("ups", f"1ZTARGET{i + 1:02}") for i in range(count)], now)
    info = TrackingInfo("x", "EX", events=(TrackingEvent(now, "Damaged", "EX", "DM", city="Leeds"),))
    await store.shipments.apply(None, [FetchSuccess(a.id, info, now, "x") for a in added.added], now)


async def _deliver(tmp: Path, to: list[str], extra: str, steps: Steps, count: int = 1, digest: str = "") -> OutboxRow:
    """Run the dispatcher over *count* exception notices until *steps* returns; the first row as it ends."""
    path = tmp / "c.toml"
    recipients = ", ".join(f'"{r}"' for r in to)
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp}"\nsocket = "{tmp}/c.sock"\n{extra}'
        f'[[notices]]\nname = "support"\non = ["EX"]\nto = [{recipients}]\n{digest}'
    )
    clock = FakeClock()
    store = await Store.open(tmp / "s.db")
    dispatcher = Dispatcher(store, clock, load(path, {}))
    await _exceptions(store, clock, count)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        await steps(dispatcher, clock)
        tg.cancel_scope.cancel()
    *_, first = await store.outbox.list(endpoint="notice:support")  # newest first
    row = await store.outbox.get(first.id)
    await store.close()
    assert row is not None and row.attempt_log is not None
    return row


async def _retry_after(dispatcher: Dispatcher, clock: FakeClock, failures: int) -> None:
    """Wait for the *failures*-th failed attempt to be recorded, then move the clock past its retry delay."""
    await until(lambda: dispatcher.attempts["failed"] >= failures)
    await clock.advance(seconds=DEFAULT_RETRY_SCHEDULE[failures] * 1.1 + 1)  # the delay and its jitter
    dispatcher.wake()


async def test_a_retry_goes_only_to_the_target_that_failed(tmp_path: Path) -> None:
    """Two URLs, the second answering 500 once: the healthy one gets one copy, the other one after recovering."""
    async with webhook() as healthy, webhook() as flaky:
        flaky.fail_next = 1

        async def steps(dispatcher: Dispatcher, clock: FakeClock) -> None:
            await healthy.wait_for(1)
            await _retry_after(dispatcher, clock, 1)
            await flaky.wait_for(1)
            await until(lambda: dispatcher.attempts["delivered"] >= 1)

        row = await _deliver(tmp_path, [url(healthy), url(flaky)], "", steps)
    assert len(healthy.requests) == 1 and len(healthy.items) == 1  # not sent again by the retry
    assert len(flaky.requests) == 2 and len(flaky.items) == 1  # the 500, then the one that landed
    assert healthy.items[0]["json"]["title"] == flaky.items[0]["json"]["title"] == "1ZTARGET01 (ups): exception"
    assert (row.state, row.attempts) == ("delivered", 2)
    first, second = row.attempt_log or []
    assert first.outcome == "failed" and first.error.startswith("1 of 2 targets failed: json://desk:****@127.0.0.1:")
    assert f":{flaky.port}/hook: not delivered (" in first.error and str(healthy.port) not in first.error
    assert (second.outcome, second.error) == ("delivered", "")
    assert PASSWORD not in first.error + row.last_error


async def test_a_target_that_never_recovers_gives_up_alone(tmp_path: Path) -> None:
    """A dead target costs the schedule's attempts and the row ends dead; the healthy one still got one copy."""
    dead = f"json://desk:{PASSWORD}@127.0.0.1:{closed_port()}/gone"
    async with webhook() as healthy:

        async def steps(dispatcher: Dispatcher, clock: FakeClock) -> None:
            for failures in range(1, len(DEFAULT_RETRY_SCHEDULE)):
                await _retry_after(dispatcher, clock, failures)
            await until(lambda: dispatcher.attempts["failed"] >= len(DEFAULT_RETRY_SCHEDULE))

        row = await _deliver(tmp_path, [url(healthy), dead], "", steps)
    assert len(healthy.requests) == 1
    assert (row.state, row.attempts) == ("dead", len(DEFAULT_RETRY_SCHEDULE))
    log = row.attempt_log or []
    assert log[0].error.startswith("1 of 2 targets failed: ")
    assert all(a.error.startswith("1 of 1 targets failed: json://desk:****@") for a in log[1:])
    assert PASSWORD not in "".join(a.error for a in log)


async def test_tag_recipients_are_targets_one_by_one_and_a_url_named_twice_is_sent_once(tmp_path: Path) -> None:
    """`tag:support` selects two file channels, one failing once; the failing one is also in `to` as a URL:
    each channel is sent the notice once per attempt, and the retry goes to the failing one alone."""
    async with webhook() as healthy, webhook() as flaky:
        flaky.fail_next = 1
        apprise_file = tmp_path / "apprise.yml"
        apprise_file.write_text(
            f"version: 1\nurls:\n  - {url(healthy)}:\n      tag: support\n  - {url(flaky)}:\n      tag: support\n"
        )

        async def steps(dispatcher: Dispatcher, clock: FakeClock) -> None:
            await healthy.wait_for(1)
            await _retry_after(dispatcher, clock, 1)
            await flaky.wait_for(1)
            await until(lambda: dispatcher.attempts["delivered"] >= 1)

        extra = f'[alerts]\nconfig = "{apprise_file}"\n'
        row = await _deliver(tmp_path, ["tag:support", url(flaky)], extra, steps)
    assert len(healthy.requests) == 1 and len(flaky.requests) == 2 and len(flaky.items) == 1
    assert (row.state, row.attempts) == ("delivered", 2)
    assert (row.attempt_log or [])[0].error.startswith("1 of 2 targets failed: ")


async def test_a_digests_retry_is_one_digest_to_the_failed_target_alone(tmp_path: Path) -> None:
    """Three exceptions past `digest_after` go as one digest per target; the failed target's retry is one digest."""
    async with webhook() as healthy, webhook() as flaky:
        flaky.fail_next = 1

        async def steps(dispatcher: Dispatcher, clock: FakeClock) -> None:
            await healthy.wait_for(1)
            await _retry_after(dispatcher, clock, 3)  # the digest's three rows fail together
            await flaky.wait_for(1)
            await until(lambda: dispatcher.attempts["delivered"] >= 3)

        row = await _deliver(tmp_path, [url(healthy), url(flaky)], "", steps, 3, "digest_after = 2\n")
    assert [m["json"]["title"] for m in healthy.items + flaky.items] == ["3 shipments: exception"] * 2
    assert len(healthy.requests) == 1 and len(flaky.requests) == 2
    assert (row.state, row.attempts) == ("delivered", 2)
