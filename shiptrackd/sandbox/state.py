"""
The sandbox's moving parts that are not HTTP: simulated time, the rate limiter, the counters.

Kept apart from the request handling so each is small and testable on its own, and so the
counters tests assert on have one obvious definition.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shiptrackd import units
from shiptrackd.units import RateLimit


def parse_rate_limit(value: object) -> RateLimit | None:
    """The unit grammar's spellings ('50/s', '200/min', 'none'), plus 'off' and a bare number meaning per second."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return RateLimit(int(value), 1.0) if float(value).is_integer() else RateLimit(1, 1.0 / value)
    try:
        return units.parse_rate_limit(str(value)) if str(value).strip().lower() != "off" else None
    except ValueError as exc:
        raise ValueError(f"rate_limit: {value!r}: {exc}") from None


def parse_duration(value: object) -> float:
    """The unit grammar's durations ('20ms', '1.5s', '1h30m') or a number of seconds, the value named in errors."""
    if not isinstance(value, str | int | float):
        raise ValueError(f"expected {units.DURATION_HINT}, got {value!r}")
    try:
        return units.parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{value!r}: {exc}") from None


class SimClock:
    """Simulated UTC time: real elapsed time times `time_scale`, plus whatever `advance` added."""

    def __init__(self, start_at: datetime | None = None, time_scale: float = 1.0) -> None:
        self._anchor_at = (start_at or datetime.now(UTC)).astimezone(UTC)
        self._anchor_mono = time.monotonic()
        self._scale = time_scale

    @property
    def time_scale(self) -> float:
        return self._scale

    @time_scale.setter
    def time_scale(self, scale: float) -> None:
        # Re-anchor so a new scale only applies from now on: simulated time never jumps back.
        self._anchor_at, self._anchor_mono = self.now(), time.monotonic()
        self._scale = scale

    def now(self) -> datetime:
        return self._anchor_at + timedelta(seconds=(time.monotonic() - self._anchor_mono) * self._scale)

    def advance(self, seconds: float) -> datetime:
        self._anchor_at += timedelta(seconds=seconds)
        return self.now()


class TokenBucket:
    """`rate` tokens a second, at most `capacity` banked; one token per request."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._tokens = self.capacity
        self._updated = time.monotonic()

    def take(self, now: float) -> float:
        """Take a token: 0.0 if one was there, else the seconds until one will be."""
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def headers(self) -> list[tuple[str, str]]:
        """`X-RateLimit-*` as of the last `take`: the bucket size, whole tokens left, seconds until full."""
        full_in_s = (self.capacity - self._tokens) / self.rate
        return [
            ("x-ratelimit-limit", str(int(self.capacity))),
            ("x-ratelimit-remaining", str(int(self._tokens))),
            ("x-ratelimit-reset", f"{full_in_s:.3f}"),
        ]


@dataclass
class SandboxStats:
    """What the sandbox saw on `/v1`: tests assert on these instead of sleeping and hoping."""

    total: int = 0
    connections: int = 0  # TCP connections accepted (any path): low means keep-alive works
    by_status: Counter[int] = field(default_factory=Counter)
    by_number: Counter[str] = field(default_factory=Counter)  # tracking requests per tracking number
    faults: Counter[str] = field(default_factory=Counter)  # injected faults by kind, forced or random
    user_agents: Counter[str] = field(default_factory=Counter)  # which clients called (demo, bench, tests)
    in_flight: int = 0
    peak_in_flight: int = 0
    # Monotonic arrival times, newest last; bounded so a long benchmark keeps flat memory.
    request_times: deque[float] = field(default_factory=lambda: deque(maxlen=500_000))

    def begin(self, now: float) -> None:
        self.total += 1
        self.request_times.append(now)
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def connected(self) -> None:
        self.connections += 1

    def end(self) -> None:
        self.in_flight -= 1

    def requests_for(self, tracking_number: str) -> int:
        return self.by_number[tracking_number]

    def achieved_rate(self, since: float | None = None) -> float:
        """Requests per second between the first and last arrival (after monotonic `since`, if given)."""
        times = [t for t in self.request_times if since is None or t >= since]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def reset(self) -> None:
        """Zero the counters; requests in flight stay counted so `end` never goes negative."""
        self.total = self.connections = 0
        self.by_status.clear()
        self.by_number.clear()
        self.faults.clear()
        self.user_agents.clear()
        self.request_times.clear()
        self.peak_in_flight = self.in_flight

    def as_dict(self, *, by_number: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "total": self.total,
            "connections": self.connections,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
            "faults": dict(sorted(self.faults.items())),
            "user_agents": dict(self.user_agents.most_common(10)),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "tracking_numbers": len(self.by_number),
            "achieved_rate": round(self.achieved_rate(), 3),
        }
        if by_number:
            data["by_number"] = dict(self.by_number)
        return data
