"""
The event log: the daemon's event stream as it arrives, one line per event.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import RichLog, Static

from ..events import ConsoleEvent, event_at, event_type
from ..format import clock_time, describe_event
from .base import ConsoleScreen

KIND_STYLE = {"sync.finished": "bold", "provider.auth_failed": "bold reverse", "gap": "reverse"}


def event_line(event: ConsoleEvent) -> Text:
    kind = event_type(event)
    seq = "?" if event.seq is None else event.seq
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{clock_time(event_at(event))} ", style="dim")
    line.append(f"#{seq:<6} ", style="dim")
    line.append(f"{kind:<24}", style=KIND_STYLE.get(kind, "bold" if kind.startswith(("alert", "health")) else ""))
    line.append(describe_event(event))
    return line


class EventsScreen(ConsoleScreen):
    TITLE = "Events"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "clear", "Clear"),
        Binding("end", "follow", "Follow", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(" live events from the daemon, newest last (heartbeats hidden)", id="events-title")
        yield RichLog(id="event-log", max_lines=2000, wrap=False, auto_scroll=True)

    def on_mount(self) -> None:
        super().on_mount()
        log = self.query_one(RichLog)
        for event in self.console.state.events:
            log.write(event_line(event))
        log.focus()

    def on_daemon_event(self, event: ConsoleEvent) -> None:
        self.query_one(RichLog).write(event_line(event))  # heartbeats never reach the screens

    def action_clear(self) -> None:
        self.query_one(RichLog).clear()

    def action_follow(self) -> None:
        self.query_one(RichLog).scroll_end(animate=False)
