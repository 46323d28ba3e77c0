"""
The seam between the sync engine and a tracking API: one call in, a TrackingInfo or a ProviderError out.

A provider makes exactly one HTTP request per call. Retries, rate limiting, concurrency and
circuit breaking belong to the sync engine, which wraps them around `fetch`, so that every
policy lives in one place and can be tested without a network.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shiptrackd.models import TrackingInfo


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
