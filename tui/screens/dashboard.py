"""
The dashboard: daemon, loops, the running sync, health, API figures, pushes in, deliveries
out, the cluster (when there is one), recent runs and alerts, all live from the event stream
and the snapshot refresh, redrawn in place.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll

from ..state import ALERTS, API, CLUSTER, DAEMON, EVENTS, HEALTH, LOOPS, OUTBOUND, PUSH, RUNS, SYNC
from ..widgets.cluster_panel import ClusterPanel
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
from ..widgets.webhook_panels import DeliveriesPanel, PushPanel
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
            with Horizontal(id="row-hooks", classes="row"):
                yield PushPanel("Pushes in", id="push", classes="panel")
                yield DeliveriesPanel("Deliveries out", id="deliveries", classes="panel")
            yield ClusterPanel("Cluster", id="cluster", classes="panel")
            with Horizontal(id="row-bottom", classes="row"):
                yield RunsPanel("Recent runs", id="runs", classes="panel")
                yield AlertsPanel("Recent alerts", id="alerts", classes="panel")
            yield RecentEventsPanel("Latest events", id="recent-events", classes="panel")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(ClusterPanel).display = bool(self.console.state.cluster_members())

    def on_state(self, topics: set[str]) -> None:
        # A tick only moves times within a line; new data may change a panel's height.
        for panel, panel_topics in (
            (DaemonBar, {DAEMON, "connection"}),
            (LoopsPanel, {LOOPS, "connection"}),
            (RunsPanel, {RUNS}),
            (HealthPanel, {HEALTH}),
            (AlertsPanel, {ALERTS}),
            (ApiPanel, {API}),
            (PushPanel, {PUSH, API}),
            (DeliveriesPanel, {OUTBOUND}),
            (ClusterPanel, {CLUSTER}),
        ):
            if topics & panel_topics:
                self.query_one(panel).refresh(layout=True)
            elif TICK in topics and panel is not ApiPanel:
                self.query_one(panel).refresh()
        if CLUSTER in topics:
            self.query_one(ClusterPanel).display = bool(self.console.state.cluster_members())
        if topics & {SYNC, RUNS, TICK}:
            self.query_one(SyncPanel).refresh_state()
        if EVENTS in topics:
            self.query_one(RecentEventsPanel).refresh()
