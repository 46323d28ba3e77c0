"""
The seam between the sync engine and a tracking API: one call in, a TrackingInfo or a ProviderError out.

A provider makes exactly one HTTP request per call. Retries, rate limiting, concurrency and
circuit breaking belong to the sync engine, which wraps them around `fetch`, so that every
policy lives in one place and can be tested without a network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shiptrackd.models import TrackingInfo

# A Reset above this is a Unix time (AfterShip, GitHub), below it seconds from now (IETF draft).
_EPOCH_THRESHOLD_S = 1_000_000_000


class RequestObserver(Protocol):
    """Called after every HTTP request a provider makes, for metrics and stats.

    `status` is None when no response arrived (connect error, timeout, reset);
    `error_kind` is the raised ProviderError's `kind`, or None on success.
    """

    def __call__(self, status: int | None, elapsed_s: float, error_kind: str | None) -> None: ...


def null_observer(status: int | None, elapsed_s: float, error_kind: str | None) -> None:
    """The default observer: providers always call one, so they need no `if observer` checks."""


@runtime_checkable
class Provider(Protocol):
    """A tracking API client; every failure is raised as a ProviderError subclass."""

    name: str
    batches: bool  # True if the API can track several numbers per request

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """Fetch one shipment's tracking with a single request: no retries, no rate limiting."""
        ...

    async def check_connectivity(self) -> float:
        """Make one cheap authenticated request and return its latency in seconds.

        Raises ProviderAuthError on 401/403, ProviderUnreachableError when no connection
        can be made, and TransientProviderError for anything else that is not a success.
        """
        ...

    async def aclose(self) -> None:
        """Close the connection pool; the provider is unusable afterwards."""
        ...


@dataclass(frozen=True)
class Quota:
    """What `X-RateLimit-Limit`, `-Remaining` and `-Reset` said on one answer (None: not sent)."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None  # seconds from the answer until the quota is full again


@runtime_checkable
class QuotaReporting(Protocol):
    """A provider that passes on the `X-RateLimit-*` headers of its answers (the throttle sets the observer)."""

    quota_observer: Callable[[Quota], None] | None


def quota_from_headers(headers: Mapping[str, str], now_epoch_s: float) -> Quota | None:
    """`X-RateLimit-Limit/Remaining/Reset` (or the IETF draft's `RateLimit-*`) as a Quota; None if absent or garbled."""

    def number(name: str) -> float | None:
        raw = headers.get(f"x-ratelimit-{name}") or headers.get(f"ratelimit-{name}")
        if raw is None:
            return None
        try:
            value = float(raw.split(",")[0].split(";")[0].strip())
        except ValueError:
            return None
        return value if math.isfinite(value) and value >= 0 else None

    limit, remaining, reset = number("limit"), number("remaining"), number("reset")
    if remaining is None:
        return None
    if reset is not None and reset > _EPOCH_THRESHOLD_S:
        reset = max(0.0, reset - now_epoch_s)
    return Quota(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining),
        reset_s=reset,
    )
