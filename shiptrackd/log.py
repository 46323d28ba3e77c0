"""
Logging: loguru to stderr as text or compact JSON, stdlib logging routed in, secrets redacted.

Under systemd (JOURNAL_STREAM set) every output line, traceback lines included, starts with a
`<N>` syslog priority so journald files it at the right level. The sink is a function that writes
whole lines itself, so loguru's colour markup never sees a `<6>` (libraries.md §8, gotcha 1).
A global patcher redacts every record, whichever sink it goes to.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC
from typing import Any, TextIO

from loguru import logger

__all__ = ["InterceptHandler", "redact", "register_secret", "setup_logging"]

MASK = "***"
_MIN_SECRET_LEN = 4

# Syslog priorities for journald's `<N>` prefix, by loguru level number (sd-daemon(3)).
_PRIORITIES = ((50, 2), (40, 3), (30, 4), (25, 5), (20, 6))

_SECRET_KEY = r"[\w-]*(?:api[-_]?key|token|password|passwd|secret)"
_REDACTIONS = (
    # Authorization: Bearer xyz / Basic xyz / Token xyz (header or key=value form)
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)?\s*)[^\s,;'\"]+"), r"\1***"),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{4,}"), r"\1***"),
    # api_key=..., API-Key: ..., apikey ..., token=..., password: ..., "client_secret": "..."
    (re.compile(rf"(?i)(\b{_SECRET_KEY}[\"']?\s*[:=]\s*[\"']?)[^\s,;&'\"}}\]]+"), r"\1***"),
    # scheme://user:password@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s@/]+@"), r"\1***@"),
)
_SECRET_EXTRA = re.compile(r"(?i)api[-_]?key|apikey|password|passwd|token|secret|authorization|credential")
_TOKENISH = re.compile(r"(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_]{24,}")

_secrets: set[str] = set()
_secrets_by_length: list[str] = []
_handler_id: int | None = None
_removed_default = False


def register_secret(value: str) -> None:
    """Mask every later occurrence of *value* in log messages, extras and tracebacks.

    Values shorter than 4 characters are ignored (masking "ab" everywhere would garble logs).
    For a URL (an Apprise URL), its password and token-like host/path parts are registered too.
    """
    candidates = [value]
    if "://" in value:
        rest = value.split("://", 1)[1].split("?", 1)[0]
        netloc, _, path = rest.partition("/")
        userinfo, at, host = netloc.rpartition("@")
        if at and ":" in userinfo:
            candidates.append(userinfo.split(":", 1)[1])
        candidates += [p for p in (*host.split(":"), *path.split("/")) if _TOKENISH.fullmatch(p)]
    for item in candidates:
        if len(item) >= _MIN_SECRET_LEN:
            _secrets.add(item)
    _secrets_by_length[:] = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: str) -> str:
    """*text* with registered secrets and credential-looking patterns replaced by ***."""
    for secret in _secrets_by_length:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: MASK if _SECRET_EXTRA.search(str(k)) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def _redact_record(record: Any) -> None:
    """The patcher on every record: message and extras redacted in place."""
    record["message"] = redact(record["message"])
    extra = record["extra"]
    for key in list(extra):
        if key.startswith("_"):
            continue
        extra[key] = MASK if _SECRET_EXTRA.search(key) else _redact_value(extra[key])


def _priority(level_no: int) -> int:
    for floor, priority in _PRIORITIES:
        if level_no >= floor:
            return priority
    return 7


def _exception_text(record: Any) -> str:
    exc = record["exception"]
    if exc is None or exc.type is None:
        return ""
    return redact("".join(traceback.format_exception(exc.type, exc.value, exc.traceback)).rstrip("\n"))


def _extras(record: Any) -> dict[str, Any]:
    return {k: v for k, v in record["extra"].items() if not k.startswith("_") and k != "stdlib"}


_COLOURS = {"TRACE": "\x1b[2m", "DEBUG": "\x1b[34m", "SUCCESS": "\x1b[32m", "WARNING": "\x1b[33m"}
_COLOURS |= {"ERROR": "\x1b[31m", "CRITICAL": "\x1b[1;31m"}


class _Sink:
    """Writes each record as whole lines: text or JSON, `<N>`-prefixed under journald."""

    def __init__(self, stream: TextIO, fmt: str, *, journald: bool, colour: bool) -> None:
        self.stream, self.fmt, self.journald, self.colour = stream, fmt, journald, colour

    def __call__(self, message: Any) -> None:
        record = message.record
        text = self.render_json(record) if self.fmt == "json" else self.render_text(record)
        if self.journald:
            prefix = f"<{_priority(record['level'].no)}>"
            text = "\n".join(prefix + line for line in text.split("\n"))
        self.stream.write(text + "\n")
        self.stream.flush()

    def render_json(self, record: Any) -> str:
        out: dict[str, Any] = {
            "ts": record["time"].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record["level"].name,
            "msg": record["message"],
            "logger": record["extra"].get("stdlib") or record["name"],
        }
        for key, value in _extras(record).items():
            out.setdefault(key, value)
        if exc := _exception_text(record):
            out["exception"] = exc
        return json.dumps(out, default=str, ensure_ascii=False, separators=(",", ":"))

    def render_text(self, record: Any) -> str:
        level = record["level"].name
        name = record["extra"].get("stdlib") or record["name"]
        extras = "".join(f" {k}={v}" for k, v in _extras(record).items())
        if self.colour:
            colour = _COLOURS.get(level, "\x1b[1m")
            level_text = f"{colour}{level:<8}\x1b[0m"
        else:
            level_text = f"{level:<8}"
        if self.journald:  # journald stamps the time itself
            line = f"{level_text} {name}: {record['message']}{extras}"
        else:
            stamp = record["time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            stamp = f"\x1b[2m{stamp}\x1b[0m" if self.colour else stamp
            line = f"{stamp} {level_text} {name}: {record['message']}{extras}"
        if exc := _exception_text(record):
            line += "\n" + exc
        return line


class InterceptHandler(logging.Handler):
    """Send stdlib logging records (httpx, apprise, hypercorn, asyncio) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Walk out of the logging module so loguru reports the caller's frame (loguru's recipe).
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).bind(stdlib=record.name).log(level, record.getMessage())


def _use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, unless NO_COLOR is set to anything non-empty or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _journald(stream: TextIO) -> bool:
    """True when *stream* is the journal stream systemd gave us (JOURNAL_STREAM="dev:inode").

    A shell started from a desktop session can inherit JOURNAL_STREAM while its stderr is a
    terminal, so the device and inode are compared (sd-daemon(3)); a stream without a file
    descriptor (tests, StringIO) trusts the variable.
    """
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return True
    return f"{st.st_dev}:{st.st_ino}" == expected


def setup_logging(level: str = "INFO", fmt: str = "text", *, stream: TextIO | None = None) -> None:
    """Configure loguru (and route stdlib logging into it); call again to change level or format.

    Args:
        level: a loguru level name (TRACE ... CRITICAL).
        fmt: "text" for humans, "json" for one compact JSON object per line.
        stream: where lines go; stderr by default (journald under systemd).
    """
    global _handler_id, _removed_default
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: expected 'text' or 'json'")
    level = level.upper()
    level_no = logger.level(level).no  # ValueError for an unknown level
    stream = sys.stderr if stream is None else stream
    journald = _journald(stream)
    if not _removed_default:
        try:
            logger.remove(0)  # loguru's own stderr handler
        except ValueError:
            pass
        _removed_default = True
    if _handler_id is not None:
        logger.remove(_handler_id)
    logger.configure(patcher=_redact_record)
    sink = _Sink(stream, fmt, journald=journald, colour=not journald and fmt == "text" and _use_colour(stream))
    # diagnose=False: variable values in tracebacks could carry secrets past the redaction.
    _handler_id = logger.add(sink, level=level, format="{message}", backtrace=False, diagnose=False)

    logging.basicConfig(handlers=[InterceptHandler()], level=min(level_no, logging.CRITICAL), force=True)
    # Chatty libraries stay at WARNING even under DEBUG: aiosqlite logs two lines per statement
    # (a status call is a dozen), httpx/httpcore one per request and connection event.
    for name in ("httpx", "httpcore", "aiosqlite"):
        logging.getLogger(name).setLevel(max(logging.WARNING, level_no))
