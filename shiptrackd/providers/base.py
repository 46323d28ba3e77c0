"""
The seam between the sync engine and a tracking API: requests in, TrackingInfo or a ProviderError out.

A provider makes exactly one HTTP request per call (`fetch` for one number, `fetch_many` for
up to `limits.batch_size`, `register`/`unregister` likewise). Retries, rate limiting,
concurrency, batching and circuit breaking belong to the sync engine and its throttle, which
wrap them around these calls, so every policy lives in one place and is provider-agnostic:
no `if provider == ...` outside providers/. What differs between providers is declared here
as data (Limits, StatusMap) or hidden behind a method.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

from shiptrackd.errors import (
    InvalidResponseError,
    PermanentProviderError,
    ProviderError,
    PushRejectedError,
    ShipmentNotFoundError,
)
from shiptrackd.models import TrackingInfo
from shiptrackd.units import RateLimit
from shiptrackd.wire.names import STATUS_CODES

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


@dataclass(frozen=True)
class Parcel:
    """One shipment as a provider sees it; `ref` is what `register` returned for it ("" before)."""

    carrier_code: str
    tracking_number: str
    ref: str = ""


@dataclass(frozen=True)
class Registration:
    """A number the provider now tracks: its id there (`ref`, never "") and its carrier there.

    For a parcel registered without a carrier, `carrier_code` is the one the provider detected
    ("" when it did not say); the engine stores it as the shipment's carrier.
    """

    ref: str
    carrier_code: str = ""


@dataclass(frozen=True)
class Limits:
    """What the provider documents about its own limits; the engine and throttle act on these alone.

    `rate` is the account's documented request rate (the config's `rate_limit` may lower it);
    `endpoints` maps a path ("/gettrackinfo", "GET /trackings/:id") to its own limit where the
    provider has per-endpoint limits; `batch_size` is how many numbers one `fetch_many` or
    `register` request carries (1: the engine calls `fetch`); `quota` says what the account's
    quota counts ("" when there is none), read with `Provider.quota()`.
    """

    rate: RateLimit | None = None
    batch_size: int = 1
    endpoints: Mapping[str, RateLimit] = field(default_factory=dict)
    quota: str = ""


@dataclass(frozen=True)
class QuotaStatus:
    """An account quota as the provider reports it (17TRACK's `getquota`)."""

    total: int
    used: int
    remaining: int
    read_at: datetime
    today_used: int | None = None  # spent since the provider's day began, when it says


@dataclass(frozen=True)
class PushUpdate:
    """One shipment's news from a verified push: its new tracking, or None when the provider stopped it."""

    tracking_number: str
    carrier_code: str = ""  # "" when the push does not say in our vocabulary
    info: TrackingInfo | None = None
    event: str = ""  # the provider's event name ("TRACKING_UPDATED", "tracker.updated", ...)
    event_id: str = ""  # for deduplication where the provider sends one; "" when it does not


@dataclass(frozen=True)
class MappedStatus:
    """A provider's status in our vocabulary; `known` False means it was not in the table (stored as UN)."""

    status_code: str
    detail_code: str
    known: bool


class StatusMap:
    """A provider's status vocabulary mapped to ours (wire.names.STATUS_CODES), the raw text kept.

    `statuses` maps a main status to (code, detail); `sub_statuses` refines by sub-status where
    ours differs (17TRACK's `Exception_Returned`, AfterShip's subtags). An unknown status is
    "UN" with the provider's text kept, counted in `unknown`, never an error: a provider that
    renames a status must not stop the sync.
    """

    def __init__(
        self,
        statuses: Mapping[str, tuple[str, str]],
        sub_statuses: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        for code, _ in [*statuses.values(), *(sub_statuses or {}).values()]:
            if code not in STATUS_CODES:
                raise ValueError(f"status map: {code!r} is not one of {', '.join(STATUS_CODES)}")
        self.statuses = dict(statuses)
        self.sub_statuses = dict(sub_statuses or {})
        self.unknown: Counter[str] = Counter()  # the provider's unknown status texts, as seen

    def map(self, status: str, sub_status: str = "") -> tuple[str, str]:
        """(our status code, our status detail code) for the provider's status and sub-status."""
        if sub_status and sub_status in self.sub_statuses:
            return self.sub_statuses[sub_status]
        if status in self.statuses:
            return self.statuses[status]
        self.unknown[f"{status}/{sub_status}" if sub_status else status] += 1
        return ("UN", "")

    def knows(self, status: str) -> bool:
        return status in self.statuses


@runtime_checkable
class Provider(Protocol):
    """A tracking API client; every failure is raised as a ProviderError subclass.

    `name` is the account's name (a `[[providers]]` entry), `kind` the API it speaks. Methods a
    provider's API lacks keep ProviderBase's defaults: the engine never asks by kind, it reads
    `limits.batch_size` and `needs_registration`.
    """

    name: str
    kind: str
    limits: Limits
    status_map: StatusMap
    needs_registration: bool  # True: `register` before the first fetch (and the ref kept)
    # True: `register` takes a Parcel without a carrier ("") and says in Registration.carrier_code
    # which one the provider detected (AfterShip couriers/detect, 17TRACK and EasyPost on creation).
    detects_carrier: bool

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        """Fetch one shipment's tracking with a single request: no retries, no rate limiting."""
        ...

    async def fetch_many(self, parcels: Sequence[Parcel]) -> Mapping[str, TrackingInfo | ProviderError]:
        """Fetch up to `limits.batch_size` parcels with one request, by tracking number.

        A number missing from the answer is simply absent (the throttle fails it alone), a
        number answered that was not asked is included and ignored by the caller. A failure of
        the whole request (401, 429, 5xx, no connection) is raised.
        """
        ...

    async def register(self, parcels: Sequence[Parcel]) -> Mapping[str, Registration | ProviderError]:
        """Register up to `limits.batch_size` parcels with one request (tracker, subscription)."""
        ...

    async def unregister(self, parcels: Sequence[Parcel]) -> None:
        """Stop tracking these parcels (17TRACK `stoptrack`); one request, whole-request failures raised."""
        ...

    async def verify_push(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check a push's signature over its raw body; PushRejectedError if it is forged or unsigned.

        `headers` are looked up in lower case. Async, because a key set may have to be fetched;
        a failure to fetch it is a TransientProviderError (try again later), not a rejection.
        """
        ...

    def parse_push(self, body: bytes) -> list[PushUpdate]:
        """The updates in a verified push body; PushRejectedError if its shape is wrong."""
        ...

    async def quota(self) -> QuotaStatus | None:
        """Read the account's quota with one request; None for providers without one."""
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


class ProviderBase:
    """Defaults for what a provider's API lacks: inherit it and override what the API has."""

    needs_registration = False
    detects_carrier = False

    async def fetch(self, carrier_code: str, tracking_number: str) -> TrackingInfo:
        raise NotImplementedError

    async def fetch_many(self, parcels: Sequence[Parcel]) -> Mapping[str, TrackingInfo | ProviderError]:
        """One `fetch` per parcel: only reached if a provider declares batch_size > 1 without batching."""
        out: dict[str, TrackingInfo | ProviderError] = {}
        for parcel in parcels:
            try:
                out[parcel.tracking_number] = await self.fetch(parcel.carrier_code, parcel.tracking_number)
            except ProviderError as exc:
                out[parcel.tracking_number] = exc
        return out

    async def register(self, parcels: Sequence[Parcel]) -> Mapping[str, Registration | ProviderError]:
        """Nothing to register: the number itself is the ref (only reached if needs_registration is set)."""
        return {p.tracking_number: Registration(ref=p.tracking_number, carrier_code=p.carrier_code) for p in parcels}

    async def unregister(self, parcels: Sequence[Parcel]) -> None:
        return None

    async def verify_push(self, headers: Mapping[str, str], body: bytes) -> None:
        raise PushRejectedError(f"{getattr(self, 'name', 'this provider')} does not accept pushes")

    def parse_push(self, body: bytes) -> list[PushUpdate]:
        raise PushRejectedError(f"{getattr(self, 'name', 'this provider')} does not accept pushes")

    async def quota(self) -> QuotaStatus | None:
        return None


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

    remaining = number("remaining")  # first: most answers carry none, and then two lookups are all it costs
    if remaining is None:
        return None
    limit, reset = number("limit"), number("reset")
    if reset is not None and reset > _EPOCH_THRESHOLD_S:
        reset = max(0.0, reset - now_epoch_s)
    return Quota(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining),
        reset_s=reset,
    )


T = TypeVar("T")
# One number's own problem: the answer for that number. Anything else (401, 429, 5xx, no connection)
# is the request's, and fails the whole call.
NUMBER_ERRORS = (PermanentProviderError, ShipmentNotFoundError, InvalidResponseError)


async def per_number(parcels: Sequence[Parcel], one: Callable[[Parcel], Awaitable[T]]) -> dict[str, T | ProviderError]:
    """*one* for each parcel in turn, by tracking number; a number's own error is its answer (NUMBER_ERRORS)."""
    out: dict[str, T | ProviderError] = {}
    for parcel in parcels:
        try:
            out[parcel.tracking_number] = await one(parcel)
        except NUMBER_ERRORS as exc:
            out[parcel.tracking_number] = exc
    return out
