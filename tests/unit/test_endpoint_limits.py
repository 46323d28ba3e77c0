"""
Per-endpoint windows (AfterShip): declared figures, learnt from X-RateLimit-*, waiting for the reset when spent.
"""

from __future__ import annotations

import pytest

from shiptrackd.providers.endpoint_limits import EndpointLimits, SlidingWindow


class FakeTime:
    """A wall clock that only moves when the limiter sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limits_for(clock: FakeTime, **declared: int) -> EndpointLimits:
    return EndpointLimits(
        {k.replace("_", " "): v for k, v in declared.items()}, now=lambda: clock.now, sleep=clock.sleep
    )


@pytest.mark.anyio
async def test_declared_window_then_wait_for_the_next_second() -> None:
    """Three a second declared: the fourth request waits until the window's second ends."""
    clock = FakeTime(1_767_000_000.25)
    limits = limits_for(clock, GET=3)
    for _ in range(4):
        await limits.acquire("GET")
    assert clock.slept == [pytest.approx(0.75)] and limits.waits == 1


@pytest.mark.anyio
async def test_headers_lower_the_limit_and_name_the_reset() -> None:
    """An answer saying Limit 2, Remaining 0, Reset <unix> makes the next request wait for that reset."""
    clock = FakeTime(1_767_000_000.5)
    limits = limits_for(clock, GET=5)
    await limits.acquire("GET")
    limits.observe("GET", {"x-ratelimit-limit": "2", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1767000001"})
    await limits.acquire("GET")
    assert clock.slept == [pytest.approx(0.5)]
    assert limits.windows["GET"].limit == 2


@pytest.mark.anyio
async def test_unknown_endpoints_and_garbled_headers_change_nothing() -> None:
    """An endpoint without a declared window never waits; garbled headers are ignored."""
    clock = FakeTime(1_767_000_000.0)
    limits = limits_for(clock, GET=1)
    for _ in range(5):
        await limits.acquire("POST")
    limits.observe("GET", {"x-ratelimit-remaining": "lots"})
    assert limits.windows["GET"].remaining == 1 and clock.slept == []


@pytest.mark.anyio
async def test_a_reset_far_in_the_future_is_capped() -> None:
    """A Reset an hour away (a skewed clock, a garbled header) makes no request wait more than a minute."""
    clock = FakeTime(1_767_000_000.0)
    limits = limits_for(clock, GET=1)
    limits.observe("GET", {"x-ratelimit-limit": "1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1767003600"})
    await limits.acquire("GET")
    assert clock.slept and max(clock.slept) <= 60


@pytest.mark.anyio
async def test_sliding_window_never_lets_more_than_count_start_in_a_period() -> None:
    """Five a second, sliding: the sixth start waits until the first is a full second old, whatever the wall clock."""
    clock = FakeTime(100.9)
    window = SlidingWindow(5, 1.0, now=lambda: clock.now, sleep=clock.sleep)
    starts = []
    for _ in range(11):
        await window.acquire()
        starts.append(clock.now)
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in zip(starts, starts[5:], strict=False))
    assert window.waits == 2
