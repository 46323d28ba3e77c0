"""
The key schema: which keys and SHIPTRACK_* names exist, and how one raw value becomes a typed one.

The schema is not written down anywhere: it is derived from the dataclasses in `shapes` by walking
their fields and type hints (cached per class in SPEC_CACHE). Conversion is driven by the resolved type
plus a few per-key special cases, and every failure is a ConfigError of one form,
`<key> = <value> <origin>: expected <what>`, with secrets masked. Where a value came from (file,
env var, credential) is the caller's business; this module only needs a Where to name it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from shiptrackd.errors import ConfigError
from shiptrackd.units import RATE_HINT, format_duration, parse_duration, parse_rate_limit, parse_size

from .shapes import (
    LOG_LEVELS,
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_RATE_PER_S,
    MAX_RATE_PERIOD_S,
    PROVIDER_NAMES,
    SCHEDULE_MAX_S,
    SCHEDULE_MIN_S,
    Config,
    RateLimit,
    Schedule,
    Secret,
)
from .values import ALERT_TAGS, SCHEDULE_HINT, mask_url, parse_schedule, parse_space, split_alert_url

# --- the schema ---------------------------------------------------------------------------------

_VALUE_DATACLASSES = (Schedule, RateLimit)


@dataclass(frozen=True)
class KeySpec:
    """One key of one table: its field, TOML key, resolved type and how to read it."""

    name: str
    key: str
    hint: Any
    duration: bool
    minimum: float | None
    has_default: bool
    maximum: float | None = None
    recipients: bool = False  # a URL list that may also name Apprise tags ("tag:NAME"): `[[notices]] to`

    @property
    def table(self) -> type | None:
        """The dataclass of a sub-table, or None for a value key (Schedule and RateLimit are values)."""
        h = self.hint
        is_table = isinstance(h, type) and dataclasses.is_dataclass(h) and h not in _VALUE_DATACLASSES
        return h if is_table else None

    @property
    def array(self) -> type | None:
        """The dataclass of an array of tables (`[[outbound]]`: a `tuple[Endpoint, ...]` field), else None."""
        args = typing.get_args(self.hint)
        if typing.get_origin(self.hint) is tuple and args and isinstance(args[0], type):
            return args[0] if dataclasses.is_dataclass(args[0]) else None
        return None

    @property
    def secret(self) -> bool:
        return self.hint is Secret or self.hint == tuple[Secret, ...]


SPEC_CACHE: dict[type, dict[str, KeySpec]] = {}


def key_specs(cls: type) -> dict[str, KeySpec]:
    """The keys of the table *cls*, by TOML key (cached)."""
    if cls not in SPEC_CACHE:
        hints = typing.get_type_hints(cls)
        specs = {}
        for f in dataclasses.fields(cls):
            if not f.metadata.get("key", True):
                continue
            duration = f.name.endswith("_s") or bool(f.metadata.get("duration"))
            key = f.name[:-2] if f.name.endswith("_s") else f.name
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            minimum, maximum = f.metadata.get("min"), f.metadata.get("max")
            recipients = bool(f.metadata.get("recipients"))
            specs[key] = KeySpec(f.name, key, hints[f.name], duration, minimum, has_default, maximum, recipients)
        SPEC_CACHE[cls] = specs
    return SPEC_CACHE[cls]


def all_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, KeySpec]]:
    """Every leaf key under *cls*, dotted (`sync.cadence.in_transit`), with its spec.

    Arrays of tables (`[[outbound]]`) are not leaf keys: they have no SHIPTRACK_* name and are
    documented as commented examples.
    """
    out = []
    for key, spec in key_specs(cls).items():
        if spec.array is not None:
            continue
        if spec.table is not None:
            out.extend(all_keys(spec.table, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", spec))
    return out


# --- environment names --------------------------------------------------------------------------

ENV_PREFIX = "SHIPTRACK_"
# SHIPTRACK_* variables that are not config keys: the file to read, and shiptrackctl's socket.
NON_CONFIG_ENV = frozenset({"SHIPTRACK_CONFIG", "SHIPTRACK_SOCKET"})


def _env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.upper().replace(".", "__")


def env_index() -> dict[str, tuple[str, KeySpec, bool]]:
    """Every accepted SHIPTRACK_* name -> (dotted key, spec, is a *_FILE variant)."""
    index = {}
    for dotted, spec in all_keys():
        index[_env_name(dotted)] = (dotted, spec, False)
        if spec.secret:
            index[_env_name(dotted) + "_FILE"] = (dotted, spec, True)
    return index


# --- converting one value -------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Where a value came from, for error messages and relative paths."""

    dotted: str
    origin: str  # "in /etc/shiptrackd/shiptrackd.toml", "from SHIPTRACK_PROVIDER__TIMEOUT"
    from_env: bool = False
    base_dir: Path | None = None
    secret: bool = False


def show_value(value: Any, secret: bool = False) -> str:
    """A value as it appears in an error message: TOML-ish, secrets masked, long ones cut."""
    if secret:
        if isinstance(value, str) and "://" in value:
            return json.dumps(mask_url(value))
        if isinstance(value, list | tuple):
            return "[" + ", ".join(show_value(v, True) for v in value) + "]"
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


def fail_value(where: Where, value: Any, expected: str) -> NoReturn:
    shown = show_value(value, where.secret)
    raise ConfigError(f"{where.dotted} = {shown} {where.origin}: expected {expected}")


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def _parse_bool(value: Any, where: Where) -> bool:
    if isinstance(value, bool):
        return value
    if where.from_env and isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    fail_value(where, value, "true or false")


def _parse_number(value: Any, where: Where, kind: type, minimum: float | None, maximum: float | None) -> Any:
    """An int or float within [minimum (default 0), maximum (default MAX_COUNT)]; the range is in the error."""
    noun = "an integer" if kind is int else "a number"
    low = 0 if minimum is None else minimum
    high = MAX_COUNT if maximum is None else maximum
    expected = f"{noun} from {low:g} to {high:g}"
    if where.from_env and isinstance(value, str):
        try:
            value = int(value.strip()) if kind is int else float(value.strip())
        except ValueError:
            fail_value(where, value, expected)
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and isinstance(value, float)):
        fail_value(where, value, expected)
    if not math.isfinite(value) or not low <= value <= high:
        fail_value(where, value, expected)
    return kind(value)


def _parse_duration_value(value: Any, where: Where, minimum: float | None, maximum: float | None) -> float:
    """Seconds within (0 or minimum, maximum (default MAX_DURATION_S)]; the range is in the error."""
    high = MAX_DURATION_S if maximum is None else maximum
    like = 'like "90s", "1h30m" or "2d"'
    if minimum is None:
        expected = f"a positive duration {like}, at most {format_duration(high)}"
    else:
        expected = f"a duration {like}, from {format_duration(minimum)} to {format_duration(high)}"
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        seconds = parse_duration(value)
    except ValueError:
        fail_value(where, value, expected)
    if (minimum is None and seconds <= 0) or (minimum is not None and seconds < minimum) or seconds > high:
        fail_value(where, value, expected)
    return seconds


def _check_schedule(schedule: Schedule, value: Any, where: Where) -> Schedule:
    if schedule.interval_s is not None and not SCHEDULE_MIN_S <= schedule.interval_s <= SCHEDULE_MAX_S:
        span = f"{format_duration(SCHEDULE_MIN_S)} to {format_duration(SCHEDULE_MAX_S)}"
        fail_value(where, value, f"an interval from {span}, or a five-field cron expression")
    return schedule


def _check_rate(rate: RateLimit | None, value: Any, where: Where) -> RateLimit | None:
    if rate is not None and (rate.per_second > MAX_RATE_PER_S or rate.period_s > MAX_RATE_PERIOD_S):
        limits = f"at most {MAX_RATE_PER_S:g}/s, over a period of at most {format_duration(MAX_RATE_PERIOD_S)}"
        fail_value(where, value, f"{RATE_HINT}; {limits}")
    return rate


def _parse_provider_name(value: Any, where: Where) -> str:
    name = value.strip().lower() if isinstance(value, str) else value
    if name not in PROVIDER_NAMES:
        fail_value(where, value, "a known provider: one of " + ", ".join(json.dumps(n) for n in PROVIDER_NAMES))
    return str(name)


def _parse_list(value: Any, where: Where) -> list[Any]:
    """A TOML array, or from the environment a TOML array literal or whitespace-separated words."""
    if where.from_env and isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                parsed = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError as exc:
                fail_value(where, value, f"a TOML array ({exc})")
            return list(parsed)
        return value.split()
    if not isinstance(value, list):
        fail_value(where, value, "a list")
    return value


def check_url_list(urls: list[Any], where: Where, recipients: bool = False) -> tuple[Secret, ...]:
    """Apprise URLs (optionally "warning,critical=" tagged); with *recipients*, also "tag:NAME" (config/endpoints)."""
    out = []
    for i, url in enumerate(urls):
        item = dataclasses.replace(where, dotted=f"{where.dotted}[{i}]")
        if recipients and isinstance(url, str) and url.strip().lower().startswith("tag:"):
            out.append(Secret(url.strip()))
            continue
        tags, bare = split_alert_url(url) if isinstance(url, str) else ((), "")
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S", bare):
            hint = 'an Apprise URL such as "json://host/path"'
            hint += ', or "tag:NAME" for the channels of [alerts] config tagged NAME' if recipients else ""
            fail_value(item, url, hint if recipients else hint + ' or "critical=mailto://user:pass@host"')
        if unknown := [t for t in tags if t not in ALERT_TAGS]:
            fail_value(item, url, f"tags from {', '.join(ALERT_TAGS)} before the '=' (not {', '.join(unknown)})")
        out.append(Secret(url.strip()))
    return tuple(out)


def _parse_space_key(value: Any, where: Where) -> str:
    try:
        parse_space(value)
    except ValueError as exc:
        raise ConfigError(f"{where.dotted} = {show_value(value)} {where.origin}: {exc}") from None
    return str(value).strip()


def _parse_mode(value: Any, where: Where) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value.strip().lower()):
        mode = int(value.strip().lower().replace("o", ""), 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        mode = -1
    if not 0 <= mode <= 0o777:
        fail_value(where, value, 'an octal file mode like "0660" (a string) or 0o660')
    return mode


def _parse_level(value: Any, where: Where) -> str:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    fail_value(where, value, f"one of {', '.join(LOG_LEVELS)}")


def _parse_listen(value: Any, where: Where) -> str:
    if not isinstance(value, str):
        fail_value(where, value, 'a string like "127.0.0.1:9469", or "" for none')
    host, colon, port = value.strip().rpartition(":")
    if value.strip() and not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        fail_value(where, value, 'HOST:PORT like "127.0.0.1:9469", or "" for none')
    return value.strip()


MAX_PUSH_BODY = 64 * 1024 * 1024


def _parse_push_listen(value: Any, where: Where) -> str:
    """HOST:PORT for the push receiver; port 0 picks a free one (tests, the demo), logged at start."""
    if isinstance(value, str) and value.strip().endswith(":0") and value.strip()[:-2]:
        return value.strip()
    return _parse_listen(value, where)


def _parse_body_size(value: Any, where: Where) -> str:
    """A size like "1MiB" from 1 KiB to 64 MiB, kept as written (push/receiver.py reads it with units.parse_size)."""
    expected = 'a size like "1MiB" or "512KiB", from 1KiB to 64MiB'
    try:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError
        size = parse_size(value)
    except ValueError:
        fail_value(where, value, expected)
    if not 1024 <= size <= MAX_PUSH_BODY:
        fail_value(where, value, expected)
    return str(value).strip()


def _parse_optional_url(value: Any, where: Where) -> str:
    if not isinstance(value, str) or (value.strip() and not re.match(r"^https?://[^/\s]+", value.strip())):
        fail_value(where, value, 'an http:// or https:// URL, or "" for none')
    return value.strip().rstrip("/")


# Keys whose value needs more than its type says.
_SPECIAL: dict[str, Callable[[Any, Where], Any]] = {
    "daemon.socket_mode": _parse_mode,
    "daemon.log_level": _parse_level,
    "daemon.metrics_listen": _parse_listen,
    "api.listen": _parse_listen,
    "webhooks.listen": _parse_push_listen,
    "webhooks.public_url": _parse_optional_url,
    "webhooks.max_body": _parse_body_size,
    "provider.name": _parse_provider_name,
    "health.free_disk_warning": _parse_space_key,
    "health.free_disk_critical": _parse_space_key,
}


def convert_value(hint: Any, value: Any, where: Where, spec: KeySpec) -> Any:
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
        return convert_value(inner[0], value, where, spec)
    if origin is Literal:
        if value in args:
            return value
        fail_value(where, value, "one of " + ", ".join(json.dumps(a) for a in args))
    if origin in (tuple, list):
        items = _parse_list(value, where)
        if args and args[0] is Secret:
            return check_url_list(items, where, spec.recipients)
        item_hint = args[0] if args else str
        conv = [
            convert_value(item_hint, v, dataclasses.replace(where, dotted=f"{where.dotted}[{i}]"), spec)
            for i, v in enumerate(items)
        ]
        return tuple(conv) if origin is tuple else conv
    if origin is dict:
        if where.from_env and isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError as exc:
                fail_value(where, value, f"a TOML inline table ({exc})")
        if not isinstance(value, dict):
            fail_value(where, value, "a table")
        return {
            str(k): convert_value(args[1], v, dataclasses.replace(where, dotted=f"{where.dotted}.{k}"), spec)
            for k, v in value.items()
        }
    if hint is bool:
        return _parse_bool(value, where)
    if hint in (int, float) and spec.duration:
        return _parse_duration_value(value, where, spec.minimum, spec.maximum)
    if hint in (int, float):
        return _parse_number(value, where, hint, spec.minimum, spec.maximum)
    if hint is Schedule:
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError(f"expected {SCHEDULE_HINT}")
            schedule = parse_schedule(value)
        except ValueError as exc:
            raise ConfigError(f"{where.dotted} = {show_value(value)} {where.origin}: {exc}") from None
        return _check_schedule(schedule, value, where)
    if hint is RateLimit:
        if not isinstance(value, str):
            fail_value(where, value, RATE_HINT)
        try:
            rate = parse_rate_limit(value)
        except ValueError:
            fail_value(where, value, RATE_HINT)
        return _check_rate(rate, value, where)
    if not isinstance(value, str):
        fail_value(where, value, "a string")
    if hint is Secret:
        if spec.name.endswith("_url") and value.strip() and not re.match(r"^https?://[^/\s]+", value.strip()):
            fail_value(where, value, "an http:// or https:// URL")
        return Secret(value.strip())
    if hint is Path:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = (where.base_dir or Path.cwd()) / path
        return path
    if hint is str:
        if spec.name.endswith("_url") and not re.match(r"^https?://[^/\s]+", value.strip()):
            fail_value(where, value, "an http:// or https:// URL")
        return value.strip()
    raise TypeError(f"{where.dotted}: the loader cannot read type {hint}")
