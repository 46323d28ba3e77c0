"""
ConsoleScreen: what every full screen shares: the connection banner on top, the
footer of key bindings below, and a subscription to the console's state topics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker

from ..events import ConsoleEvent
from ..state import CONNECTION
from ..widgets.banner import ConnectionBanner

if TYPE_CHECKING:
    from ..app import ShiptrackApp

TICK = "tick"  # the once-a-second topic: countdowns and uptime move, nothing is fetched


class ConsoleScreen(Screen[None]):
    @property
    def console(self) -> ShiptrackApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield ConnectionBanner(id="banner")
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.console.state_changed.subscribe(self, self._on_topics)
        self.console.event_arrived.subscribe(self, self._on_events)

    def _on_topics(self, topics: set[str]) -> None:
        if CONNECTION in topics or TICK in topics:
            self.query_one(ConnectionBanner).refresh_state()
        self.on_state(topics)

    def on_state(self, topics: set[str]) -> None:
        """Redraw what *topics* cover; subclasses override."""

    def _on_events(self, events: list[ConsoleEvent]) -> None:
        for event in events:
            self.on_daemon_event(event)

    def on_daemon_event(self, event: ConsoleEvent) -> None:
        """One event from the stream (after the state folded it in); subclasses override."""

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        # Worker messages do not bubble: hand them to the app's one error handler.
        self.console.worker_state_changed(event.worker, event.state)
