"""
Every call to the tracking API passes through here: the rate limit, the
account-wide Retry-After pause, retries with backoff, and the counters.

The limit belongs to the account, not to a shipment: one 429 pauses every
request to the provider until its Retry-After has passed.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from datetime import datetime, timedelta

import anyio
import stamina
from loguru import logger
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from ..clock import utcnow
from ..config import ProviderConfig
from ..errors import ProviderUnreachableError, RateLimitedError, TransientProviderError
from ..models import TrackingInfo
from ..providers.base import Provider

# A 429 that keeps coming back after this many pauses fails the shipment.
MAX_RATE_LIMITED_ROUNDS = 5


def _log_retry(details: RetryDetails) -> None:
    # The error says what is retried: a provider call names its tracking number, a delivery its channel.
    logger.warning(
        "retry {} in {:.2f}s after {}: {}",
        details.retry_num,
        details.wait_for,
        type(details.caused_by).__name__,
        details.caused_by,
    )


def install_retry_logging() -> None:
    """Log retries through loguru; set explicitly so an installed structlog or prometheus changes nothing."""
    set_on_retry_hooks([_log_retry])


class ApiStats:
    """Counters and recent latencies of the provider's HTTP requests (the provider's observer)."""

    def __init__(self, window: int = 2000) -> None:
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_error: Counter[str] = Counter()
        self.retries = 0
        self.rate_limited = 0
        self._latencies: deque[float] = deque(maxlen=window)

    def observe(self, status: int | None, elapsed_s: float, error_kind: str | None) -> None:
        self.requests += 1
        self.by_status[str(status) if status is not None else "none"] += 1
        if error_kind:
            self.by_error[error_kind] += 1
        self._latencies.append(elapsed_s)

    def latency_percentiles(self) -> dict[str, float | None]:
        values = sorted(self._latencies)
        if not values:
            return {"p50_s": None, "p95_s": None}
        return {
            "p50_s": values[int(0.50 * (len(values) - 1))],
            "p95_s": values[int(0.95 * (len(values) - 1))],
        }

    def snapshot(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "by_status": dict(self.by_status),
            "by_error": dict(self.by_error),
            **self.latency_percentiles(),
        }


class Pacer:
    """
    `count` request starts per `period_s`, evenly spaced and never more than `count` in any window
    of `period_s`.

    Not aiolimiter's AsyncLimiter(1, period/count): its bucket of one cannot bank the time a
    waiter wakes late (timer granularity, a busy event loop), so every slot is lost by that much;
    at 50/s with 20 ms answers it paced 46.7/s, 0.93 of the limit (bench/bench_throughput.py).
    Here a waiter's slot sits on a fixed grid, so a late wake-up is made up by the next one,
    which may follow it a little sooner (never sooner than half an interval, and never above
    `count` in a window); a request after an idle spell is spaced a full interval as before.
    """

    def __init__(self, count: int, period_s: float) -> None:
        self.interval_s = period_s / count
        self.period_s = period_s
        self._slack_s = min(self.interval_s / 2, 0.05)  # how much lateness the grid absorbs
        self._next = -math.inf  # the next grid slot (event loop time)
        self._starts: deque[float] = deque(maxlen=count)  # the last `count` starts
        self._lock = anyio.Lock()  # FIFO: waiters take slots in arrival order

    async def acquire(self) -> None:
        async with self._lock:
            now = anyio.current_time()
            start = self._next
            if len(self._starts) == self._starts.maxlen:
                start = max(start, self._starts[0] + self.period_s)
            if start > now:
                await anyio.sleep(start - now)
                now = anyio.current_time()
                self._next = max(start, now - self._slack_s) + self.interval_s  # woke late: keep the grid
            else:
                self._next = now + self.interval_s  # came after its slot (idle): a full interval to the next
            self._starts.append(now)


class ProviderThrottle:
    def __init__(self, provider: Provider, config: ProviderConfig, stats: ApiStats) -> None:
        self.provider = provider
        self.config = config
        self.stats = stats
        limit = config.rate_limit
        self._limiter = Pacer(limit.count, limit.period_s) if limit else None
        self._paused_until = 0.0  # time.monotonic()
        self.unreachable_in_a_row = 0

    @property
    def paused_until(self) -> datetime | None:
        """When the account-wide Retry-After pause ends, if one is in effect."""
        remaining = self._paused_until - time.monotonic()
        return utcnow() + timedelta(seconds=remaining) if remaining > 0 else None

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """One shipment's tracking, retried on transient errors, waiting out 429s without spending retries."""
        for _ in range(MAX_RATE_LIMITED_ROUNDS):
            try:
                return await self._fetch_with_retries(carrier_code, tracking_number)
            except RateLimitedError as exc:
                self.stats.rate_limited += 1
                self.pause(exc.retry_after_s)
                last = exc
        raise last

    async def _fetch_with_retries(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        async for attempt in stamina.retry_context(
            on=_is_retryable, attempts=self.config.retries + 1, wait_initial=0.5, wait_max=10.0, timeout=None
        ):
            with attempt:
                if attempt.num > 1:
                    self.stats.retries += 1
                await self._wait_turn()
                try:
                    info = await self.provider.fetch(carrier_code, tracking_number)
                except ProviderUnreachableError:
                    self.unreachable_in_a_row += 1
                    raise
                except Exception:  # any answer, a 429 or a 500 included, proves the API is reachable
                    self.unreachable_in_a_row = 0
                    raise
                self.unreachable_in_a_row = 0
                return info
        raise AssertionError("unreachable: stamina re-raises the last error")

    async def take_slot(self) -> None:
        """Take one request's place under the rate limit (for calls made outside fetch, like the health probe)."""
        if self._limiter is not None:
            await self._limiter.acquire()

    async def _wait_turn(self) -> None:
        """Wait out any Retry-After pause, then take a slot from the rate limiter."""
        # Not polling: sleep exactly as long as the pause, again if a new 429 extended it meanwhile.
        while (remaining := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await anyio.sleep(remaining)
        await self.take_slot()


def _is_retryable(exc: Exception) -> bool:
    return isinstance(exc, TransientProviderError) and not isinstance(exc, RateLimitedError)
