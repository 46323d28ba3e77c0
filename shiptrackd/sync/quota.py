"""
When a provider's quota runs out at the pace it is being spent: a pure function of its readings.

17TRACK charges one registration per new number against a monthly quota; `getquota` says how
much is used. The pace is measured between readings at least an hour apart (the used count
going up over time); before there are such readings, today's use (`today_used`) over the part
of the UTC day gone so far stands in for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..providers.base import QuotaStatus

MIN_SPAN_S = 3600.0  # readings closer than this say little about the pace
MIN_DAY_S = 3600.0  # the first hour of a UTC day is too short to extrapolate today_used from


@dataclass(frozen=True)
class QuotaForecast:
    per_day: float | None  # quota spent per day at the measured pace (None: not measurable yet)
    runs_out_at: datetime | None  # None: not at this pace (or not measurable), or already spent
    exhausted: bool


def forecast(readings: Sequence[QuotaStatus]) -> QuotaForecast | None:
    """The forecast from readings oldest first; None without any reading."""
    if not readings:
        return None
    last = readings[-1]
    if last.remaining <= 0:
        return QuotaForecast(per_day=None, runs_out_at=None, exhausted=True)
    per_s: float | None = None
    older = [r for r in readings if (last.read_at - r.read_at).total_seconds() >= MIN_SPAN_S]
    if older:
        first = older[0]
        span_s = (last.read_at - first.read_at).total_seconds()
        per_s = max(0.0, (last.used - first.used) / span_s)
    elif last.today_used is not None:
        midnight = last.read_at.replace(hour=0, minute=0, second=0, microsecond=0)
        day_s = (last.read_at - midnight).total_seconds()
        if day_s >= MIN_DAY_S:
            per_s = last.today_used / day_s
    if per_s is None:
        return QuotaForecast(per_day=None, runs_out_at=None, exhausted=False)
    if per_s <= 0:
        return QuotaForecast(per_day=0.0, runs_out_at=None, exhausted=False)
    return QuotaForecast(
        per_day=round(per_s * 86400, 1),
        runs_out_at=last.read_at + timedelta(seconds=last.remaining / per_s),
        exhausted=False,
    )
