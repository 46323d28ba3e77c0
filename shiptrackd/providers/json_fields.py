"""
Lenient readers for the JSON fields of provider answers, shared by the EasyPost and AfterShip parsers.

The rule is the one shipengine_parse.py follows: absent, null and "" are all "not given", but a
field that is present with the wrong type or an unreadable date raises InvalidResponseError
naming the field, because silently dropping it would store a wrong history.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shiptrackd.errors import InvalidResponseError


def load_object(content: bytes, *, status: int = 200) -> dict[str, Any]:
    """The body as a JSON object, or InvalidResponseError saying what it was instead."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" nested past the stack
        raise InvalidResponseError("body: not valid JSON", status=status) from None
    if not isinstance(data, dict):
        raise InvalidResponseError(f"body: expected a JSON object, got {type_name(data)}", status=status)
    return data


def obj(data: dict[str, Any], key: str, *, where: str = "") -> dict[str, Any]:
    """A nested object; absent or null is {}."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidResponseError(f"{field(where, key)}: expected an object, got {type_name(value)}", status=200)
    return value


def items(data: dict[str, Any], key: str, *, where: str = "") -> list[dict[str, Any]]:
    """A list of objects; absent or null is []."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidResponseError(f"{field(where, key)}: expected a list, got {type_name(value)}", status=200)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidResponseError(
                f"{field(where, key)}[{i}]: expected an object, got {type_name(item)}", status=200
            )
    return value


def text(data: dict[str, Any], key: str, *, where: str = "") -> str:
    """A string field: absent, null and "" all become ""; numbers are tolerated as text."""
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidResponseError(f"{field(where, key)}: expected a string, got {type_name(value)}", status=200)


def when(data: dict[str, Any], key: str, *, where: str = "", zoned_only: bool = False) -> datetime | None:
    """`data[key]` read by date_time(), named `where.key` in errors."""
    return date_time(data.get(key), field(where, key), zoned_only=zoned_only)


def date_time(value: object, name: str, *, zoned_only: bool = False) -> datetime | None:
    """
    An ISO-8601 date or date-time as aware UTC; None, "" become None. Zone-less means UTC, or None
    with `zoned_only` (a carrier's local time, useless without its zone). The one reader of the
    providers' timestamps.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidResponseError(f"{name}: expected a date-time string, got {type_name(value)}", status=200)
    raw = value.strip()
    try:
        parsed = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise InvalidResponseError(f"{name}: {value[:40]!r} is not a date-time", status=200) from None
    if parsed.tzinfo is None:
        if zoned_only:
            return None
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def field(where: str, key: str) -> str:
    """`where.key`, or `key` at the top level: the path an error message names."""
    return f"{where}.{key}" if where else key


def type_name(value: object) -> str:
    """A JSON value's kind in words, for error messages."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
