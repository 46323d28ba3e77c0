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

from shiptrackd.units import format_duration, parse_duration, parse_size

from .shapes import Schedule

# --- schedules (durations and rates live in shiptrackd.units) -----------------------------------

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
    except ValueError as exc:
        if len(stripped.split()) == 1 and not stripped.startswith("@"):
            # One word cannot be a five-field cron expression: the duration's own error says more.
            raise ValueError(f"{exc}; or a five-field cron expression") from None
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

SPACE_HINT = 'free space as a size ("2GiB", "500MiB", "2GB", "1073741824") or a percentage of the disk ("10%")'


def parse_space(text: str | int) -> tuple[float, bool]:
    """("10%") -> (10.0, True); ("2GiB") -> (2147483648.0, False); ValueError if neither."""
    if isinstance(text, str) and text.strip().endswith("%"):
        number = text.strip()[:-1].strip()
        if not re.fullmatch(r"\d+(?:\.\d+)?", number):
            raise ValueError(f"expected {SPACE_HINT}")
        if float(number) > 100:
            raise ValueError(f"expected {SPACE_HINT}; a percentage is at most 100")
        return float(number), True
    try:
        return float(parse_size(text)), False
    except ValueError:
        raise ValueError(f"expected {SPACE_HINT}") from None
