"""
The sandbox's knobs, clock, token bucket and fault picking, without a socket.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.config import RateLimit
from shiptrackd.sandbox import Sandbox
from shiptrackd.sandbox.faults import forced_fault, random_fault, validate_rates
from shiptrackd.sandbox.state import SandboxStats, SimClock, TokenBucket, parse_duration, parse_rate_limit


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50/s", RateLimit(50, 1.0)), ("200/min", RateLimit(200, 60.0)), ("20 / m", RateLimit(20, 60.0)),
     (50, RateLimit(50, 1.0)), ("none", None), (None, None)],
)  # fmt: skip
def test_rate_limit_spellings(text: object, expected: RateLimit | None) -> None:
    """The rate-limit knob accepts the spellings the CLI and the config endpoint document."""
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize("bad", ["fast", "50/fortnight", "-3/s", "0/s", 0, True])
def test_rate_limit_rejects_nonsense(bad: object) -> None:
    """A malformed rate limit is refused with a message naming the knob."""
    with pytest.raises(ValueError, match="rate_limit"):
        parse_rate_limit(bad)


@pytest.mark.parametrize(("text", "seconds"), [("20ms", 0.02), ("1.5s", 1.5), ("2m", 120.0), (0.25, 0.25), ("3", 3.0)])
def test_durations(text: object, seconds: float) -> None:
    """Latency accepts ms/s/m suffixes or plain seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


def test_frozen_clock_moves_only_when_advanced() -> None:
    """With time_scale 0, simulated time stands still until advance() moves it."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    clock = SimClock(start, time_scale=0)
    assert clock.now() == start
    assert clock.advance(3600) == start + timedelta(hours=1)
    clock.time_scale = 0  # re-anchoring keeps what advance() added
    assert clock.now() == start + timedelta(hours=1)


def test_token_bucket_allows_a_burst_then_says_how_long_to_wait() -> None:
    """A bucket of 3 at 2/s lets 3 through, then asks for half a second per further request."""
    bucket = TokenBucket(rate=2.0, capacity=3)
    now = 1000.0
    bucket._updated = now  # a test seam: pin the bucket's clock to ours
    assert [bucket.take(now) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(now) == pytest.approx(0.5)
    assert bucket.take(now + 0.5) == 0.0


def test_flaky_fails_twice_then_answers() -> None:
    """FLAKY is a 503 for the first two requests of that number only."""
    assert [forced_fault("1zflaky1", n) for n in (1, 2, 3, 4)] == ["503", "503", None, None]
    assert forced_fault("1ZNOTFOUND", 1) == "notfound" and forced_fault("1Z999", 1) is None


def test_random_faults_follow_their_rates_and_seed() -> None:
    """Global fault rates are honoured and the same seed replays the same sequence."""
    rates = validate_rates({"500": 0.2, "reset": 0.1})
    draws = [random_fault(random.Random(7), rates) for _ in range(1)]
    rng = random.Random(7)
    sequence = [random_fault(rng, rates) for _ in range(5000)]
    assert draws[0] == sequence[0]
    assert sequence.count("500") == pytest.approx(1000, rel=0.15)
    assert sequence.count("reset") == pytest.approx(500, rel=0.2)
    rng2 = random.Random(7)
    assert [random_fault(rng2, rates) for _ in range(5000)] == sequence


@pytest.mark.parametrize(("rates", "match"), [({"teapot": 0.1}, "unknown kind"), ({"500": 1.5}, "probability"),
                                              ({"500": 0.6, "503": 0.6}, "more than 1")])  # fmt: skip
def test_fault_rates_are_validated(rates: dict[str, float], match: str) -> None:
    """Unknown kinds, out-of-range rates and rates adding up past 1 are refused."""
    with pytest.raises(ValueError, match=match):
        validate_rates(rates)


def test_configure_validates_before_changing_anything() -> None:
    """A bad knob in a configure() call leaves every other knob untouched."""
    sandbox = Sandbox(latency_s=0.1)
    with pytest.raises(ValueError, match="unknown knob"):
        sandbox.configure(latency_s=0.5, colour="blue")
    with pytest.raises(ValueError, match="rate_limit"):
        sandbox.configure(latency_s=0.5, rate_limit="lots")
    assert sandbox.latency_s == 0.1
    sandbox.configure(rate_limit="200/min", latency_s="20ms")
    assert sandbox.config()["rate_limit"] == "200/min" and sandbox.latency_s == pytest.approx(0.02)


def test_stats_track_peak_and_rate() -> None:
    """The counters report peak concurrency and the achieved request rate."""
    stats = SandboxStats()
    for t in (10.0, 10.5, 11.0):
        stats.begin(t)
    stats.end()
    assert (stats.in_flight, stats.peak_in_flight, stats.total) == (2, 3, 3)
    assert stats.achieved_rate() == pytest.approx(2.0)
    stats.reset()
    assert (stats.total, stats.in_flight, stats.peak_in_flight) == (0, 2, 2)
