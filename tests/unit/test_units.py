"""The one grammar for units: durations, rates, sizes and RFC 3339 times, as tables."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shiptrackd.units import (
    MAX_DURATION_S,
    RateLimit,
    format_duration,
    format_rate_limit,
    format_rfc3339,
    format_size,
    parse_duration,
    parse_rate_limit,
    parse_rfc3339,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1H30M", 5400),
        ("90min", 5400),
        ("90 min", 5400),
        ("1w", 604800),
        ("2d", 172800),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("2hrs", 7200),
        ("30sec", 30),
        ("45", 45),
        (" 45 ", 45),
        ("0", 0),
        ("0s", 0),
        (45, 45),
        (2.5, 2.5),
        ("1d2h3m4s5ms", 93784.005),
    ],
)
def test_parse_duration_accepts(text: str | float, seconds: float) -> None:
    """Every spelling config accepted before still parses to the same seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "-5m",
        "-1",
        -1,
        "five minutes",
        "5 parsecs",
        "1h30",
        "5mm",
        "1e308",
        1e308,
        math.inf,
        math.nan,
        "99999999999d",
        True,
        "1.2.3s",
        "s",
    ],
)
def test_parse_duration_rejects(text: object) -> None:
    """Negatives, NaN, infinity, absurd values and garbage raise a ValueError saying what is expected."""
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)  # type: ignore[arg-type]


def test_parse_duration_limit_is_in_the_message() -> None:
    """An absurd duration's error names the largest accepted one."""
    with pytest.raises(ValueError, match=f"at most {format_duration(MAX_DURATION_S)}"):
        parse_duration("99999999999d")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3725, "1h2m5s"),
        (5400, "1h30m"),
        (90, "1m30s"),
        (90000, "1d1h"),
        (14 * 86400, "14d"),
        (0.25, "250ms"),
        (0, "0s"),
        (1.0005, "1.0005s"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration_is_the_one_printer(seconds: float, text: str) -> None:
    """3725 s prints as 1h2m5s, and every printed duration parses back to the same seconds."""
    assert format_duration(seconds) == text
    if seconds >= 0:
        assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3725, "1h2m"),
        (3605, "1h"),
        (90061, "1d1h"),
        (4.25, "4s250ms"),
        (1.0016, "1s2ms"),
        (0.85, "850ms"),
        (-252, "-4m12s"),
    ],
)
def test_format_duration_cut_to_two_units(seconds: float, text: str) -> None:
    """parts=2 keeps the two largest units and cuts the rest: a shorter figure in the same grammar."""
    assert format_duration(seconds, parts=2) == text


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/s", RateLimit(10, 1.0)),
        ("600/min", RateLimit(600, 60.0)),
        ("200/minute", RateLimit(200, 60.0)),
        ("1000/h", RateLimit(1000, 3600.0)),
        ("10/90s", RateLimit(10, 90.0)),
        ("none", None),
        ("Unlimited", None),
    ],
)
def test_parse_rate_limit(text: str, rate: RateLimit | None) -> None:
    """Rates read as count per period, and print back in the same grammar."""
    assert parse_rate_limit(text) == rate
    assert parse_rate_limit(format_rate_limit(rate)) == rate


@pytest.mark.parametrize("text", ["10", "0/s", "-1/s", "10/", "ten/s", "10/fortnight", "10/0s", "1.5/s"])
def test_parse_rate_limit_rejects(text: str) -> None:
    """A rate without a positive whole count and a known period is refused with the expected form."""
    with pytest.raises(ValueError, match="expected a rate"):
        parse_rate_limit(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        (512, 512),
        ("64KiB", 65536),
        ("500MiB", 500 * 2**20),
        ("2GiB", 2 * 2**30),
        ("2gib", 2 * 2**30),
        ("2GB", 2 * 10**9),
        ("1.5 MiB", int(1.5 * 2**20)),
        ("1G", 2**30),
        ("10b", 10),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    """IEC names are 1024-based, SI names 1000-based, as the unit name says."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", -1, "2 gigs", "GiB", "1e9", "99999999999PiB", True])
def test_parse_size_rejects(text: object) -> None:
    """A size that is negative, absurd or not a number with a unit is refused."""
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (512, "512 B"), (2048, "2.0 KiB"), (9.5 * 2**30, "9.5 GiB"), (2 * 10**9, "1.9 GiB")],
)
def test_format_size_is_iec(size: float, text: str) -> None:
    """Sizes print in one base, IEC, and the unit name says so."""
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("2026-01-05T09:00:12Z", datetime(2026, 1, 5, 9, 0, 12, tzinfo=UTC)),
        ("2026-01-05t09:00:12z", datetime(2026, 1, 5, 9, 0, 12, tzinfo=UTC)),
        ("2026-01-05T11:00:12+02:00", datetime(2026, 1, 5, 9, 0, 12, tzinfo=UTC)),
        ("2026-01-05T09:00:12.250Z", datetime(2026, 1, 5, 9, 0, 12, 250000, tzinfo=UTC)),
        ("2026-01-05 09:00:12+00:00", datetime(2026, 1, 5, 9, 0, 12, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339(text: str, at: datetime) -> None:
    """RFC 3339 text becomes an aware UTC datetime."""
    parsed = parse_rfc3339(text)
    assert parsed == at
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2026-01-05", "2026-01-05T09:00:12", "2026-13-05T09:00:12Z"])
def test_parse_rfc3339_rejects(text: str) -> None:
    """A time without an offset, or not a time, is refused rather than guessed."""
    with pytest.raises(ValueError, match="expected an RFC 3339 time"):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (datetime(2026, 1, 5, 9, 0, 12, tzinfo=UTC), "2026-01-05T09:00:12Z"),
        (datetime(2026, 1, 5, 11, 0, 12, tzinfo=timezone(timedelta(hours=2))), "2026-01-05T09:00:12Z"),
        (datetime(2026, 1, 5, 9, 0, 12, 250000, tzinfo=UTC), "2026-01-05T09:00:12.250000Z"),
    ],
)
def test_format_rfc3339(at: datetime, text: str) -> None:
    """Times print in UTC with a Z, and read back to the same instant."""
    assert format_rfc3339(at) == text
    assert parse_rfc3339(text) == at


def test_format_rfc3339_refuses_naive() -> None:
    """A naive datetime has no instant to print."""
    with pytest.raises(ValueError, match="aware"):
        format_rfc3339(datetime(2026, 1, 5, 9, 0, 12))


def test_units_imports_only_the_stdlib() -> None:
    """Importing shiptrackd.units loads nothing outside the standard library (it is on the CLI's path)."""
    code = (
        "import sys; before = set(sys.modules); import shiptrackd.units; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before if sys.modules[m] is not None}; "
        "print(sorted(new - set(sys.stdlib_module_names) - {'shiptrackd'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
