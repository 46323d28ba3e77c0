"""
How fast to call a provider whose real limit is unknown: the decision alone, no I/O, no clock.

The configured rate is an upper bound, not the truth (the account's real limit may be lower,
and may change). So the pace follows AIMD, as TCP's congestion control does:
- a 429 is a multiplicative decrease: to a share of the rate the server actually accepted
  over the last few seconds (which is the real limit, seen from outside), never less than half
  the current rate and never more than `backoff` of it, once per episode (429s for requests
  sent before the last decrease are the same episode, not news);
- clean answers are an additive increase: a fixed step per second of clean answers, sized
  from the rate set at the last decrease, so the probe above a limit is slow and a 429 rare;
- where the provider sends `X-RateLimit-Remaining`, a nearly spent quota is a mild decrease
  before any 429 (like ECN), and no increase happens while it stays low.

Times are plain floats from whatever clock the caller uses (the throttle: the event loop's),
so the table tests in tests/unit/test_rate_control.py step through time without waiting.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..providers.base import Quota


@dataclass(frozen=True)
class Tuning:
    """The controller's constants; the defaults are what bench/bench_adaptive_rate.py measured."""

    decrease: float = 0.5  # the deepest single cut: x0.5 of the current rate
    backoff: float = 0.9  # a 429 sets the rate to this share of the accepted rate (at most of the current)
    increase: float = 0.005  # additive step per second of clean answers, as a share of the rate after the last cut
    window_s: float = 10.0  # how far back the accepted rate is measured
    min_history_s: float = 2.0  # below this much history the accepted rate is noise: cut by `decrease` instead
    pressure_cut: float = 0.9  # a nearly spent quota (headers) cuts this mildly, no pause
    pressure_cooldown_s: float = 2.0  # at most one pressure cut per this long: the quota needs time to refill
    low_water: float = 0.1  # "nearly spent": remaining <= max(1, low_water * limit)
    floor_per_s: float = 0.05  # never slower than one request per 20 s


class RateController:
    """The allowed request rate (per second) for one provider account; `rate` None means unpaced."""

    def __init__(self, ceiling_per_s: float | None, tuning: Tuning | None = None) -> None:
        self.tuning = tuning or Tuning()
        self.ceiling = ceiling_per_s
        self.rate: float | None = ceiling_per_s
        self.cuts = 0  # decreases so far (429s and pressure), for status and the benchmark
        self._step_base = ceiling_per_s or 0.0  # the rate set at the last cut: what the additive step is sized from
        self._cut_at = -math.inf
        self._pressure_at = -math.inf
        self._pressed = False  # the last quota seen was nearly spent
        self._accepted: deque[float] = deque()  # answer times (not 429) within the window
        self._sent: deque[float] = deque()  # request start times within the window
        self._first_seen = math.inf

    # --- inputs ------------------------------------------------------------------------

    def on_sent(self, now: float) -> None:
        """A request was sent: what an unpaced controller measures its current rate by."""
        self._first_seen = min(self._first_seen, now)
        self._sent.append(now)
        self._trim(self._sent, now)

    def on_answer(self, now: float) -> None:
        """Any answer but a 429 (or a 5xx): an additive step up, unless the quota is nearly spent."""
        self._first_seen = min(self._first_seen, now)
        self._accepted.append(now)
        self._trim(self._accepted, now)
        self._step_up()

    def on_quota(self, now: float, quota: Quota) -> bool:
        """X-RateLimit-* headers on an answer; True if a nearly spent quota lowered the rate."""
        if quota.remaining is None:
            return False
        self._pressed = quota.remaining <= max(1.0, self.tuning.low_water * (quota.limit or 0))
        if not self._pressed or now - self._pressure_at < self.tuning.pressure_cooldown_s:
            return False
        if self.rate is None and not self._sent:
            return False
        self._pressure_at = now
        current = self.rate if self.rate is not None else self._rate_of(self._sent, now)
        self._cut(now, current * self.tuning.pressure_cut)
        return True

    def on_rate_limited(self, now: float, sent_at: float) -> bool:
        """A 429 for a request sent at `sent_at`; True if it lowered the rate (the first of its episode)."""
        if sent_at < self._cut_at:
            return False  # sent at the old rate: this episode has been answered already
        current = self.rate if self.rate is not None else self._rate_of(self._sent, now)
        accepted = self._accepted_rate(now)
        t = self.tuning
        if accepted is None:
            new = current * t.decrease
        else:
            new = min(max(accepted * t.backoff, current * t.decrease), current * t.backoff)
        self._cut(now, new)
        return True

    # --- what the throttle reads -----------------------------------------------------------

    def interval_s(self) -> float | None:
        """Seconds between request starts at the current rate, None when unpaced."""
        return None if self.rate is None else 1.0 / self.rate

    def snapshot(self) -> dict[str, float | int | None]:
        return {"rate_per_s": self.rate, "ceiling_per_s": self.ceiling, "cuts": self.cuts}

    # --- the rules -------------------------------------------------------------------------

    def _accepted_rate(self, now: float) -> float | None:
        """Answers a second over the window, once there is enough history to mean something."""
        self._trim(self._accepted, now)
        history = min(self.tuning.window_s, now - self._first_seen)
        if history < self.tuning.min_history_s:
            return None
        return len(self._accepted) / history

    def _rate_of(self, times: deque[float], now: float) -> float:
        """Events a second over the window (an unpaced sender's current rate); at least one per 100 ms of it."""
        self._trim(times, now)
        span = max(now - times[0], 0.1) if times else 1.0
        return max(len(times), 1) / span

    def _cut(self, now: float, new: float) -> None:
        self.rate = max(self.tuning.floor_per_s, new)
        self._step_base = self.rate
        self._cut_at = now
        self.cuts += 1

    def _step_up(self) -> None:
        """One clean answer's share of a second's step: at full pace, `increase` x base per second."""
        if self.rate is None or self._pressed:
            return
        self.rate += self.tuning.increase * self._step_base / self.rate
        if self.ceiling is not None and self.rate >= self.ceiling:
            self.rate = self.ceiling

    def _trim(self, times: deque[float], now: float) -> None:
        edge = now - self.tuning.window_s
        while times and times[0] < edge:
            times.popleft()
