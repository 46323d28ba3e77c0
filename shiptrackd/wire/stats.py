"""
The shape of `/v1/stats` (shiptrackctl stats): the store's mix, the last day's runs, the API and
its forecast, each provider account's figures and quota, and what pushes save. See answers.py.
"""

from __future__ import annotations

from datetime import datetime

from .answers import Answer, Run


class RunTotals(Answer):
    runs: int
    selected: int
    updated: int
    unchanged: int
    failed: int
    api_calls: int
    retries: int
    rate_limited: int


class ShipmentFigures(Answer):
    total: int
    active: int
    by_status: dict[str, int]
    by_carrier: dict[str, int]
    due_now: int
    overdue: int


class ApiFigures(Answer):
    requests: int
    retries: int
    rate_limited: int
    by_status: dict[str, int]
    by_error: dict[str, int]
    strays: int  # numbers a batch answer carried that were not asked for (ignored)
    omitted: int  # numbers asked for that a batch answer left out (failed alone)
    p50_s: float | None
    p95_s: float | None


class Forecast(Answer):
    calls_per_hour: float
    rate_limit_per_hour: int | None
    utilisation: float | None


class QuotaFigures(Answer):
    """A provider account's quota as its API reported it (17TRACK getquota), or why it could not be read."""

    error: str | None = None
    counts: str | None = None  # what one unit of quota is ("registrations ...")
    total: int | None = None
    used: int | None = None
    remaining: int | None = None
    today_used: int | None = None
    read_at: datetime | None = None
    per_day: float | None = None  # the pace it is spent at (None: not measured yet)
    runs_out_at: datetime | None = None  # at that pace (None: not at this pace, or not measured)


class ProviderFigures(Answer):
    name: str  # the account ([[providers]] name; the single [provider]: its kind)
    kind: str
    batch_size: int  # numbers per request
    strays: int
    omitted: int
    unknown_statuses: dict[str, int]  # the provider's status words we could not map, as seen
    quota_exhausted: str | None  # what the provider said when registrations stopped for quota
    quota: QuotaFigures | None  # None for providers without a quota
    # This account's own requests (`api` is every account's together) and its throttle's state.
    requests: int = 0
    rate_limited: int = 0
    errors: int = 0
    by_error: dict[str, int] = {}
    retries: int = 0
    circuit: str = "closed"
    paused_until: datetime | None = None


class PushStats(Answer):
    """What pushes save: the polls subscribed shipments would need at their cadence, against the safety polls."""

    subscribed: int
    pushes: dict[str, int]  # since start, by outcome
    changes_by_push: int
    calls_per_hour_polling: float
    calls_per_hour_with_push: float
    calls_per_hour_saved: float


class Stats(Answer):
    shipments: ShipmentFigures
    runs_24h: RunTotals
    errors_24h: dict[str, int]
    last_successful_run: Run | None
    api: ApiFigures
    forecast: Forecast
    providers: list[ProviderFigures]  # every provider account, the default first
    push: PushStats | None  # None while [webhooks] is off
