"""
Per-endpoint request windows, learnt from `X-RateLimit-*` answers: AfterShip limits each endpoint separately.

AfterShip (2024-07 and later, reference/tracking-apis.md §3) allows e.g. 20 creates but only 5
single-tracking reads a second, and says where each endpoint stands on every answer
(`X-RateLimit-Limit`, `-Remaining`, `-Reset` as a Unix time). The account-wide throttle can't
express that, so the client keeps one window per endpoint: it starts from the declared figure,
counts its own requests (so concurrent ones don't all go at once), believes the server when
it says more, and waits for the window's reset when it is spent instead of earning a 429.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio

from shiptrackd.providers.base import quota_from_headers

# A Reset above this is a Unix time, below it seconds from now (as in base.quota_from_headers).
_EPOCH_THRESHOLD_S = 1_000_000_000
MAX_WAIT_S = 60.0  # a Reset further out than this is not believed (a clock far off, a garbled header)


@dataclass
class Window:
    """Where one endpoint stands: its limit, what is left, and when (Unix time) the window refills."""

    limit: int
    remaining: int
    reset_at: float


class EndpointLimits:
    """One window per endpoint; `await acquire(endpoint)` before each request, `observe` after its answer."""

    def __init__(
        self,
        declared: Mapping[str, int],
        *,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._now = now
        self._sleep = sleep
        self.windows = {name: Window(limit, limit, 0.0) for name, limit in declared.items()}
        self.waits = 0  # how often a request waited for a window: a figure for stats and tests

    async def acquire(self, endpoint: str) -> None:
        """Take one request from the endpoint's window, waiting for its reset if it is spent."""
        window = self.windows.get(endpoint)
        if window is None:
            return
        while True:
            now = self._now()
            if now >= window.reset_at:
                window.remaining, window.reset_at = window.limit, math.floor(now) + 1.0
            if window.remaining > 0:
                window.remaining -= 1
                return
            self.waits += 1
            await self._sleep(min(window.reset_at - now, MAX_WAIT_S))

    def hold(self, endpoint: str, seconds: float) -> None:
        """A 429 for this endpoint: nothing more from its window for *seconds* (its Retry-After or reset)."""
        window = self.windows.get(endpoint)
        if window is not None:
            window.remaining = 0
            window.reset_at = max(window.reset_at, self._now() + min(seconds, MAX_WAIT_S))

    def observe(self, endpoint: str, headers: Mapping[str, str]) -> None:
        """Believe the server's `X-RateLimit-*` for this endpoint (a newer window replaces ours)."""
        window = self.windows.get(endpoint)
        quota = quota_from_headers(headers, self._now())
        if window is None or quota is None or quota.remaining is None:
            return
        if quota.limit:
            window.limit = quota.limit
        raw_reset = _reset_header(headers)
        now = self._now()
        reset_at = now + min(quota.reset_s, MAX_WAIT_S) if quota.reset_s is not None else window.reset_at
        if raw_reset is not None and raw_reset > _EPOCH_THRESHOLD_S and raw_reset - now <= MAX_WAIT_S:
            reset_at = raw_reset
        if reset_at > window.reset_at:
            window.remaining, window.reset_at = quota.remaining, reset_at
        else:
            window.remaining = min(window.remaining, quota.remaining)


class SlidingWindow:
    """At most `count` request starts in any `period_s`: for a limit the answers say nothing about.

    EasyPost documents 5 requests a second on index endpoints but sends no X-RateLimit-*, and
    does not say how it counts; a sliding log is safe against both fixed windows and a token
    bucket of that size (a fixed window aligned to the wall clock is not: 5 at the end of one
    second and 5 at the start of the next is 10 in a tenth of a second).
    """

    def __init__(
        self,
        count: int,
        period_s: float = 1.0,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.period_s = period_s
        self._starts: deque[float] = deque(maxlen=count)
        self._now = now
        self._sleep = sleep
        self.waits = 0

    async def acquire(self) -> None:
        """Wait until a request may start without exceeding the window, then count it."""
        while len(self._starts) == self._starts.maxlen and (wait := self._starts[0] + self.period_s - self._now()) > 0:
            self.waits += 1
            await self._sleep(wait)
        self._starts.append(self._now())


def _reset_header(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
