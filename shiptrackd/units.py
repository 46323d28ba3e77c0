"""
One grammar for units: durations, rates, byte sizes and timestamps, parsed one way and printed one way.

Config, shiptrackctl, the console, health messages and logs all read and write these through here,
so "1h30m" means the same everywhere and 3725 s always prints as "1h2m5s" (a screen may cut it to its
largest units, "1h2m", with format_duration(..., parts=2): shorter, never another style). Sizes are printed in
one base, IEC (KiB, MiB, GiB), and the unit name says so; SI input ("2GB") is still read, exactly as
its name says (2 * 10**9). Timestamps are RFC 3339, aware UTC, with a "Z".

Stdlib only and cheap to import: `shiptrackctl --help` loads it (target < 0.1 s, bench/bench_cli.py).
Every parser raises ValueError whose message starts with "expected ..." so callers can prefix the
key or argument it came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "DURATION_HINT",
    "MAX_DURATION_S",
    "RATE_HINT",
    "SIZE_HINT",
    "RateLimit",
    "format_duration",
    "format_rate_limit",
    "format_rfc3339",
    "format_size",
    "parse_duration",
    "parse_rate_limit",
    "parse_rfc3339",
    "parse_size",
]

# --- durations ----------------------------------------------------------------------------------

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "d": 86400,
    "w": 604800,
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|secs|sec|mins|min|hrs|hr|s|m|h|d|w)(?![a-z])", re.IGNORECASE)
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
# Beyond a century a duration is a typo ("99999999999d"), and datetime arithmetic would overflow.
MAX_DURATION_S = 100 * 365 * 86400.0
DURATION_HINT = 'a duration like "90s", "5m", "1h30m", "1h 30m", "90min", "2d", "1w", "250ms" or a number of seconds'


def parse_duration(text: str | float) -> float:
    """
    Seconds in *text*: "90s", "1h30m", "1h 30m", "90min", "250ms", "2d", "1w", or a bare number of seconds.

    Raises ValueError ("expected ...") for anything else, and for negative, NaN, infinite or
    absurd (over MAX_DURATION_S) values.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected {DURATION_HINT}, not a boolean")
    if isinstance(text, int | float):
        seconds = float(text)
    elif not isinstance(text, str):
        raise ValueError(f"expected {DURATION_HINT}")
    elif _NUMBER.fullmatch(text):
        seconds = float(text)
    else:
        stripped = text.strip()
        pos, seconds = 0, 0.0
        if not stripped:
            raise ValueError(f"expected {DURATION_HINT}")
        while pos < len(stripped):
            m = _DURATION_PART.match(stripped, pos)
            if not m:
                raise ValueError(f"expected {DURATION_HINT}")
            seconds += float(m[1]) * _UNIT_SECONDS[m[2].lower()]
            pos = m.end()
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"expected {DURATION_HINT} (not negative)")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"expected {DURATION_HINT}, at most {format_duration(MAX_DURATION_S)}")
    return seconds


def format_duration(seconds: float, *, parts: int | None = None) -> str:
    """
    The one duration printer: 3725 -> "1h2m5s", 5400 -> "1h30m", 0.25 -> "250ms", 90000 -> "1d1h".

    parse_duration reads it back; a value finer than a millisecond prints as seconds ("1.0005s");
    negative values get a leading "-". *parts* keeps that many units from the largest one present and
    cuts the rest (3725, parts=2 -> "1h2m"; 3605, parts=2 -> "1h"; 4.25, parts=2 -> "4s250ms"), for
    screens and messages that want a short figure; it rounds to the millisecond first.
    """
    if math.isnan(seconds) or math.isinf(seconds):
        return f"{seconds}s"
    if seconds < 0:
        return "-" + format_duration(-seconds, parts=parts)
    ms = round(seconds * 1000)
    if parts is None and abs(ms - seconds * 1000) > 1e-6:
        return f"{seconds:g}s"  # finer than a millisecond: keep what was given, so it reads back
    if ms == 0:
        return "0s"
    texts: list[str] = []
    left = parts
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            texts.append(f"{count}{unit}")
        if left is not None and texts:
            left -= 1
            if left <= 0:
                break
    return "".join(texts)


# --- rates ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """`count` requests per `period_s` seconds, e.g. "200/min" -> RateLimit(200, 60)."""

    count: int
    period_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.period_s


_RATE_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_RATE_PERIODS |= {"h": 3600.0, "hr": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
RATE_HINT = 'a rate like "10/s", "200/min", "600/min" or "1000/h", or "none"'


def parse_rate_limit(text: str) -> RateLimit | None:
    """A RateLimit from "10/s", "600/min", "1000/h" or "10/90s"; None for "none"/"unlimited"."""
    if not isinstance(text, str):
        raise ValueError(f"expected {RATE_HINT}")
    word = text.strip().lower()
    if word in ("none", "unlimited"):
        return None
    count, slash, period = word.partition("/")
    if not slash or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"expected {RATE_HINT}")
    period = period.strip()
    if period in _RATE_PERIODS:
        seconds = _RATE_PERIODS[period]
    else:
        try:
            seconds = parse_duration(period)
        except ValueError:
            raise ValueError(f"expected {RATE_HINT}") from None
    if seconds <= 0:
        raise ValueError(f"expected {RATE_HINT}")
    return RateLimit(int(count), seconds)


def format_rate_limit(rate: RateLimit | None) -> str:
    """The text parse_rate_limit reads back: RateLimit(600, 60) -> "600/min", None -> "none"."""
    if rate is None:
        return "none"
    unit = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}.get(rate.period_s)
    return f"{rate.count}/{unit or format_duration(rate.period_s)}"


# --- byte sizes -----------------------------------------------------------------------------------

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?b|[kmgtp]|b)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}
_SIZE_UNITS |= {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}  # bare letters: IEC, as systemd
_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
SIZE_HINT = 'a size like "500MiB", "2GiB", "2GB" (10**9) or a number of bytes'


def parse_size(text: str | int) -> int:
    """Bytes in *text*: "512", "64KiB", "500MiB", "2GiB" (IEC, 1024-based) or "2GB" (SI, as its name says)."""
    if isinstance(text, bool):
        raise ValueError(f"expected {SIZE_HINT}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"expected {SIZE_HINT} (not negative)")
        return text
    m = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"expected {SIZE_HINT}")
    size = float(m[1]) * _SIZE_UNITS[(m[2] or "b").lower()]
    if size > 2**63:
        raise ValueError(f"expected {SIZE_HINT}, at most 8EiB")
    return int(size)


def format_size(size: float) -> str:
    """The one size printer, IEC: 512 -> "512 B", 9.5 * 2**30 -> "9.5 GiB"."""
    value = float(size)
    for unit in _IEC:
        if abs(value) < 1024 or unit == _IEC[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# --- timestamps -----------------------------------------------------------------------------------


def parse_rfc3339(text: str | datetime) -> datetime:
    """
    An aware UTC datetime from RFC 3339 text ("2026-01-05T09:00:12Z", "...+02:00", fractions allowed).

    A time without an offset is refused (ValueError): guessing its zone is how times drift by hours.
    An aware datetime passes through, converted to UTC.
    """
    if isinstance(text, datetime):
        if text.tzinfo is None:
            raise ValueError("expected an RFC 3339 time with an offset, got a naive datetime")
        return text.astimezone(UTC)
    if not isinstance(text, str):
        raise ValueError('expected an RFC 3339 time like "2026-01-05T09:00:12Z"')
    cleaned = text.strip()
    if cleaned[-1:] in ("z", "Z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        at = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f'expected an RFC 3339 time like "2026-01-05T09:00:12Z", got {text[:40]!r}') from None
    if at.tzinfo is None or len(cleaned) < 16 or cleaned[10] not in "Tt ":
        raise ValueError(f'expected an RFC 3339 time with an offset like "2026-01-05T09:00:12Z", got {text[:40]!r}')
    return at.astimezone(UTC)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """
    A Retry-After header as seconds from *now*: delta-seconds ("7", "1.5") or an HTTP-date (RFC 9110
    §10.2.3); None when absent, unreadable or not finite. Not clamped: each caller has its own bounds.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            at = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = ((at if at.tzinfo else at.replace(tzinfo=UTC)) - now).total_seconds()
    return seconds if math.isfinite(seconds) else None


def format_rfc3339(at: datetime) -> str:
    """The one timestamp printer: "2026-01-05T09:00:12Z", with microseconds only when there are some."""
    if at.tzinfo is None:
        raise ValueError("format_rfc3339 needs an aware datetime")
    utc = at.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"
