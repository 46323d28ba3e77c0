"""
Single config values as text: durations, rates, schedules, free space, alert URLs and URL masking.

Each parser here turns one string (or TOML number) into a value or raises ValueError with an
"expected ..." hint, and each formatter writes text its parser reads back. They know nothing of
keys, files or the environment, which is why the sandbox, the scheduler, health checks and alert
delivery can use them directly; the key schema wraps them with the key and origin in its errors.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from cronsim import CronSim, CronSimError

from .shapes import RateLimit, Schedule

# --- durations, rates, schedules ----------------------------------------------------------------

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)", re.IGNORECASE)
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
DURATION_HINT = 'a duration like "90s", "30m", "1h30m", "14d" or "250ms"'


def parse_duration(text: str | float) -> float:
    """Seconds in *text* ("90s", "1h30m", "250ms", "14d", or a bare number of seconds); ValueError if not."""
    if isinstance(text, bool):
        raise ValueError(f"expected {DURATION_HINT}")
    if isinstance(text, int | float):
        seconds = float(text)
    elif _NUMBER.fullmatch(text):
        seconds = float(text)
    else:
        pos, seconds, stripped = 0, 0.0, text.strip()
        if not stripped:
            raise ValueError(f"expected {DURATION_HINT}")
        while pos < len(stripped):
            m = _DURATION_PART.match(stripped, pos)
            if not m:
                raise ValueError(f"expected {DURATION_HINT}")
            seconds += float(m[1]) * _UNIT_SECONDS[m[2].lower()]
            pos = m.end()
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"expected {DURATION_HINT}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration text for *seconds* that parse_duration reads back: 5400 -> "1h30m"."""
    ms = round(seconds * 1000)
    if abs(ms - seconds * 1000) > 1e-6 or ms < 0:
        return f"{seconds:g}s"
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


_RATE_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_RATE_PERIODS |= {"h": 3600.0, "hr": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
RATE_HINT = 'a rate like "200/min", "5/s" or "1000/h", or "none"'


def parse_rate_limit(text: str) -> RateLimit | None:
    """A RateLimit from "200/min", "5/s", "1000/h" or "10/90s"; None for "none"/"unlimited"."""
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
    """The text parse_rate_limit reads back: RateLimit(200, 60) -> "200/min", None -> "none"."""
    if rate is None:
        return "none"
    unit = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}.get(rate.period_s)
    return f"{rate.count}/{unit or format_duration(rate.period_s)}"


_CRON_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
SCHEDULE_HINT = 'a duration like "5m" or a five-field cron expression like "0 2 * * *" (or @daily)'


def parse_schedule(text: str | float) -> Schedule:
    """A Schedule from a duration (fixed interval) or a five-field cron expression; ValueError if neither."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = parse_duration(text)
        if seconds <= 0:
            raise ValueError(f"expected {SCHEDULE_HINT}")
        return Schedule(format_duration(seconds), interval_s=seconds)
    if not isinstance(text, str):
        raise ValueError(f"expected {SCHEDULE_HINT}")
    stripped = " ".join(text.split())
    try:
        seconds = parse_duration(stripped)
    except ValueError:
        pass
    else:
        if seconds <= 0:
            raise ValueError(f"expected a positive interval or {SCHEDULE_HINT}")
        return Schedule(stripped, interval_s=seconds)
    expr = _CRON_ALIASES.get(stripped.lower(), stripped)
    if expr.startswith("@"):
        raise ValueError(f"unknown cron alias; expected one of {', '.join(_CRON_ALIASES)}, or {SCHEDULE_HINT}")
    fields = expr.split()
    if len(fields) == 6:
        raise ValueError(
            "6 fields: seconds are not supported; expected exactly five fields "
            "(minute hour day-of-month month day-of-week)"
        )
    if len(fields) != 5:
        raise ValueError(f"expected {SCHEDULE_HINT}")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression ({exc}); expected {SCHEDULE_HINT}") from None
    return Schedule(stripped, cron=expr)


def next_fire(schedule: Schedule, after: datetime) -> datetime:
    """When *schedule* fires next, strictly after *after* (naive times are taken as UTC); pure."""
    if after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    if schedule.interval_s is not None:
        return after + timedelta(seconds=schedule.interval_s)
    if schedule.cron is None:
        raise ValueError(f"schedule {schedule.text!r} has neither an interval nor a cron expression")
    return next(CronSim(schedule.cron, after.astimezone(UTC)))


# --- masking ------------------------------------------------------------------------------------

_TOKENISH = re.compile(r"(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_]{24,}")
_SECRET_QUERY_KEY = re.compile(r"(?i)pass|secret|token|key|auth|sig|cred|bearer")


def _shorten(token: str) -> str:
    return f"{token[0]}...{token[-1]}"


def mask_url(url: str) -> str:
    """*url* with its password, token-like host/path parts and secret query values masked, for display.

    Follows Apprise's privacy mode: `json://user:****@host/path`, `slack://T...2/A...D/T...Q/#alerts`;
    header (`+X-Token=`) and key/token/password query values become `****`. Not a URL -> `****`.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return "****" if url else ""
    rest, qmark, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        if _TOKENISH.fullmatch(unquote(user)):
            user = _shorten(user)
        userinfo = f"{user}:****" if colon else user
    host, colon, port = hostport.partition(":")
    if _TOKENISH.fullmatch(host):
        host = _shorten(host)
    if port and not port.isdigit():  # tgram://ID:TOKEN/... puts a token where a port would be
        port = _shorten(port)
    netloc = f"{userinfo}{at}{host}{colon}{port}"
    segments = [_shorten(s) if _TOKENISH.fullmatch(s) else s for s in path.split("/")]
    pairs = []
    for pair in query.split("&") if query else []:
        key, eq, value = pair.partition("=")
        if eq and value and (key.startswith("+") or _SECRET_QUERY_KEY.search(key.lstrip(":-"))):
            value = "****"
        pairs.append(f"{key}{eq}{value}")
    return f"{scheme}://{netloc}{slash}{'/'.join(segments)}{qmark}{'&'.join(pairs)}"


# --- alert URL tags -----------------------------------------------------------------------------

ALERT_TAGS = ("warning", "critical")
_URL_TAGS = re.compile(r"^\s*([A-Za-z][\w ,]*)=(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def split_alert_url(text: str) -> tuple[tuple[str, ...], str]:
    """`"warning,critical=json://host/x"` -> (("warning", "critical"), "json://host/x"); untagged -> ((), url).

    The prefix is Apprise's own text-config syntax (`tag1,tag2=url`); an untagged URL gets every severity.
    """
    m = _URL_TAGS.match(text)
    if not m:
        return (), text.strip()
    tags = tuple(dict.fromkeys(t.strip().lower() for t in m[1].split(",") if t.strip()))
    return tags, text[m.end() :].strip()


# --- free space ---------------------------------------------------------------------------------

_SPACE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%|b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*", re.IGNORECASE)
_SPACE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SPACE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
SPACE_HINT = 'free space as bytes ("2GB", "500MiB", "1073741824") or a percentage of the disk ("10%")'


def parse_space(text: str | int) -> tuple[float, bool]:
    """("10%") -> (10.0, True); ("2GB") -> (2e9, False); ValueError if neither."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return float(text), False
    m = _SPACE.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"expected {SPACE_HINT}")
    number, unit = float(m[1]), (m[2] or "b").lower()
    if unit == "%":
        if number > 100:
            raise ValueError(f"expected {SPACE_HINT}; a percentage is at most 100")
        return number, True
    return number * _SPACE_UNITS[unit], False
