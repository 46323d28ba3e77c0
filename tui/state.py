"""
What the console knows about the daemon: the last snapshot, folded with every
event since. Plain Python (no widgets): apply a snapshot or an event, get back the
topics that changed, and the screens redraw only those.

Everything here is a wire type (shiptrackd.wire), decoded once where it arrives
(tui/daemon.py); an event the console cannot decode arrives as a RawEvent (events.py),
is kept for the log and changes nothing else.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from shiptrackd.wire import events as ev
from shiptrackd.wire.alerting import Notification
from shiptrackd.wire.answers import ClusterMember, HealthReport, LoopInfo, Run, Status, SyncProgress
from shiptrackd.wire.outbound import EndpointInfo
from shiptrackd.wire.push import WebhooksStatus
from shiptrackd.wire.stats import Stats

from .events import ConsoleEvent
from .format import level_of

MAX_RUNS = 20
MAX_ALERTS = 20
MAX_EVENTS = 1000

# Topic names published to the screens.
DAEMON, LOOPS, SYNC, RUNS, HEALTH, ALERTS, API, SHIPMENTS, EVENTS, CONNECTION = (
    "daemon",
    "loops",
    "sync",
    "runs",
    "health",
    "alerts",
    "api",
    "shipments",
    "events",
    "connection",
)
PUSH, OUTBOUND, CLUSTER = "push", "outbound", "cluster"


@dataclass
class Snapshot:
    """One fresh picture of the daemon; the optional parts are None when their call failed."""

    status: Status
    runs: list[Run]
    stats: Stats
    health: HealthReport | None
    alerts: list[Notification] | None
    webhooks: WebhooksStatus | None = None  # the push channel (GET /v1/webhooks)
    endpoints: list[EndpointInfo] | None = None  # the application's webhook endpoints (GET /v1/endpoints)


@dataclass
class ConsoleState:
    connected: bool = False
    ever_connected: bool = False
    disconnect_reason: str = ""
    retry_at: datetime | None = None
    status: Status | None = None
    status_at: datetime | None = None  # console clock when `status` was fetched (uptime ticks from it)
    loops: dict[str, LoopInfo] = field(default_factory=dict)
    sync: SyncProgress | None = None  # the running sync's progress
    sync_rate: float | None = None  # shipments per second in the running sync
    runs: list[Run] = field(default_factory=list)  # newest first
    stats: Stats | None = None
    health: HealthReport | None = None  # the last report, None before the first
    alerts: list[Notification] | None = None  # the alert log, newest first
    webhooks: WebhooksStatus | None = None  # push health, None before the first answer
    endpoints: list[EndpointInfo] | None = None  # outbound endpoints, None before the first answer
    added_since_status: int = 0  # shipments.added counts since `status` was fetched
    events: deque[ConsoleEvent] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    last_seq: int | None = None
    events_seen: int = 0

    # --- the snapshot --------------------------------------------------------------

    def apply_snapshot(self, snap: Snapshot, now: datetime) -> set[str]:
        """Replace what a snapshot covers; a failed health or alerts call keeps the last one."""
        self.status, self.status_at, self.added_since_status = snap.status, now, 0
        self.loops = {loop.name: loop for loop in snap.status.loops}
        self._set_sync(snap.status.sync, now)
        self.runs = snap.runs[:MAX_RUNS]
        self.stats = snap.stats
        changed = {DAEMON, LOOPS, SYNC, RUNS, API, SHIPMENTS, CLUSTER}
        if snap.webhooks is not None:
            self.webhooks = snap.webhooks
            changed.add(PUSH)
        if snap.endpoints is not None:
            self.endpoints = snap.endpoints
            changed.add(OUTBOUND)
        if snap.health is not None:
            self.health = snap.health
            changed.add(HEALTH)
        if snap.alerts is not None:
            self.alerts = snap.alerts[:MAX_ALERTS]
            changed.add(ALERTS)
        return changed

    # --- events ----------------------------------------------------------------------

    def apply_event(self, event: ConsoleEvent, now: datetime) -> set[str]:
        """Fold one event in; returns the topics to redraw."""
        if event.seq is not None:
            self.last_seq = event.seq
        if isinstance(event, ev.Heartbeat):
            return set()
        self.events.append(event)
        self.events_seen += 1
        return {EVENTS} | self._fold(event, now)

    def _fold(self, event: ConsoleEvent, now: datetime) -> set[str]:
        match event:
            case ev.SyncStartedEvent():
                started = SyncProgress(
                    run_id=event.run_id,
                    trigger=event.trigger,
                    started_at=event.at,
                    planned=event.planned or 0,
                    **dict.fromkeys(COUNTERS, 0),
                    unknown_ids=[],
                    stop_reason="",
                )
                self._set_sync(started, event.at)
                return {SYNC}
            case ev.SyncProgressEvent():
                fields = {name: getattr(event, name) for name in SyncProgress.__struct_fields__}
                self._set_sync(SyncProgress(**fields), event.at)
                return {SYNC}
            case ev.SyncFinished():
                self._set_sync(None, event.at)
                run = finished_run(event.run)
                if run is not None:
                    self.runs = [run, *[r for r in self.runs if r.id != run.id]][:MAX_RUNS]
                return {SYNC, RUNS}
            case ev.LoopChanged():
                self.loops[event.loop.name] = event.loop
                return {LOOPS}
            case ev.ShipmentsAddedEvent():
                self.added_since_status += event.count
                return {DAEMON, SHIPMENTS}
            case ev.ShipmentsRemoved() | ev.ShipmentStatusChanged():
                return {SHIPMENTS}
            case ev.HealthReported():
                self.health = event.report
                return {HEALTH}
            case ev.AlertQueued() | ev.AlertDelivered():  # say that the log changed, not how: the app re-reads it
                return {ALERTS}
        return set()

    def _set_sync(self, progress: SyncProgress | None, at: datetime) -> None:
        self.sync, self.sync_rate = progress, None
        if progress is not None:
            elapsed = (at - progress.started_at).total_seconds()
            self.sync_rate = progress.done / elapsed if elapsed > 0.5 else None

    # --- connection -----------------------------------------------------------------

    def disconnected(self, reason: str, retry_at: datetime) -> None:
        self.connected = False
        self.disconnect_reason = reason
        self.retry_at = retry_at

    def reconnected(self) -> None:
        self.connected = True
        self.ever_connected = True
        self.disconnect_reason = ""
        self.retry_at = None

    # --- derived views -----------------------------------------------------------

    def uptime_s(self, now: datetime) -> float | None:
        if self.status is None or self.status_at is None:
            return None
        if not self.connected:
            return self.status.uptime_s
        return self.status.uptime_s + max(0.0, (now - self.status_at).total_seconds())

    def store_counts(self) -> tuple[int, int, int] | None:
        """Shipments, active, due now: the status's figures plus what shipments.added events said since."""
        if self.status is None:
            return None
        store, added = self.status.store, self.added_since_status
        return store.shipments + added, store.active + added, store.due_now + added

    def cluster_members(self) -> list[ClusterMember]:
        """The store's cluster worth showing: several members, stale ones, or a shared (PostgreSQL) store.

        A lone daemon on SQLite is its own one member; the daemon bar already says all there is.
        """
        status = self.status
        cluster = status.cluster if status is not None else None
        if cluster is None or not cluster.members:
            return []
        if len(cluster.members) > 1 or cluster.stale or status is not None and status.store.backend != "sqlite":
            return cluster.members
        return []

    def health_level(self) -> str:
        return level_of(self.health.level) if self.health is not None else "unknown"


COUNTERS = ("done", "selected", "updated", "unchanged", "failed", "skipped", "api_calls", "retries", "rate_limited")


def finished_run(run: ev.FinishedRun) -> Run | None:
    """The run record a sync.finished event carries, or None when it has only the outcome (it could not be stored)."""
    if run.trigger is None or run.started_at is None:
        return None
    counts = {name: getattr(run, name) or 0 for name in COUNTERS if name in Run.__struct_fields__}
    return Run(
        id=run.id,
        trigger=run.trigger,
        started_at=run.started_at,
        finished_at=run.finished_at,
        outcome=run.outcome,
        stop_reason=run.stop_reason,
        owner=run.owner or "",
        **counts,
    )
