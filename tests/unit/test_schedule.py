"""Timer loops: due times as a pure table, then the supervisor under the fake clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from shiptrackd.clock import FakeClock
from shiptrackd.config import Schedule, parse_schedule
from shiptrackd.schedule import Loop, jitter_bound_s, next_due

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EVERY_5M = Schedule("5m", interval_s=300)
DAILY_2AM = Schedule("0 2 * * *", cron="0 2 * * *")


@pytest.mark.parametrize(
    ("schedule", "now", "last", "failures", "expected"),
    [
        (EVERY_5M, T0, None, 0, T0),  # an interval loop that never ran runs now
        (DAILY_2AM, T0, None, 0, datetime(2026, 3, 3, 2, 0, tzinfo=UTC)),  # cron waits for its fire
        (EVERY_5M, T0, T0 - timedelta(minutes=1), 0, T0 + timedelta(minutes=4)),
        # down for two days: the missed daily run is caught up once, now
        (DAILY_2AM, T0, T0 - timedelta(days=2), 0, T0),
        (DAILY_2AM, T0, datetime(2026, 3, 2, 2, 0, tzinfo=UTC), 0, datetime(2026, 3, 3, 2, 0, tzinfo=UTC)),
        # a failing body is retried sooner than its schedule, with backoff
        (DAILY_2AM, T0, T0, 1, T0 + timedelta(seconds=5)),
        (DAILY_2AM, T0, T0, 3, T0 + timedelta(seconds=20)),
        (EVERY_5M, T0, T0, 10, T0 + timedelta(minutes=5)),  # never later than the schedule
    ],
)
def test_next_due(schedule: Schedule, now: datetime, last: datetime | None, failures: int, expected: datetime) -> None:
    """next_due covers first runs, steady state, catch-up after downtime, and failure backoff."""
    assert next_due(schedule, now, last, failures) == expected


def test_jitter_stays_within_bounds() -> None:
    """Jitter is at most 10% of an interval and never more than 30 s."""
    assert jitter_bound_s(EVERY_5M) == 30
    assert jitter_bound_s(Schedule("60s", interval_s=60)) == 6
    assert jitter_bound_s(DAILY_2AM) == 30
    rng = random.Random(7)
    loop = Loop("x", EVERY_5M, _noop, FakeClock(T0), rng=rng, last_run_at=T0)
    for _ in range(200):
        due = loop.compute_next(T0)
        assert due is not None
        assert T0 + timedelta(minutes=5) <= due <= T0 + timedelta(minutes=5, seconds=30)


async def _noop() -> str:
    return "ok"


@pytest.mark.anyio
async def test_a_day_of_schedule_runs_in_a_moment() -> None:
    """An hourly loop runs 24 times when the fake clock advances a day."""
    clock = FakeClock(T0)
    runs: list[datetime] = []

    async def body() -> str:
        runs.append(clock.now())
        return "ok"

    loop = Loop("hourly", parse_schedule("1h"), body, clock, rng=random.Random(1))
    async with anyio.create_task_group() as tg:
        await tg.start(loop.run)
        await clock.advance(hours=24)
        loop.stop()
        await clock.advance(seconds=1)
        tg.cancel_scope.cancel()
    assert 24 <= len(runs) <= 25
    assert all(b - a >= timedelta(hours=1) for a, b in zip(runs, runs[1:], strict=False))


@pytest.mark.anyio
async def test_crashing_body_is_counted_and_retried_with_backoff() -> None:
    """A body that raises is logged and counted; the loop keeps running and recovers."""
    clock = FakeClock(T0)
    calls = 0

    async def body() -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("boom")
        return "recovered"

    loop = Loop("flaky", parse_schedule("1h"), body, clock, rng=random.Random(1))
    async with anyio.create_task_group() as tg:
        await tg.start(loop.run)
        await clock.advance(minutes=2)
        tg.cancel_scope.cancel()
    assert calls == 4
    assert loop.total_failures == 3 and loop.failures == 0
    assert loop.last_outcome == "recovered"


@pytest.mark.anyio
async def test_trigger_during_a_run_is_coalesced() -> None:
    """A trigger while the body runs joins that run instead of queueing another."""
    clock = FakeClock(T0)
    release = anyio.Event()
    started = anyio.Event()
    calls = 0

    async def body() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return "ok"

    loop = Loop("sync", DAILY_2AM, body, clock, rng=random.Random(1))
    async with anyio.create_task_group() as tg:
        await tg.start(loop.run)
        assert loop.trigger() is True
        await started.wait()
        assert loop.trigger() is False and loop.trigger() is False
        release.set()
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert calls == 1


@pytest.mark.anyio
async def test_paused_loop_does_not_run_until_resumed() -> None:
    """A paused loop skips its schedule; resuming it runs the missed slot."""
    clock = FakeClock(T0)
    calls = 0

    async def body() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    loop = Loop("x", EVERY_5M, body, clock, rng=random.Random(1), last_run_at=T0, paused=True)
    async with anyio.create_task_group() as tg:
        await tg.start(loop.run)
        await clock.advance(hours=1)
        assert calls == 0 and loop.next_run_at is None
        loop.resume()
        await clock.advance(seconds=31)  # the missed slot runs now, plus at most 30 s of jitter
        tg.cancel_scope.cancel()
    assert calls == 1
