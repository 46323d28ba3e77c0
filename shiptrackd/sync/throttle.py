"""
Every call to the tracking API passes through here: the rate limit, the
account-wide Retry-After pause, retries with backoff, and the counters.

The limit belongs to the account, not to a shipment: one 429 pauses every
request to the provider until its Retry-After has passed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import anyio
import stamina
from loguru import logger
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from ..clock import utcnow
from ..config import ProviderConfig, RateLimit
from ..errors import (
    InvalidResponseError,
    ProviderError,
    ProviderUnreachableError,
    RateLimitedError,
    TransientProviderError,
)
from ..models import TrackingInfo
from ..providers.base import Parcel, Provider, Quota, QuotaReporting, QuotaStatus, Registration
from .rate_control import RateController

T = TypeVar("T")
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cluster.budget import SharedBudget

# A 429 that keeps coming back after this many pauses defers the shipment to a later run.
DEFAULT_RATE_LIMIT = ProviderConfig.rate_limit  # what an account left without `rate_limit` gets
MAX_RATE_LIMITED_ROUNDS = 5

_T = TypeVar("_T")


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
    """Counters and recent latencies of the provider's HTTP requests (the provider's observer).

    Each provider account has its own; with a `parent` (the daemon's total over every account)
    each count lands in both, so `stats` and `/metrics` show the total and each account's share.
    """

    def __init__(self, window: int = 2000, *, parent: ApiStats | None = None) -> None:
        self.parent = parent
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_error: Counter[str] = Counter()
        self.retries = 0
        self.rate_limited = 0
        self.strays = 0  # numbers a batch answer carried that we did not ask for (ignored)
        self.omitted = 0  # numbers we asked for that a batch answer left out (failed alone)
        self._latencies: deque[float] = deque(maxlen=window)

    def observe(self, status: int | None, elapsed_s: float, error_kind: str | None) -> None:
        self.requests += 1
        self.by_status[str(status) if status is not None else "none"] += 1
        if error_kind:
            self.by_error[error_kind] += 1
        self._latencies.append(elapsed_s)
        if self.parent is not None:
            self.parent.observe(status, elapsed_s, error_kind)

    def add(self, counter: str, n: int = 1) -> None:
        """Add to one of the plain counters (retries, rate_limited, strays, omitted), the parent's too."""
        setattr(self, counter, getattr(self, counter) + n)
        if self.parent is not None:
            self.parent.add(counter, n)

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
            "strays": self.strays,
            "omitted": self.omitted,
            "by_status": dict(self.by_status),
            "by_error": dict(self.by_error),
            **self.latency_percentiles(),
        }


class Pacer:
    """
    Request starts evenly spaced `interval_s` apart (None: unpaced), and never more than
    `window.count` in any `window.period_s` (the configured limit, a hard cap whatever the
    interval). The throttle changes `interval_s` as the rate controller adapts it.

    Not aiolimiter's AsyncLimiter(1, period/count): its bucket of one cannot bank the time a
    waiter wakes late (timer granularity, a busy event loop), so every slot is lost by that much;
    at 50/s with 20 ms answers it paced 46.7/s, 0.93 of the limit (bench/bench_throughput.py).
    Here a waiter's slot sits on a fixed grid, so a late wake-up is made up by the next one,
    which may follow it a little sooner (never sooner than half an interval, and never above
    `count` in a window); a request after an idle spell is spaced a full interval as before.
    """

    def __init__(self, interval_s: float | None, window: RateLimit | None = None) -> None:
        self.interval_s = interval_s
        self._window = window
        self._next = -math.inf  # the next grid slot (event loop time)
        self._starts: deque[float] | None = deque(maxlen=window.count) if window else None  # the last `count` starts
        self._lock = anyio.Lock()  # FIFO: waiters take slots in arrival order

    async def acquire(self) -> None:
        if self.interval_s is None and self._starts is None:
            return
        async with self._lock:
            interval = self.interval_s or 0.0
            now = anyio.current_time()
            start = self._next
            if self._starts is not None and self._window is not None and len(self._starts) == self._starts.maxlen:
                start = max(start, self._starts[0] + self._window.period_s)
            if start > now:
                await anyio.sleep(start - now)
                now = anyio.current_time()
                slack = min(interval / 2, 0.05)  # how much lateness the grid absorbs
                self._next = max(start, now - slack) + interval  # woke late: keep the grid
            else:
                self._next = now + interval  # came after its slot (idle): a full interval to the next
            if self._starts is not None:
                self._starts.append(now)


class ProviderThrottle:
    """
    The one way to the provider: an adaptive pace (rate_control.RateController behind a Pacer),
    the account-wide Retry-After pause, retries with backoff, and the counters.

    A shipment answered 429 is not failed: it waits out the pause and takes the next slot, up to
    MAX_RATE_LIMITED_ROUNDS times; after that `fetch` raises RateLimitedError and the engine
    defers the shipment (left due, not counted as failed).
    """

    def __init__(self, provider: Provider, config: ProviderConfig, stats: ApiStats) -> None:
        self.provider = provider
        self.config = config = with_documented_rate(config, provider.limits.rate)
        self.stats = stats
        limit = config.rate_limit
        self.controller = RateController(limit.per_second if limit else None)
        self._pacer = Pacer(self.controller.interval_s(), limit)
        self._paused_until = 0.0  # time.monotonic()
        self.unreachable_in_a_row = 0
        self.auth_failed_at: datetime | None = None  # this account's last 401/403 in a sync (the engine sets it)
        self.quota_exhausted = ""  # the provider's words when a registration found its quota spent
        self.quota_readings: deque[QuotaStatus] = deque(maxlen=500)  # getquota answers, oldest first
        # The cluster's token bucket and 429 pause (cluster/budget.py) when daemons share a store.
        self.shared: SharedBudget | None = None
        if isinstance(provider, QuotaReporting):
            provider.quota_observer = self._observe_quota

    async def aclose(self, *, provider: bool = True) -> None:
        """Close the provider's client (unless another throttle took it over) and the shared budget's connection."""
        if provider:
            await self.provider.aclose()
        if self.shared is not None:
            await self.shared.aclose()

    @property
    def batch_size(self) -> int:
        """How many shipments one request carries (the provider's declared batch size)."""
        return max(1, self.provider.limits.batch_size)

    @property
    def paused_until(self) -> datetime | None:
        """When the account-wide Retry-After pause ends, if one is in effect."""
        remaining = self._paused_until - time.monotonic()
        return utcnow() + timedelta(seconds=remaining) if remaining > 0 else None

    def carry_over(self, old: ProviderThrottle) -> None:
        """Keep what the account taught the throttle this replaces (a reload with a new key or URL)."""
        remaining = old._paused_until - time.monotonic()
        if remaining > 0:  # the account's Retry-After outlives a new key or URL
            self.pause(remaining)
        same = (old.config.base_url, old.config.rate_limit) == (self.config.base_url, self.config.rate_limit)
        if same:  # the same account under the same ceiling: the learned pace still holds
            self.controller = old.controller
            self._pacer.interval_s = self.controller.interval_s()

    @property
    def circuit(self) -> str:
        """ "open" once `circuit_breaker` calls in a row found no connection (a run stops early), else "closed"."""
        return "open" if self.unreachable_in_a_row >= self.config.circuit_breaker else "closed"

    def figures(self) -> dict[str, object]:
        """This account's own figures, for status, stats and /metrics."""
        return {
            "name": self.provider.name,
            "kind": self.provider.kind,
            "requests": self.stats.requests,
            "rate_limited": self.stats.rate_limited,
            "errors": sum(self.stats.by_error.values()),
            "retries": self.stats.retries,
            "circuit": self.circuit,
            "unreachable_in_a_row": self.unreachable_in_a_row,
            "paused_until": self.paused_until,
            "rate_per_s": round(1 / self._pacer.interval_s, 3) if self._pacer.interval_s else None,
        }

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """One shipment's tracking, retried on transient errors, waiting out 429s without spending retries."""
        return await self.call(lambda: self.provider.fetch(carrier_code, tracking_number))

    async def fetch_many(self, parcels: Sequence[Parcel]) -> dict[str, TrackingInfo | ProviderError]:
        """Up to a batch of parcels with one request (one rate-limit slot), an answer for each.

        A number the provider left out of its answer fails alone (InvalidResponseError); one it
        answered without being asked is ignored and counted in `stats.strays`.
        """
        answer = await self.call(lambda: self.provider.fetch_many(parcels))
        return self._complete(parcels, answer, "tracking")

    async def register(self, parcels: Sequence[Parcel]) -> dict[str, Registration | ProviderError]:
        """Register up to a batch of parcels with one request; each gets a Registration or its error."""
        answer = await self.call(lambda: self.provider.register(parcels))
        return self._complete(parcels, answer, "registration")

    async def unregister(self, parcels: Sequence[Parcel]) -> None:
        """Stop tracking up to a batch of parcels with one request."""
        await self.call(lambda: self.provider.unregister(parcels))

    def _complete(
        self, parcels: Sequence[Parcel], answer: Mapping[str, _T | ProviderError], what: str
    ) -> dict[str, _T | ProviderError]:
        asked = {p.tracking_number for p in parcels}
        self.stats.add("strays", sum(1 for number in answer if number not in asked))
        out: dict[str, _T | ProviderError] = {}
        for number in asked:
            got = answer.get(number)
            if got is None:
                self.stats.add("omitted")
                got = InvalidResponseError(f"{self.provider.name}: the batch answer has no {what} for {number}")
            out[number] = got
        return out

    async def read_quota(self) -> QuotaStatus | None:
        """The account's quota now (one request under the limit), kept for the run-out forecast."""
        quota = await self.call(self.provider.quota)
        if quota is not None:
            self.quota_readings.append(quota)
            if quota.remaining > 0:
                self.quota_exhausted = ""
        return quota

    async def call(self, request: Callable[[], Awaitable[_T]]) -> _T:
        """One provider request under the limit: retried on transient errors, 429s waited out.

        A 429 is not a failure: the call waits out the pause and takes the next slot, up to
        MAX_RATE_LIMITED_ROUNDS times, then raises RateLimitedError (the engine defers).
        """
        for _ in range(MAX_RATE_LIMITED_ROUNDS):
            try:
                return await self._with_retries(request)
            except RateLimitedError as exc:
                self.stats.add("rate_limited")
                if not self.endpoint_scoped(exc):  # one endpoint's own limit: its window waits, not the account
                    self.pause(exc.retry_after_s)
                    if self.shared is not None:  # the account's pause: every daemon on it waits
                        await self.shared.pause(exc.retry_after_s)
                last = exc
        raise last

    async def _with_retries(self, request: Callable[[], Awaitable[_T]]) -> _T:
        # The first attempt outside stamina: its retry context (tenacity beneath) cost ~0.05 ms a
        # request, a tenth of the engine's CPU per synced shipment, for the happy path that never
        # retries. A retryable failure enters stamina as its attempt 1 (re-raised there, not sent
        # again), so the attempts, the backoff and the retry log are stamina's as before.
        try:
            return await self._attempt(request)
        except Exception as exc:
            if not _is_retryable(exc):
                raise
            first = exc
        async for attempt in stamina.retry_context(
            on=_is_retryable, attempts=self.config.retries + 1, wait_initial=0.5, wait_max=10.0, timeout=None
        ):
            with attempt:
                if attempt.num == 1:
                    raise first
                self.stats.add("retries")
                return await self._attempt(request)
        raise AssertionError("unreachable: stamina re-raises the last error")

    async def _attempt(self, request: Callable[[], Awaitable[_T]]) -> _T:
        """One request in its pacer slot; what its outcome says about the account (reachable, its pace)."""
        sent_at = await self._wait_turn()
        try:
            result = await request()
        except ProviderUnreachableError:
            self.unreachable_in_a_row += 1
            raise
        except RateLimitedError as exc:
            self.unreachable_in_a_row = 0
            scoped = self.endpoint_scoped(exc)  # another endpoint's limit says nothing of the account's pace
            if not scoped and self.controller.on_rate_limited(anyio.current_time(), sent_at):
                self._pacer.interval_s = self.controller.interval_s()
            raise
        except ProviderError as exc:  # any answer, a 500 included, proves the API is reachable
            self.unreachable_in_a_row = 0
            if exc.status is not None and exc.status < 500:  # a 5xx is no reason to speed up
                self._answered()
            raise
        except Exception:
            self.unreachable_in_a_row = 0
            raise
        self.unreachable_in_a_row = 0
        self._answered()
        return result

    def endpoint_scoped(self, exc: RateLimitedError) -> bool:
        """A 429 from an endpoint the provider declares its own limit for (Limits.endpoints): that endpoint's alone."""
        return bool(exc.endpoint) and exc.endpoint in self.provider.limits.endpoints

    async def take_slot(self) -> None:
        """Take one request's place under the rate limit (for calls made outside fetch, like the health probe)."""
        await self._pacer.acquire()
        if self.shared is not None:  # the account's limit holds for the cluster's probes too
            await self.shared.take()
        self.controller.on_sent(anyio.current_time())

    async def _wait_turn(self) -> float:
        """Wait out any Retry-After pause, then take a slot; returns when the request may start."""
        # Not polling: sleep exactly as long as the pause, again if a new 429 extended it meanwhile.
        # A 429 may arrive while we wait for our slot: then the slot is given up and the pause waited.
        while True:
            while (remaining := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
                await anyio.sleep(remaining)
            await self._pacer.acquire()
            if self.shared is not None:  # and a token from the cluster's budget (its pause included)
                await self.shared.take()
            if self._paused_until <= time.monotonic():
                break
        now = anyio.current_time()
        self.controller.on_sent(now)
        return now

    def _answered(self) -> None:
        """An answer that was not a 429: the controller may step the rate up."""
        self.controller.on_answer(anyio.current_time())
        self._pacer.interval_s = self.controller.interval_s()

    def _observe_quota(self, quota: Quota) -> None:
        """X-RateLimit-* headers from the provider, seen before the answer itself reaches us."""
        if self.controller.on_quota(anyio.current_time(), quota):
            self._pacer.interval_s = self.controller.interval_s()


def with_documented_rate(config: ProviderConfig, documented: RateLimit | None) -> ProviderConfig:
    """The account's config with the provider's documented rate where `rate_limit` was left at its default.

    The default (200/min) is ShipEngine's; a 17TRACK account left at it would send 3.3 requests a
    second against a documented 3, an AfterShip one 3.3 reads a second where 5 are allowed. A
    `rate_limit` the operator set is kept as it is: accounts are often allowed more, or less.
    """
    if documented is None or config.rate_limit != DEFAULT_RATE_LIMIT or documented == config.rate_limit:
        return config
    return dataclasses.replace(config, rate_limit=documented)


def _is_retryable(exc: Exception) -> bool:
    return isinstance(exc, TransientProviderError) and not isinstance(exc, RateLimitedError)
