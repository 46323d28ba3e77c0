"""
The events the console follows: the wire's decoded events, and RawEvent for a line it
cannot decode (a newer daemon's event type, or a malformed one), kept for the log only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shiptrackd.wire import events as ev


@dataclass
class RawEvent:
    """An event this console cannot decode: logged, never folded into the state."""

    type: str
    seq: int | None = None
    at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


ConsoleEvent = ev.AnyEvent | RawEvent


def event_type(event: ConsoleEvent) -> str:
    """The event's `type` on the wire."""
    if isinstance(event, RawEvent):
        return event.type
    return str(event.__struct_config__.tag)


def event_at(event: ConsoleEvent) -> datetime | None:
    """When the daemon published it (a heartbeat carries no time)."""
    return None if isinstance(event, ev.Heartbeat) else event.at
