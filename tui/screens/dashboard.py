"""
The dashboard: daemon, loops, the running sync, health, recent runs, alerts and
API figures, all live from the event stream and redrawn in place.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll

from ..state import ALERTS, API, DAEMON, EVENTS, HEALTH, LOOPS, RUNS, SYNC
from ..widgets.panels import (
    AlertsPanel,
    ApiPanel,
    DaemonBar,
    HealthPanel,
    LoopsPanel,
    RecentEventsPanel,
    RunsPanel,
    SyncPanel,
)
from .base import TICK, ConsoleScreen


class DashboardScreen(ConsoleScreen):
    TITLE = "Dashboard"

    def compose_body(self) -> ComposeResult:
        yield DaemonBar("", id="daemon-bar")
        with VerticalScroll(id="dashboard-scroll"):
            with Horizontal(id="row-top", classes="row"):
                yield LoopsPanel("Loops", id="loops", classes="panel")
                yield SyncPanel(id="sync", classes="panel")
            with Horizontal(id="row-mid", classes="row"):
                yield HealthPanel("Health", id="health", classes="panel")
                yield ApiPanel("Tracking API", id="api", classes="panel")
            with Horizontal(id="row-bottom", classes="row"):
                yield RunsPanel("Recent runs", id="runs", classes="panel")
                yield AlertsPanel("Recent alerts", id="alerts", classes="panel")
            yield RecentEventsPanel("Latest events", id="recent-events", classes="panel")

    def on_state(self, topics: set[str]) -> None:
        # A tick only moves times within a line; new data may change a panel's height.
        for panel, panel_topics in (
            (DaemonBar, {DAEMON, "connection"}),
            (LoopsPanel, {LOOPS, "connection"}),
            (RunsPanel, {RUNS}),
            (HealthPanel, {HEALTH}),
            (AlertsPanel, {ALERTS}),
            (ApiPanel, {API}),
        ):
            if topics & panel_topics:
                self.query_one(panel).refresh(layout=True)
            elif TICK in topics and panel is not ApiPanel:
                self.query_one(panel).refresh()
        if topics & {SYNC, RUNS, TICK}:
            self.query_one(SyncPanel).refresh_state()
        if EVENTS in topics:
            self.query_one(RecentEventsPanel).refresh()
