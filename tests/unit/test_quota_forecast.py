"""The quota run-out forecast as a table: the pace between readings an hour or more apart, else today's use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shiptrackd.providers.base import QuotaStatus
from shiptrackd.sync.quota import forecast

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def reading(at: datetime, used: int, total: int = 1000, today: int | None = None) -> QuotaStatus:
    return QuotaStatus(total=total, used=used, remaining=total - used, read_at=at, today_used=today)


def test_no_reading_no_forecast() -> None:
    assert forecast([]) is None


def test_the_pace_between_readings_an_hour_apart() -> None:
    fc = forecast([reading(NOON - timedelta(hours=2), 100), reading(NOON, 148)])
    assert fc is not None and fc.per_day == 576.0  # 24 an hour
    assert fc.runs_out_at == NOON + timedelta(hours=852 / 24)


def test_readings_too_close_fall_back_to_today_used() -> None:
    fc = forecast([reading(NOON - timedelta(minutes=5), 100), reading(NOON, 101, today=60)])
    assert fc is not None and fc.per_day == 120.0  # 60 in the 12 hours since midnight
    assert fc.runs_out_at == NOON + timedelta(days=899 / 120)


def test_no_pace_yet_and_no_spending() -> None:
    early = NOON.replace(hour=0, minute=20)
    assert forecast([reading(early, 5, today=5)]) == forecast([reading(early, 5)])
    fc = forecast([reading(early, 5)])
    assert fc is not None and (fc.per_day, fc.runs_out_at, fc.exhausted) == (None, None, False)
    idle = forecast([reading(NOON - timedelta(hours=3), 7), reading(NOON, 7)])
    assert idle is not None and (idle.per_day, idle.runs_out_at) == (0.0, None)


def test_spent_is_exhausted() -> None:
    fc = forecast([reading(NOON, 1000)])
    assert fc is not None and fc.exhausted and fc.runs_out_at is None
