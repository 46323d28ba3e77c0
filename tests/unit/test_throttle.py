"""
ProviderThrottle on its own, with a scripted provider: which errors are retried, how 429s pause
every caller without spending retries, the unreachable counter behind the circuit, the counters.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest

from shiptrackd.config import ProviderConfig, RateLimit
from shiptrackd.errors import (
    InvalidResponseError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderUnreachableError,
    RateLimitedError,
    ShipmentNotFoundError,
    TransientProviderError,
)
from shiptrackd.models import TrackingInfo
from shiptrackd.providers.base import Limits, ProviderBase, StatusMap
from shiptrackd.sync import throttle as throttle_mod
from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

pytestmark = pytest.mark.anyio

OK = TrackingInfo(tracking_number="1Z", status_code="IT", carrier_code="ups")


class ScriptedProvider(ProviderBase):
    """Answers each call with the next scripted outcome (an exception is raised); records when calls start."""

    name = "scripted"
    kind = "scripted"
    limits = Limits()
    status_map = StatusMap({"IT": ("IT", "")})

    def __init__(self, *script: object, default: object = OK) -> None:
        self.script = deque(script)
        self.default = default
        self.calls: list[tuple[str, float]] = []

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        self.calls.append((tracking_number, time.monotonic()))
        outcome = self.script.popleft() if self.script else self.default
        if isinstance(outcome, BaseException):
            raise outcome
        await anyio.lowlevel.checkpoint()
        assert isinstance(outcome, TrackingInfo)
        return outcome

    async def check_connectivity(self) -> float:
        return 0.0

    async def aclose(self) -> None:
        pass


def make(provider: ScriptedProvider, *, rate_limit: RateLimit | None = None, retries: int = 3) -> ProviderThrottle:
    config = ProviderConfig(rate_limit=rate_limit, retries=retries)
    return ProviderThrottle(provider, config, ApiStats())


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (TransientProviderError("503"), 3),
        (ProviderUnreachableError("refused"), 3),
        (ProviderAuthError("401", status=401), 1),
        (ShipmentNotFoundError("404", status=404), 1),
        (InvalidResponseError("status_code: 'ZZ'"), 1),
        (PermanentProviderError("400", status=400), 1),
    ],
    ids=["transient", "unreachable", "auth", "not-found", "invalid-response", "permanent"],
)
async def test_only_transient_errors_are_retried(error: Exception, attempts: int) -> None:
    """5xx-like and connection failures are retried up to the attempt cap; permanent answers are tried once."""
    provider = ScriptedProvider(default=error)
    throttle = make(provider)
    with pytest.raises(type(error)):
        await throttle.fetch("ups", "1Z")
    assert len(provider.calls) == attempts
    assert throttle.stats.retries == attempts - 1


async def test_a_transient_failure_then_success_returns_the_answer_and_counts_retries() -> None:
    """Two 503s then an answer: the caller gets the answer and the two retries are counted."""
    provider = ScriptedProvider(TransientProviderError("503"), TransientProviderError("503"))
    throttle = make(provider)
    assert await throttle.fetch("ups", "1Z") is OK
    assert len(provider.calls) == 3 and throttle.stats.retries == 2


async def test_retries_follow_the_configured_count() -> None:
    """`[provider] retries = 1` means two attempts in all."""
    provider = ScriptedProvider(default=TransientProviderError("503"))
    with pytest.raises(TransientProviderError):
        await make(provider, retries=1).fetch("ups", "1Z")
    assert len(provider.calls) == 2


async def test_a_429_pauses_every_caller_for_its_retry_after() -> None:
    """One caller's 429 holds back every other caller's next request until Retry-After has passed."""
    provider = ScriptedProvider(RateLimitedError("429", retry_after_s=0.3))
    throttle = make(provider)
    results: list[TrackingInfo] = []

    async def call(number: str) -> None:
        results.append(await throttle.fetch("ups", number))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "A")
        await anyio.wait_all_tasks_blocked()
        assert throttle.paused_until is not None and throttle.paused_until > datetime.now(UTC)
        tg.start_soon(call, "B")
    (first_number, refused_at), *later = provider.calls
    assert first_number == "A" and len(later) == 2
    assert all(at - refused_at >= 0.3 - 0.01 for _, at in later)
    assert len(results) == 2 and throttle.stats.rate_limited == 1
    assert throttle.stats.retries == 0  # waiting out a 429 is not a retry
    assert throttle.paused_until is None


async def test_a_429_cuts_the_pace_and_no_request_waiting_for_its_slot_starts_during_the_pause() -> None:
    """A 429 halves the pace, and a request already waiting for its slot when it came waits out the pause too."""
    provider = ScriptedProvider(RateLimitedError("429", retry_after_s=0.3))
    throttle = make(provider, rate_limit=RateLimit(10, 1.0))
    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(throttle.fetch, "ups", f"1Z{i}")
    (_, refused_at), *later = sorted(provider.calls, key=lambda call: call[1])
    assert len(later) == 3  # the refused shipment was tried again, not failed
    assert all(at - refused_at >= 0.3 - 0.01 for _, at in later)
    assert throttle.controller.rate == pytest.approx(5.0, rel=0.05) and throttle.controller.cuts == 1
    starts = [at for _, at in later]
    assert all(b - a >= 0.2 - 0.02 for a, b in zip(starts, starts[1:], strict=False))  # paced at 5/s now


async def test_clean_answers_never_pace_above_the_configured_rate() -> None:
    """The configured rate is the ceiling: clean answers at it leave the pace there."""
    provider = ScriptedProvider()
    throttle = make(provider, rate_limit=RateLimit(50, 1.0))
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(throttle.fetch, "ups", f"1Z{i}")
    assert throttle.controller.rate == 50.0 and throttle.controller.cuts == 0


async def test_a_longer_retry_after_is_never_shortened_by_a_later_shorter_one() -> None:
    """The pause only ever extends: a second, shorter Retry-After does not cut the first one short."""
    throttle = make(ScriptedProvider())
    throttle.pause(0.5)
    until = throttle.paused_until
    throttle.pause(0.1)
    assert throttle.paused_until is not None and until is not None
    assert abs((throttle.paused_until - until).total_seconds()) < 0.05


async def test_a_429_that_keeps_coming_gives_up_after_the_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that answers 429 every time fails the call after MAX_RATE_LIMITED_ROUNDS pauses."""
    monkeypatch.setattr(throttle_mod, "MAX_RATE_LIMITED_ROUNDS", 3)
    provider = ScriptedProvider(default=RateLimitedError("429", retry_after_s=0.0))
    throttle = make(provider)
    with pytest.raises(RateLimitedError):
        await throttle.fetch("ups", "1Z")
    assert len(provider.calls) == 3 and throttle.stats.rate_limited == 3


async def test_unreachable_counter_counts_attempts_in_a_row_and_resets_on_an_answer() -> None:
    """Each refused connection counts towards the circuit; any answer from the API resets the count."""
    provider = ScriptedProvider(*[ProviderUnreachableError("refused")] * 3)
    throttle = make(provider)
    with pytest.raises(ProviderUnreachableError):
        await throttle.fetch("ups", "1Z")
    assert throttle.unreachable_in_a_row == 3
    await throttle.fetch("ups", "1Z")
    assert throttle.unreachable_in_a_row == 0

    provider.script.extend([ProviderUnreachableError("refused"), ShipmentNotFoundError("404")])
    with pytest.raises(ShipmentNotFoundError):
        await throttle.fetch("ups", "1Z")
    assert throttle.unreachable_in_a_row == 0  # a 404 is an answer: the API is reachable


async def test_the_rate_limiter_spaces_requests_evenly() -> None:
    """At 20/s requests start at least 50 ms apart, with no initial burst."""
    provider = ScriptedProvider()
    throttle = make(provider, rate_limit=RateLimit(20, 1.0))
    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(throttle.fetch, "ups", f"1Z{i}")
    starts = sorted(at for _, at in provider.calls)
    assert len(starts) == 5
    # The i-th call cannot start before i slots of 50 ms have passed since the first one (a start may
    # lag its slot when the loop is busy, so compare against the first call, not the previous one).
    assert all(at - starts[0] >= i * 0.05 - 0.005 for i, at in enumerate(starts))
    assert starts[-1] - starts[0] < 4 * 0.05 + 0.15  # paced, not stalled


def test_api_stats_snapshot_counts_statuses_errors_and_latency_percentiles() -> None:
    """ApiStats counts requests by status and error kind and reports p50/p95 latency."""
    stats = ApiStats()
    assert stats.snapshot()["p50_s"] is None
    for i in range(100):
        stats.observe(200, i / 1000, None)
    stats.observe(None, 1.0, "unreachable")
    snap = stats.snapshot()
    assert snap["requests"] == 101
    assert snap["by_status"] == {"200": 100, "none": 1} and snap["by_error"] == {"unreachable": 1}
    assert snap["p50_s"] == 0.05 and snap["p95_s"] == 0.095
