"""
Configuration: defaults < TOML file < systemd credentials < seed aliases < SHIPTRACK_* environment.

Loading produces a frozen Config or raises ConfigError naming the key, the value and what was
expected; the daemon turns that into exit code 78. The loader is driven by the dataclasses below:
it walks their fields and type hints, so a new field with a default is a valid, typed key at once.

Conventions the walk applies:
- a nested dataclass is a sub-table (`[sync.cadence]`, env `SHIPTRACK_SYNC__CADENCE__IN_TRANSIT`);
- a field ending in `_s`, or declared with `duration_field()`, is a duration ("90s", "1h30m", "14d",
  "250ms", or a bare number of seconds) and its key drops the suffix (`timeout_s` <-> `timeout`);
- a `Secret` (or tuple of them) field `x` also accepts `x_file`: a file holding the value;
- `field(metadata={"min": N})` sets the lowest accepted number; `{"key": False}` hides a field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import quote, unquote, urlsplit

from cronsim import CronSim, CronSimError

from shiptrackd.errors import ConfigError

ENV_PREFIX = "SHIPTRACK_"
# SHIPTRACK_* variables that are not config keys: the file to read, and shiptrackctl's socket.
NON_CONFIG_ENV = frozenset({"SHIPTRACK_CONFIG", "SHIPTRACK_SOCKET"})
SYSTEM_CONFIG_PATH = Path("/etc/shiptrackd/shiptrackd.toml")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def duration_field(default: float, **kwargs: Any) -> Any:
    """A float field holding seconds, written as a duration even though its name lacks `_s`."""
    return field(default=default, metadata={"duration": True}, **kwargs)


class Secret:
    """A string that never prints itself: repr, str and f-strings all show ***."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class RateLimit:
    """`count` requests per `period_s` seconds, e.g. "200/min" -> RateLimit(200, 60)."""

    count: int
    period_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.period_s


@dataclass(frozen=True)
class Schedule:
    """Either a fixed interval (`interval_s`) or a five-field cron expression (`cron`)."""

    text: str
    interval_s: float | None = None
    cron: str | None = None


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path
    socket: Path
    socket_mode: int = 0o660
    log_level: str = "INFO"  # one of LOG_LEVELS
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_s: float = 15.0
    metrics_listen: str = ""  # "127.0.0.1:9469" serves /metrics over TCP too; "" = socket only


@dataclass(frozen=True)
class ProviderConfig:
    name: str = "shipengine"
    api_key: Secret = field(default_factory=lambda: Secret(""))
    base_url: str = "https://api.shipengine.com"
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    timeout_s: float = 15.0
    rate_limit: RateLimit | None = RateLimit(200, 60.0)  # None = unlimited
    concurrency: int = field(default=8, metadata={"min": 1})
    retries: int = 3
    circuit_breaker: int = field(default=5, metadata={"min": 1})  # unreachable calls in a row end a run
    max_retry_after_s: float = 300.0  # a longer Retry-After is clamped to this


@dataclass(frozen=True)
class CadenceConfig:
    """How long after a successful fetch a shipment is due again, by status."""

    accepted: float = duration_field(6 * 3600)  # AC
    in_transit: float = duration_field(2 * 3600)  # IT
    delivery_attempt: float = duration_field(4 * 3600)  # AT: often not final
    exception: float = duration_field(4 * 3600)  # EX: often not final
    pickup: float = duration_field(6 * 3600)  # SP: at a collection point, waiting for DE
    unknown: float = duration_field(6 * 3600)  # UN
    not_yet_in_system: float = duration_field(3600)  # NY: shortest back-off; the wait grows with age
    not_yet_in_system_max: float = duration_field(24 * 3600)
    expire_after: float = duration_field(14 * 86400)  # NY/UN for this long since creation -> expired
    delivered_confirm: float = duration_field(24 * 3600)  # DE: checked once more after this, then terminal
    failure_backoff: float = duration_field(15 * 60)  # after a failed fetch, doubling per failure
    failure_backoff_max: float = duration_field(12 * 3600)


@dataclass(frozen=True)
class SyncConfig:
    schedule: Schedule = Schedule("5m", interval_s=300)
    force_schedule: Schedule = Schedule("0 2 * * *", cron="0 2 * * *")
    batch_size: int = field(default=100, metadata={"min": 1})
    max_runtime_s: float = 1800.0
    cadence: CadenceConfig = field(default_factory=CadenceConfig)


@dataclass(frozen=True)
class HealthConfig:
    schedule: Schedule = Schedule("5m", interval_s=300)
    check_timeout_s: float = 30.0  # a check that takes longer is reported unknown
    api_latency_warning_s: float = 5.0  # the connectivity probe answering slower than this warns
    sync_age_warning_s: float = 15 * 60  # no successful sync for this long: warning
    sync_age_critical_s: float = 3600.0  # ... critical
    stale_after_s: float = 36 * 3600  # an active shipment not updated for this long is stale
    stale_warning: int = 10  # more stale shipments than this: warning (`--alert-threshold` overrides)
    stale_critical: int = 100  # ... critical
    error_rate_window_s: float = 3600.0  # failed / attempted fetches over this window
    error_rate_warning: float = field(default=10.0, metadata={"min": 0})  # percent
    error_rate_critical: float = field(default=50.0, metadata={"min": 0})  # percent
    error_rate_min_attempts: int = 20  # fewer attempts in the window are not judged
    loop_failures_warning: int = field(default=1, metadata={"min": 1})  # a loop failing this many times in a row
    loop_failures_critical: int = field(default=3, metadata={"min": 1})
    loop_overdue_after_s: float = 300.0  # a loop this late past its next run is overdue
    free_disk_warning: str = "10%"  # free space in state_dir below this: bytes ("2GB") or percent ("10%")
    free_disk_critical: str = "5%"
    quick_check_interval_s: float = 3600.0  # PRAGMA quick_check at most this often (it reads the whole file)
    keep_reports_s: float = 7 * 86400  # stored health reports are pruned after this


@dataclass(frozen=True)
class AlertsConfig:
    urls: tuple[Secret, ...] = ()  # Apprise URLs, each optionally prefixed "warning,critical=" (see ALERT_TAGS)
    repeat_interval_s: float = 4 * 3600
    send_resolved: bool = True
    for_reports: int = field(default=2, metadata={"min": 1})  # failing reports in a row before an alert fires
    resolve_after: int = field(default=2, metadata={"min": 1})  # passing reports in a row before it resolves
    max_per_hour: int = field(default=12, metadata={"min": 1})  # notifications an hour, at most (tests excluded)
    inhibit: bool = True  # hold back stale_shipments, recent_sync, error_rate while api_connectivity is critical
    delivery_timeout_s: float = 20.0  # one attempt to one channel
    delivery_attempts: int = field(default=3, metadata={"min": 1})  # per channel, with backoff
    host: str = ""  # the host name alerts carry; "" = this machine's
    keep_log_s: float = 30 * 86400  # the notification log is pruned after this


@dataclass(frozen=True)
class Config:
    daemon: DaemonConfig
    provider: ProviderConfig = field(default_factory=ProviderConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    source: Path | None = field(default=None, metadata={"key": False})  # the file it was read from


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


# --- the schema ---------------------------------------------------------------------------------

_VALUE_DATACLASSES = (Schedule, RateLimit)


@dataclass(frozen=True)
class _Spec:
    """One key of one table: its field, TOML key, resolved type and how to read it."""

    name: str
    key: str
    hint: Any
    duration: bool
    minimum: float | None
    has_default: bool

    @property
    def table(self) -> type | None:
        """The dataclass of a sub-table, or None for a value key (Schedule and RateLimit are values)."""
        h = self.hint
        is_table = isinstance(h, type) and dataclasses.is_dataclass(h) and h not in _VALUE_DATACLASSES
        return h if is_table else None

    @property
    def secret(self) -> bool:
        return self.hint is Secret or self.hint == tuple[Secret, ...]


_SPECS: dict[type, dict[str, _Spec]] = {}


def _specs(cls: type) -> dict[str, _Spec]:
    """The keys of the table *cls*, by TOML key (cached)."""
    if cls not in _SPECS:
        hints = typing.get_type_hints(cls)
        specs = {}
        for f in dataclasses.fields(cls):
            if not f.metadata.get("key", True):
                continue
            duration = f.name.endswith("_s") or bool(f.metadata.get("duration"))
            key = f.name[:-2] if f.name.endswith("_s") else f.name
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            specs[key] = _Spec(f.name, key, hints[f.name], duration, f.metadata.get("min"), has_default)
        _SPECS[cls] = specs
    return _SPECS[cls]


def _all_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, _Spec]]:
    """Every leaf key under *cls*, dotted (`sync.cadence.in_transit`), with its spec."""
    out = []
    for key, spec in _specs(cls).items():
        if spec.table is not None:
            out.extend(_all_keys(spec.table, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", spec))
    return out


def _env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.upper().replace(".", "__")


# --- converting one value -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """Where a value came from, for error messages and relative paths."""

    dotted: str
    origin: str  # "in /etc/shiptrackd/shiptrackd.toml", "from SHIPTRACK_PROVIDER__TIMEOUT"
    from_env: bool = False
    base_dir: Path | None = None
    secret: bool = False


def _show(value: Any, secret: bool = False) -> str:
    """A value as it appears in an error message: TOML-ish, secrets masked, long ones cut."""
    if secret:
        if isinstance(value, str) and "://" in value:
            return json.dumps(mask_url(value))
        if isinstance(value, list | tuple):
            return "[" + ", ".join(_show(v, True) for v in value) + "]"
        return '"***"' if isinstance(value, str) else type(value).__name__
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value)
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(where: _Where, value: Any, expected: str) -> NoReturn:
    shown = _show(value, where.secret)
    raise ConfigError(f"{where.dotted} = {shown} {where.origin}: expected {expected}")


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _parse_bool(value: Any, where: _Where) -> bool:
    if isinstance(value, bool):
        return value
    if where.from_env and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    _fail(where, value, "true or false")


def _parse_number(value: Any, where: _Where, kind: type, minimum: float | None) -> Any:
    if where.from_env and isinstance(value, str):
        try:
            value = int(value.strip()) if kind is int else float(value.strip())
        except ValueError:
            _fail(where, value, "an integer" if kind is int else "a number")
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and isinstance(value, float)):
        _fail(where, value, "an integer" if kind is int else "a number")
    low = 0 if minimum is None else minimum
    if value < low:
        _fail(where, value, f"{'an integer' if kind is int else 'a number'} >= {low:g}")
    return kind(value)


def _parse_duration_value(value: Any, where: _Where, minimum: float | None) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        seconds = parse_duration(value)
    except ValueError:
        _fail(where, value, DURATION_HINT)
    if minimum is None and seconds <= 0:
        _fail(where, value, "a positive " + DURATION_HINT.removeprefix("a "))
    if minimum is not None and seconds < minimum:
        _fail(where, value, f"a duration of at least {format_duration(minimum)}")
    return seconds


def _parse_list(value: Any, where: _Where) -> list[Any]:
    """A TOML array, or from the environment a TOML array literal or whitespace-separated words."""
    if where.from_env and isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                parsed = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError as exc:
                _fail(where, value, f"a TOML array ({exc})")
            return list(parsed)
        return value.split()
    if not isinstance(value, list):
        _fail(where, value, "a list")
    return value


def _parse_secret_lines(text: str) -> list[str]:
    """One value per line; blank lines and # comments skipped (the `apprise-urls` credential format)."""
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


def _check_url_list(urls: list[Any], where: _Where) -> tuple[Secret, ...]:
    out = []
    for i, url in enumerate(urls):
        item = dataclasses.replace(where, dotted=f"{where.dotted}[{i}]")
        tags, bare = split_alert_url(url) if isinstance(url, str) else ((), "")
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S", bare):
            _fail(item, url, 'an Apprise URL such as "json://host/path" or "critical=mailto://user:pass@host"')
        if unknown := [t for t in tags if t not in ALERT_TAGS]:
            _fail(item, url, f"tags from {', '.join(ALERT_TAGS)} before the '=' (not {', '.join(unknown)})")
        out.append(Secret(url.strip()))
    return tuple(out)


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


def _parse_space_key(value: Any, where: _Where) -> str:
    try:
        parse_space(value)
    except ValueError:
        _fail(where, value, SPACE_HINT)
    return str(value).strip()


def _parse_mode(value: Any, where: _Where) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value.strip().lower()):
        mode = int(value.strip().lower().replace("o", ""), 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        mode = -1
    if not 0 <= mode <= 0o777:
        _fail(where, value, 'an octal file mode like "0660" (a string) or 0o660')
    return mode


def _parse_level(value: Any, where: _Where) -> str:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    _fail(where, value, f"one of {', '.join(LOG_LEVELS)}")


def _parse_listen(value: Any, where: _Where) -> str:
    if not isinstance(value, str):
        _fail(where, value, 'a string like "127.0.0.1:9469", or "" for none')
    host, colon, port = value.strip().rpartition(":")
    if value.strip() and not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        _fail(where, value, 'HOST:PORT like "127.0.0.1:9469", or "" for none')
    return value.strip()


# Keys whose value needs more than its type says.
_SPECIAL: dict[str, Callable[[Any, _Where], Any]] = {
    "daemon.socket_mode": _parse_mode,
    "daemon.log_level": _parse_level,
    "daemon.metrics_listen": _parse_listen,
    "health.free_disk_warning": _parse_space_key,
    "health.free_disk_critical": _parse_space_key,
}


def _convert(hint: Any, value: Any, where: _Where, spec: _Spec) -> Any:
    """*value* (TOML-typed, or a string from the environment) as the Python type *hint*."""
    if where.dotted in _SPECIAL:
        return _SPECIAL[where.dotted](value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if isinstance(value, str) and value.strip().lower() in ("none", "unlimited") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{where.dotted}: the loader cannot read union type {hint}")
        return _convert(inner[0], value, where, spec)
    if origin is Literal:
        if value in args:
            return value
        _fail(where, value, "one of " + ", ".join(json.dumps(a) for a in args))
    if origin in (tuple, list):
        items = _parse_list(value, where)
        if args and args[0] is Secret:
            return _check_url_list(items, where)
        item_hint = args[0] if args else str
        conv = [
            _convert(item_hint, v, dataclasses.replace(where, dotted=f"{where.dotted}[{i}]"), spec)
            for i, v in enumerate(items)
        ]
        return tuple(conv) if origin is tuple else conv
    if origin is dict:
        if where.from_env and isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError as exc:
                _fail(where, value, f"a TOML inline table ({exc})")
        if not isinstance(value, dict):
            _fail(where, value, "a table")
        return {
            str(k): _convert(args[1], v, dataclasses.replace(where, dotted=f"{where.dotted}.{k}"), spec)
            for k, v in value.items()
        }
    if hint is bool:
        return _parse_bool(value, where)
    if hint in (int, float) and spec.duration:
        return _parse_duration_value(value, where, spec.minimum)
    if hint in (int, float):
        return _parse_number(value, where, hint, spec.minimum)
    if hint is Schedule:
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError(f"expected {SCHEDULE_HINT}")
            return parse_schedule(value)
        except ValueError as exc:
            raise ConfigError(f"{where.dotted} = {_show(value)} {where.origin}: {exc}") from None
    if hint is RateLimit:
        if not isinstance(value, str):
            _fail(where, value, RATE_HINT)
        try:
            return parse_rate_limit(value)
        except ValueError:
            _fail(where, value, RATE_HINT)
    if not isinstance(value, str):
        _fail(where, value, "a string")
    if hint is Secret:
        return Secret(value.strip())
    if hint is Path:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = (where.base_dir or Path.cwd()) / path
        return path
    if hint is str:
        if spec.name.endswith("_url") and not re.match(r"^https?://[^/\s]+", value.strip()):
            _fail(where, value, "an http:// or https:// URL")
        return value.strip()
    raise TypeError(f"{where.dotted}: the loader cannot read type {hint}")


def _read_secret_file(path_value: Any, where: _Where, many: bool) -> Any:
    """The content of a `*_file` key: the secret (stripped), or for a list one item per line."""
    if not isinstance(path_value, str) or not path_value.strip():
        _fail(where, path_value, "a path to a file holding the secret")
    path = Path(path_value).expanduser()
    if not path.is_absolute():
        path = (where.base_dir or Path.cwd()) / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{where.dotted} = {_show(path_value)} {where.origin}: cannot read {path} ({reason}); "
            "expected a readable file holding the secret"
        ) from None
    if many:
        return _parse_secret_lines(text)
    if not text.strip():
        _fail(where, path_value, f"a file holding the secret, but {path} is empty")
    return text.strip()


# --- reading layers into nested dicts of converted values ----------------------------------------


def _suggest(word: str, table: type, prefix: str) -> str:
    """ "; did you mean X?" for the nearest key of *table*, else the nearest key anywhere, else ""."""
    local = [*_specs(table)] + [f"{k}_file" for k, s in _specs(table).items() if s.secret]
    match = difflib.get_close_matches(word, local, n=1, cutoff=0.6)
    if match:
        spec = _specs(table).get(match[0])
        shown = f"[{prefix}{match[0]}]" if spec is not None and spec.table is not None else prefix + match[0]
        return f"; did you mean {shown}?"
    everywhere = {dotted.rsplit(".", 1)[-1]: dotted for dotted, _ in _all_keys()}
    match = difflib.get_close_matches(word, list(everywhere), n=1, cutoff=0.8)
    return f"; did you mean {everywhere[match[0]]}?" if match else ""


def _walk_table(cls: type, table: Mapping[str, Any], prefix: str, origin: str, base_dir: Path | None) -> dict[str, Any]:
    """Convert one TOML table (and its sub-tables) against *cls*; unknown keys are errors."""
    specs = _specs(cls)
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        spec = specs.get(key)
        if spec is None and key.endswith("_file") and (target := specs.get(key[:-5])) and target.secret:
            where = _Where(dotted, origin, base_dir=base_dir)
            if target.key in table:
                raise ConfigError(f"{prefix}{target.key} and {dotted} are both set {origin}: expected one of them")
            raw = _read_secret_file(value, where, many=target.hint != Secret)
            out[target.name] = _convert(target.hint, raw, _Where(dotted, origin, secret=True), target)
            continue
        if spec is None:
            if not prefix and isinstance(value, dict):
                raise ConfigError(f"unknown section [{key}] {origin}{_suggest(key, cls, prefix)}")
            raise ConfigError(f"unknown key {dotted} {origin}{_suggest(key, cls, prefix)}")
        if spec.table is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted} = {_show(value)} {origin}: expected a table [{dotted}]")
            out[spec.name] = _walk_table(spec.table, value, f"{dotted}.", origin, base_dir)
        else:
            out[spec.name] = _convert(spec.hint, value, _Where(dotted, origin, False, base_dir, spec.secret), spec)
    return out


def _set(values: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
    values[path[-1]] = value


def _field_path(dotted: str) -> list[str]:
    """Field names along a dotted key: "provider.timeout" -> ["provider", "timeout_s"]."""
    cls: type = Config
    names = []
    for key in dotted.split("."):
        spec = _specs(cls)[key]
        names.append(spec.name)
        cls = spec.table or cls
    return names


def _env_index() -> dict[str, tuple[str, _Spec, bool]]:
    """Every accepted SHIPTRACK_* name -> (dotted key, spec, is a *_FILE variant)."""
    index = {}
    for dotted, spec in _all_keys():
        index[_env_name(dotted)] = (dotted, spec, False)
        if spec.secret:
            index[_env_name(dotted) + "_FILE"] = (dotted, spec, True)
    return index


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """SHIPTRACK_<SECTION>__<KEY> variables; an unknown one is an error with the nearest valid name."""
    index = _env_index()
    out: dict[str, Any] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_ENV:
            continue
        if name not in index:
            match = difflib.get_close_matches(name, [*index, *NON_CONFIG_ENV], n=1, cutoff=0.6)
            hint = f"; did you mean {match[0]}?" if match else ""
            raise ConfigError(f"unknown environment variable {name}{hint}")
        value = env[name]
        if value == "":
            continue  # set but empty: as if unset (compose files and EnvironmentFile= do this)
        dotted, spec, is_file = index[name]
        where = _Where(dotted, f"from {name}", from_env=True, secret=spec.secret)
        if is_file:
            raw = _read_secret_file(value, dataclasses.replace(where, secret=False), many=spec.hint != Secret)
            converted = _convert(spec.hint, raw, dataclasses.replace(where, from_env=False), spec)
        else:
            converted = _convert(spec.hint, value, where, spec)
        _set(out, _field_path(dotted), converted)
    return out


SEED_ALIASES = {
    "TRACKING_API_PROVIDER": "provider.name",
    "SHIPENGINE_API_KEY": "provider.api_key",
    "SHIPENGINE_BASE_URL": "provider.base_url",
    "SHIPENGINE_WEBHOOK_SECRET": "provider.webhook_secret",
}


def _alias_bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw and raw not in _TRUE + _FALSE:
        raise ConfigError(f"{name}={raw!r}: expected true or false")
    return raw in _TRUE


def _require(env: Mapping[str, str], name: str, because: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: expected it because {because}")
    return value


def _email_url(env: Mapping[str, str]) -> str:
    """ALERT_EMAIL_* / ALERT_SMTP_* -> a mailto:// (or mailtos:// for 465/587) Apprise URL."""
    why = "ALERT_EMAIL_ENABLED is true"
    recipients = [r.strip() for r in _require(env, "ALERT_EMAIL_RECIPIENTS", why).split(",") if r.strip()]
    host = _require(env, "ALERT_SMTP_HOST", why)
    port_text = env.get("ALERT_SMTP_PORT", "").strip()
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ConfigError(f"ALERT_SMTP_PORT={port_text!r}: expected a TCP port number such as 587")
    port = int(port_text) if port_text else None
    user, password = env.get("ALERT_SMTP_USER", "").strip(), env.get("ALERT_SMTP_PASS", "")
    scheme = "mailtos" if port in (465, 587) else "mailto"
    userinfo = ""
    if user:
        userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password else "") + "@"
    query = []
    if port == 465:
        query.append("mode=ssl")  # implicit TLS; Apprise's mailtos:// default is STARTTLS
    elif port == 587:
        query.append("mode=starttls")
    if "@" in user:
        query.append("from=" + quote(user, safe="@"))
    query.append("to=" + ",".join(quote(r, safe="@") for r in recipients))
    return f"{scheme}://{userinfo}{host}{f':{port}' if port else ''}?{'&'.join(query)}"


def _slack_url(env: Mapping[str, str]) -> str:
    """ALERT_SLACK_* -> slack://A/B/C/#channel from https://hooks.slack.com/services/A/B/C."""
    hook = _require(env, "ALERT_SLACK_WEBHOOK_URL", "ALERT_SLACK_ENABLED is true")
    m = re.fullmatch(r"https://hooks\.slack\.com/services/([^/?#]+)/([^/?#]+)/([^/?#]+)/?", hook)
    if not m:
        raise ConfigError(
            f"ALERT_SLACK_WEBHOOK_URL={json.dumps(mask_url(hook))}: "
            "expected https://hooks.slack.com/services/T.../B.../XXXX"
        )
    channel = env.get("ALERT_SLACK_CHANNEL", "").strip()
    if channel and channel[0] not in "#@":
        channel = "#" + channel
    return f"slack://{m[1]}/{m[2]}/{m[3]}" + (f"/{channel}" if channel else "")


def _webhook_url(env: Mapping[str, str]) -> str:
    """ALERT_WEBHOOK_URL http(s)://... -> Apprise's json:// or jsons:// form of the same address."""
    url = _require(env, "ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_ENABLED is true")
    scheme, sep, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not sep or not urlsplit(url).hostname:
        raise ConfigError(f"ALERT_WEBHOOK_URL={json.dumps(mask_url(url))}: expected an http:// or https:// URL")
    return ("jsons://" if scheme.lower() == "https" else "json://") + rest


def _alias_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The seed's variables: provider aliases as values, ALERT_* families as extra Apprise URLs."""
    out: dict[str, Any] = {}
    specs = dict(_all_keys())
    for name, dotted in SEED_ALIASES.items():
        value = env.get(name, "")
        if value.strip():
            where = _Where(dotted, f"from {name}", from_env=True, secret=specs[dotted].secret)
            _set(out, _field_path(dotted), _convert(specs[dotted].hint, value, where, specs[dotted]))
    urls = []
    if _alias_bool(env, "ALERT_EMAIL_ENABLED"):
        urls.append(_email_url(env))
    if _alias_bool(env, "ALERT_SLACK_ENABLED"):
        urls.append(_slack_url(env))
    if _alias_bool(env, "ALERT_WEBHOOK_ENABLED"):
        urls.append(_webhook_url(env))
    return out, urls


CREDENTIAL_API_KEY = "shipengine-api-key"
CREDENTIAL_APPRISE_URLS = "apprise-urls"


def _credentials_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """systemd LoadCredential= files in $CREDENTIALS_DIRECTORY; a missing, empty or comment-only one is skipped."""
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        return {}, []

    def read(name: str) -> str:
        path = Path(directory) / name
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"credential {name}: cannot read {path} ({reason})") from None

    out: dict[str, Any] = {}
    # Blank and "#" lines are skipped in both: the unit's SetCredential= fallback is "# not set".
    if keys := _parse_secret_lines(read(CREDENTIAL_API_KEY)):
        out["provider"] = {"api_key": Secret(keys[0])}
    where = _Where("alerts.urls", f"from credential {CREDENTIAL_APPRISE_URLS}", secret=True)
    urls = [s.get() for s in _check_url_list(_parse_secret_lines(read(CREDENTIAL_APPRISE_URLS)), where)]
    return out, urls


def _merge(dst: dict[str, Any], src: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value)
        else:
            dst[key] = value
    return dst


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of *cls* from converted *values*; fields not given keep their defaults."""
    kwargs = {}
    for spec in _specs(cls).values():
        if spec.name in values:
            value = values[spec.name]
            kwargs[spec.name] = _build(spec.table, value) if spec.table is not None else value
        elif spec.table is not None and not spec.has_default:
            kwargs[spec.name] = _build(spec.table, {})
    return cls(**kwargs)


# --- defaults, files, load() --------------------------------------------------------------------


def _absolute(text: str) -> Path | None:
    path = Path(text)
    return path if text and path.is_absolute() else None  # XDG: relative values are to be ignored


def default_state_dir(env: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/shiptrackd, else ~/.local/state/shiptrackd, else ./.shiptrackd."""
    if xdg := _absolute(env.get("XDG_STATE_HOME", "")):
        return xdg / "shiptrackd"
    if home := _absolute(env.get("HOME", "")):
        return home / ".local" / "state" / "shiptrackd"
    return Path.cwd() / ".shiptrackd"


def default_socket(env: Mapping[str, str], state_dir: Path) -> Path:
    """$XDG_RUNTIME_DIR/shiptrackd/control.sock, else <state_dir>/control.sock."""
    if runtime := _absolute(env.get("XDG_RUNTIME_DIR", "")):
        return runtime / "shiptrackd" / "control.sock"
    return state_dir / "control.sock"


def default_config_path(env: Mapping[str, str]) -> Path | None:
    """The first existing of $XDG_CONFIG_HOME (or ~/.config)/shiptrackd/shiptrackd.toml and /etc's."""
    config_home = _absolute(env.get("XDG_CONFIG_HOME", ""))
    if config_home is None and (home := _absolute(env.get("HOME", ""))):
        config_home = home / ".config"
    candidates = [config_home / "shiptrackd" / "shiptrackd.toml"] if config_home else []
    for path in [*candidates, SYSTEM_CONFIG_PATH]:
        if path.is_file():
            return path
    return None


def _read_toml(path: Path, how: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} ({how}) does not exist: expected a readable TOML file") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} ({how}) is a directory: expected a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} ({how}) cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


# The zero-setup demo: short schedules and cadence so statuses visibly change within a minute.
# Written as config text so it goes through the same checks; add a line here for a new slow key.
DEMO_SETTINGS: dict[str, Any] = {
    "provider": {"api_key": "sandbox-demo-key"},
    "sync": {
        "schedule": "10s",
        "force_schedule": "0 2 * * *",
        "cadence": {
            "accepted": "30s",
            "in_transit": "20s",
            "delivery_attempt": "30s",
            "exception": "30s",
            "pickup": "30s",
            "unknown": "30s",
            "not_yet_in_system": "15s",
            "not_yet_in_system_max": "2m",
            "expire_after": "30m",
            "delivered_confirm": "1m",
            "failure_backoff": "10s",
            "failure_backoff_max": "2m",
        },
    },
    "health": {"schedule": "15s"},
    "alerts": {"repeat_interval": "5m"},
}
DEMO_STATE_DIR = Path(".shiptrackd-demo")
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the terminating NUL


def load(path: Path | None = None, env: Mapping[str, str] | None = None, *, demo: bool = False) -> Config:
    """The effective Config: defaults < file < credentials < seed aliases < SHIPTRACK_* env.

    Args:
        path: the TOML file; None means $SHIPTRACK_CONFIG, else the first default location that
            exists (none is fine). A path that was named but does not exist is an error.
        env: the environment to read (default os.environ).
        demo: start from the demo settings (state in ./.shiptrackd-demo, short schedules; no file
            search, credentials or seed aliases; base_url "" for the caller to fill).

    Raises:
        ConfigError: one line naming the key, the value (secrets masked) and what was expected.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    source = None
    extra_urls: list[str] = []
    if demo:
        state_dir = Path.cwd() / DEMO_STATE_DIR
        socket = state_dir / "control.sock"
        if len(os.fsencode(socket)) > _MAX_SOCKET_PATH:
            socket = DEMO_STATE_DIR / "control.sock"  # deep cwd: a relative path still binds
        values = {"daemon": {"state_dir": state_dir, "socket": socket}}
        _merge(values, _walk_table(Config, DEMO_SETTINGS, "", "in the demo settings", None))
        _set(values, ["provider", "base_url"], "")
    else:
        values = {"daemon": {"state_dir": default_state_dir(env)}}
    if path is not None:
        source, how = Path(path), "given on the command line"
    elif not demo and env.get("SHIPTRACK_CONFIG"):
        source, how = Path(env["SHIPTRACK_CONFIG"]), "named by SHIPTRACK_CONFIG"
    elif not demo:
        source, how = default_config_path(env), "default location"
    if source is not None:
        source = Path(os.path.abspath(source.expanduser()))
        table = _read_toml(source, how)
        _merge(values, _walk_table(Config, table, "", f"in {source}", source.parent))
    if not demo:
        creds, cred_urls = _credentials_layer(env)
        aliases, alias_urls = _alias_layer(env)
        _merge(values, creds)
        _merge(values, aliases)
        extra_urls = cred_urls + alias_urls
    _merge(values, _env_layer(env))

    daemon = values["daemon"]
    daemon.setdefault("socket", default_socket(env, daemon["state_dir"]))
    if len(os.fsencode(daemon["socket"])) > _MAX_SOCKET_PATH:
        raise ConfigError(
            f"daemon.socket = {_show(str(daemon['socket']))}: expected a path of at most "
            f"{_MAX_SOCKET_PATH} bytes (AF_UNIX limit); choose a shorter one"
        )
    if extra_urls:
        base = values.setdefault("alerts", {}).get("urls", AlertsConfig().urls)
        merged = [*base, *(Secret(u) for u in extra_urls)]
        values["alerts"]["urls"] = tuple(dict.fromkeys(merged))  # drop repeats, keep order
    config: Config = _build(Config, values)
    return dataclasses.replace(config, source=source)


# --- render() -----------------------------------------------------------------------------------


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any, spec: _Spec, dotted: str) -> str:
    """One value as TOML text that load() reads back to the same thing (secrets masked)."""
    if value is None:
        return '"none"'
    if dotted == "daemon.socket_mode":
        return _toml_str(f"{value:04o}")
    if isinstance(value, Secret):
        return _toml_str(mask_url(value.get()) if "://" in value.get() else str(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if spec.duration and isinstance(value, int | float):
        return _toml_str(format_duration(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Schedule):
        return _toml_str(value.text)
    if isinstance(value, RateLimit):
        return _toml_str(format_rate_limit(value))
    if isinstance(value, Path | str):
        return _toml_str(str(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v, spec, dotted) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v, spec, dotted)}" for k, v in value.items()) + " }"
    return _toml_str(str(value))


def _render_table(obj: Any, dotted: str, lines: list[str]) -> None:
    specs = _specs(type(obj))
    lines.append(f"[{dotted}]")
    for key, spec in specs.items():
        if spec.table is None:
            lines.append(f"{key} = {_toml_value(getattr(obj, spec.name), spec, f'{dotted}.{key}')}")
    for key, spec in specs.items():
        if spec.table is not None:
            lines.append("")
            _render_table(getattr(obj, spec.name), f"{dotted}.{key}", lines)


def render(config: Config) -> str:
    """The effective settings as valid TOML, secrets masked: what `shiptrackd --check-config` prints."""
    lines = [
        "# shiptrackd effective configuration (secrets masked)",
        f"# source: {config.source if config.source else 'defaults and environment only'}",
    ]
    for key, spec in _specs(Config).items():
        lines.append("")
        if spec.table is not None:
            _render_table(getattr(config, spec.name), key, lines)
    return "\n".join(lines) + "\n"
