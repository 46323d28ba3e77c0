"""
Pure text helpers for the console: durations, relative times, levels, truncation.

Everything that depends on the time takes `now` explicitly, so screens render the
same text from the same data and a fixed clock (the snapshot tests rely on it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual.content import Content

from shiptrackd.units import format_duration, parse_rfc3339
from shiptrackd.wire import events as ev
from shiptrackd.wire.names import STATUS_NAMES

from .events import ConsoleEvent, RawEvent

# Levels map onto theme variables, so dark and light themes both read well; the glyph and
# the word carry the meaning on their own under NO_COLOR.
LEVEL_STYLE = {
    "ok": "$success",
    "healthy": "$success",
    "passing": "$success",
    "resolved": "$success",
    "sent": "$success",
    "delivered": "$success",
    "warning": "$warning",
    "warn": "$warning",
    "pending": "$warning",
    "partial": "$warning",
    "interrupted": "$warning",
    "running": "$accent",
    "critical": "bold $error",
    "error": "$error",
    "failed": "bold $error",
    "firing": "bold $error",
    "aborted": "$error",
    "unknown": "$text-muted",
    "info": "$text-muted",
}
LEVEL_GLYPH = {"ok": "✔", "info": "i", "warning": "▲", "critical": "✖", "unknown": "?"}
LEVEL_RANK = {"ok": 0, "info": 0, "unknown": 1, "warning": 2, "critical": 3}

STATUS_STYLE = {"DE": "$success", "EX": "$error", "AT": "$warning", "IT": "$accent", "NY": "$text-muted"}


def parse_at(value: Any) -> datetime | None:
    """An RFC 3339 time (text or datetime) as an aware UTC datetime; None for nothing or anything unreadable."""
    if value is None or value == "":
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    """A short duration in the project's one grammar (units.format_duration), whole seconds, two units: 3m5s."""
    if seconds is None:
        return "—"
    return format_duration(int(abs(seconds)), parts=2)


def ago(at: Any, now: datetime) -> str:
    """'3m05s ago', 'in 12s', or '—' when there is no time."""
    when = parse_at(at)
    if when is None:
        return "—"
    delta = (now - when).total_seconds()
    if -1 < delta < 1:
        return "now"
    return f"{duration(delta)} ago" if delta > 0 else f"in {duration(-delta)}"


def countdown(at: Any, now: datetime) -> str:
    """Time left until *at*: 'in 4m10s', 'due' once passed, '—' when unknown."""
    when = parse_at(at)
    if when is None:
        return "—"
    left = (when - now).total_seconds()
    return "due" if left < 1 else f"in {duration(left)}"


def clock_time(at: Any) -> str:
    """HH:MM:SS in UTC, for logs and timelines."""
    when = parse_at(at)
    return when.strftime("%H:%M:%S") if when else "—"


def date_time(at: Any) -> str:
    when = parse_at(at)
    return when.strftime("%Y-%m-%d %H:%M") if when else "—"


def fit(text: Any, width: int) -> str:
    """*text* cut or padded to exactly *width* cells, with an ellipsis when cut."""
    s = "" if text is None else str(text)
    s = s.replace("\n", " ")
    if width <= 0:
        return ""
    if len(s) > width:
        return s[: width - 1] + "…" if width > 1 else s[:width]
    return s.ljust(width)


def level_of(value: Any) -> str:
    """A level word from whatever a report says (ok/warning/critical/info/unknown)."""
    text = str(value or "unknown").lower()
    if text in ("info", "information", "notice"):
        return "info"
    if text in ("ok", "healthy", "passing", "pass", "green", "resolved"):  # resolved: an alert's all-clear
        return "ok"
    if text in ("warning", "warn", "degraded", "yellow"):
        return "warning"
    if text in ("critical", "crit", "error", "failed", "fail", "red"):
        return "critical"
    return "unknown"


def styled(text: str, key: str | None) -> Content:
    """*text* in the style for *key* (a level, outcome or delivery state), plain if none fits."""
    style = LEVEL_STYLE.get((key or "").lower(), "")
    return Content.styled(text, style) if style else Content(text)


def level_badge(level: str, width: int = 10) -> Content:
    word = level_of(level)
    return styled(fit(f"{LEVEL_GLYPH.get(word, '?')} {word}", width), word)


def outcome_word(outcome: Any) -> str:
    text = str(outcome or "").strip()
    return text.split(":")[0].split(" ")[0] if text else ""


def number(n: Any) -> str:
    if isinstance(n, bool) or not isinstance(n, int | float):
        return "—"
    if isinstance(n, int) or abs(n) >= 100:
        return f"{n:,.0f}"
    return f"{n:,.1f}"


def ms(seconds: Any) -> str:
    """A latency to the millisecond: 0.0842 -> 84ms."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return "—"
    return format_duration(round(seconds, 3), parts=2)


def status_label(code: Any) -> str:
    if not code:
        return "new"
    return STATUS_NAMES.get(str(code), str(code))


def status_content(code: Any, width: int) -> Content:
    label = fit(f"{code or '··'} {status_label(code)}", width)
    return Content.styled(label, STATUS_STYLE.get(str(code), "")) if code in STATUS_STYLE else Content(label)


def describe_event(event: ConsoleEvent) -> str:
    """One line saying what an event means, for the event log."""
    match event:
        case ev.SyncStartedEvent():
            return f"run #{event.run_id} started ({event.trigger})"
        case ev.SyncProgressEvent():
            return (
                f"run #{event.run_id}: {event.done}/{event.selected} done,"
                f" {event.updated} updated, {event.failed} failed"
            )
        case ev.SyncFinished():
            run = event.run
            text = f"run #{run.id} {run.outcome}"
            if run.trigger is not None:
                text += f": {run.selected} selected, {run.updated} updated, {run.failed} failed"
            return f"{text} ({run.stop_reason})" if run.stop_reason else text
        case ev.ShipmentStatusChanged():
            text = f"{event.id}: {event.old or 'new'} → {event.new}"
            if event.via == "push":
                text += " · by push"
            if event.origin:  # another cluster member wrote it (host:pid:random): say which
                text += f" · on {':'.join(event.origin.split(':')[:2])}"
            return text
        case ev.LoopChanged():
            loop = event.loop
            state = "paused" if loop.paused else "running" if loop.running else "idle"
            return f"loop {loop.name} {state}; {loop.last_outcome}".rstrip("; ")
        case ev.ShipmentsAddedEvent():
            return f"{event.count} shipment(s) added"
        case ev.ShipmentsRemoved():
            return f"{event.id} removed"
        case ev.ConfigReloaded():
            return f"configuration reloaded; changed: {', '.join(event.changed) or 'nothing'}"
        case ev.HealthReported():
            return f"health {level_of(event.report.level)}"
        case ev.Gap():
            return f"missed events after #{event.seq}; state reloaded"
        case ev.ProviderAuthFailed():
            return f"the API rejected the key: {event.message}"
        case ev.AlertQueued():
            checks = ",".join(c.check for c in event.checks) or "test"
            return f"notification #{event.notification_id}: {event.severity} {event.kind} {checks}"
        case ev.AlertDelivered():
            return f"notification #{event.notification_id} {event.status} via {event.channel}"
        case RawEvent():
            return ", ".join(f"{k}={v}" for k, v in event.data.items())[:200]
    return ""
