"""
The rate controller as tables: a script of sends, answers, 429s and quota headers at given times,
and the rate it must end at. No clock, no I/O: times are plain numbers.
"""

from __future__ import annotations

import pytest

from shiptrackd.providers.base import Quota, quota_from_headers
from shiptrackd.sync.rate_control import RateController, Tuning


def ok_at(*times: float) -> list[tuple[object, ...]]:
    return [("ok", t) for t in times]


def steady(rate: float, start: float, seconds: float) -> list[tuple[object, ...]]:
    """Clean answers at `rate` a second from `start` for `seconds`."""
    count = round(rate * seconds)
    return [("ok", start + i / rate) for i in range(count)]


def num(value: object) -> float:
    """A time or rate from a script step (the steps are heterogeneous tuples, so each value is checked)."""
    assert isinstance(value, int | float), value
    return float(value)


def count(value: object) -> int | None:
    """A header's count from a script step: a whole number, or None when the header was absent."""
    assert value is None or isinstance(value, int), value
    return value


def play(controller: RateController, script: list[tuple[object, ...]]) -> list[bool]:
    """Feed the script; returns what each 429 or quota event answered (did it cut?)."""
    said: list[bool] = []
    for event, *args in script:
        if event == "sent":
            controller.on_sent(num(args[0]))
        elif event == "ok":
            controller.on_answer(num(args[0]))
        elif event == "429":
            said.append(controller.on_rate_limited(num(args[0]), num(args[1])))
        elif event == "quota":
            now, limit, remaining = args
            said.append(controller.on_quota(num(now), Quota(count(limit), count(remaining), None)))
    return said


T = Tuning()


@pytest.mark.parametrize(
    ("ceiling", "script", "expected_rate", "expected_said"),
    [
        # A 429 before there is history enough to trust the accepted rate: cut to half.
        (40.0, [*ok_at(0.0, 0.1, 0.2), ("429", 0.3, 0.28)], 20.0, [True]),
        # With 10 s of history at 10/s accepted, a 429 at 20/s: 0.9 x 10 = 9 is below half of 20, so half.
        (20.0, [*steady(10, 0.0, 10), ("429", 10.0, 9.99)], 10.0, [True]),
        # The same at 12/s: 0.9 x the accepted 10/s = 9, inside [0.5, 0.9] x 12.
        (12.0, [*steady(10, 0.0, 10), ("429", 10.0, 9.99)], 9.0, [True]),
        # Accepted above the current rate (a bucket's burst): never more than 0.9 x the current.
        (10.0, [*steady(15, 0.0, 10), ("429", 10.0, 9.99)], 9.0, [True]),
        # A second 429 for a request sent before the first cut is the same episode: no second cut.
        (40.0, [*ok_at(0.0, 0.1), ("429", 0.3, 0.28), ("429", 0.31, 0.27)], 20.0, [True, False]),
        # ...but one for a request sent after the cut is news: cut again.
        (40.0, [*ok_at(0.0, 0.1), ("429", 0.3, 0.28), ("429", 1.5, 1.4)], 10.0, [True, True]),
        # Never below the floor, however many 429s.
        (0.08, [("429", 1.0, 1.0), ("429", 2.0, 2.0), ("429", 3.0, 3.0)], T.floor_per_s, [True, True, True]),
    ],
    ids=["young-halves", "halve-bound", "to-accepted", "at-most-0.9", "same-episode", "new-episode", "floor"],
)
def test_a_429_cuts_the_rate_once_per_episode(
    ceiling: float, script: list[tuple[object, ...]], expected_rate: float, expected_said: list[bool]
) -> None:
    """A 429 cuts to 0.9 x the accepted rate within [0.5, 0.9] x the current, once an episode, above the floor."""
    controller = RateController(ceiling)
    assert play(controller, script) == expected_said
    assert controller.rate == pytest.approx(expected_rate)


def climb(controller: RateController, start: float, seconds: float) -> None:
    """Clean answers arriving at whatever rate the controller allows, as a saturated sync sends them."""
    now = start
    while now < start + seconds:
        controller.on_answer(now)
        now += controller.interval_s() or 0.01


@pytest.mark.parametrize(
    ("ceiling", "seconds", "expected_rate"),
    [
        # A cut from 10 to 5, then 10 s of clean answers: + increase x 5 per second.
        (10.0, 10, 5.0 + 10 * T.increase * 5.0),
        # Additive, not multiplicative: the step stays sized from the rate after the cut, so 60 s add 6 x as much.
        (10.0, 60, 5.0 + 60 * T.increase * 5.0),
        # Back at the ceiling the climb stops.
        (5.5, 400, 5.5),
    ],
    ids=["10s-climb", "60s-climb", "capped"],
)
def test_clean_answers_climb_additively_up_to_the_ceiling(ceiling: float, seconds: int, expected_rate: float) -> None:
    """A second of clean answers at the allowed rate adds `increase` x the post-cut rate, up to the ceiling."""
    controller = RateController(ceiling)
    controller.on_rate_limited(0.0, 0.0)
    assert controller.rate == pytest.approx(ceiling / 2)
    climb(controller, 0.1, seconds)
    assert controller.rate == pytest.approx(expected_rate, rel=0.02)


def test_clean_answers_at_the_ceiling_hold_it() -> None:
    """With nothing cut, clean answers leave the rate at the configured ceiling."""
    controller = RateController(10.0)
    play(controller, steady(10, 0.0, 5))
    assert controller.rate == 10.0


@pytest.mark.parametrize(
    ("script", "expected_rate", "expected_said"),
    [
        # Plenty left: no cut.
        ([("quota", 0.0, 10, 8)], 10.0, [False]),
        # Nearly spent (<= 10% of the limit, at least 1): a mild cut, no pause.
        ([("quota", 0.0, 10, 1)], 9.0, [True]),
        # Spent again within the cooldown: the quota needs time to refill, no second cut.
        ([("quota", 0.0, 10, 1), ("quota", 1.0, 10, 0)], 9.0, [True, False]),
        # Spent again after the cooldown: cut again.
        ([("quota", 0.0, 10, 1), ("quota", 2.5, 10, 0)], 8.1, [True, True]),
        # No Remaining header: nothing to go by.
        ([("quota", 0.0, 10, None)], 10.0, [False]),
        # While the quota stays low, clean answers do not climb.
        ([("429", 0.0, 0.0), ("quota", 0.5, 10, 0), *steady(4.5, 1.0, 10)], 4.5, [True, True]),
        # Once it recovers they do again.
        (
            [("quota", 0.5, 10, 0), ("quota", 1.0, 100, 50), *steady(9, 1.0, 10)],
            9.0 + 10 * T.increase * 9,
            [True, False],
        ),
    ],
    ids=["plenty", "nearly-spent", "cooldown", "after-cooldown", "no-remaining", "low-holds", "recovered"],
)
def test_a_nearly_spent_quota_cuts_mildly_before_any_429(
    script: list[tuple[object, ...]], expected_rate: float, expected_said: list[bool]
) -> None:
    """X-RateLimit-Remaining near zero cuts the rate by `pressure_cut` at most once per cooldown and stops the climb."""
    controller = RateController(10.0)
    assert play(controller, script) == expected_said
    assert controller.rate == pytest.approx(expected_rate, rel=0.02)


def test_unpaced_until_the_first_429_then_half_the_rate_it_was_sending() -> None:
    """With no configured limit the controller paces nothing until a 429, then half of what was being sent."""
    controller = RateController(None)
    assert controller.interval_s() is None
    play(controller, [*(("sent", i / 100) for i in range(50)), *ok_at(0.1, 0.2)])
    assert controller.rate is None
    play(controller, [("429", 0.5, 0.49)])
    assert controller.rate == pytest.approx(50 / 0.49 / 2, rel=0.05)
    assert controller.rate is not None
    assert controller.interval_s() == pytest.approx(1 / controller.rate)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "3", "x-ratelimit-reset": "0.7"}, Quota(10, 3, 0.7)),
        ({"ratelimit-limit": "100", "ratelimit-remaining": "0", "ratelimit-reset": "30"}, Quota(100, 0, 30.0)),
        ({"x-ratelimit-remaining": "5", "x-ratelimit-reset": "1700000060"}, Quota(None, 5, 60.0)),  # a Unix time
        ({"x-ratelimit-limit": "10"}, None),  # no Remaining: nothing to act on
        ({"x-ratelimit-remaining": "lots"}, None),
        ({"x-ratelimit-remaining": "-1"}, None),
        ({"x-ratelimit-remaining": "nan"}, None),
        ({"x-ratelimit-limit": "10, 10;w=1", "x-ratelimit-remaining": "4"}, Quota(10, 4, None)),
        ({}, None),
    ],
    ids=["x-prefixed", "ietf", "epoch-reset", "no-remaining", "text", "negative", "nan", "list-form", "none"],
)
def test_quota_headers_parse_leniently(headers: dict[str, str], expected: Quota | None) -> None:
    """X-RateLimit-* and RateLimit-* parse into a Quota; a missing or garbled Remaining gives None."""
    assert quota_from_headers(headers, now_epoch_s=1_700_000_000) == expected
