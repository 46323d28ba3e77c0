"""
What the console knows about the daemon: the last snapshot, folded with every
event since. Plain Python (no widgets): apply a snapshot or an event, get back the
topics that changed, and the screens redraw only those.

Nothing here trusts the daemon's messages: an event of an unknown type is kept for
the log and changes nothing else; a malformed one is dropped with a note.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .format import level_of, parse_at

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


@dataclass
class HealthCheck:
    name: str
    level: str
    message: str
    value: Any = None


@dataclass
class ConsoleState:
    connected: bool = False
    ever_connected: bool = False
    disconnect_reason: str = ""
    retry_at: datetime | None = None
    status: dict[str, Any] = field(default_factory=dict)
    status_at: datetime | None = None  # console clock when `status` was fetched (uptime ticks from it)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync: dict[str, Any] | None = None  # the running sync's progress
    sync_rate: float | None = None  # shipments per second in the running sync
    runs: list[dict[str, Any]] = field(default_factory=list)  # newest first
    stats: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] | None = None  # the last report (GET /v1/health), None before the first
    alerts: list[dict[str, Any]] | None = None  # the alert log's notifications, newest first
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    last_seq: int | None = None
    events_seen: int = 0

    # --- the snapshot --------------------------------------------------------------

    def apply_snapshot(self, snap: dict[str, Any], now: datetime) -> set[str]:
        """Replace what a snapshot covers; keys it lacks keep their last value."""
        changed: set[str] = set()
        if isinstance(snap.get("status"), dict):
            self.status = snap["status"]
            self.status_at = now
            loops = self.status.get("loops")
            if isinstance(loops, list):
                self.loops = {str(lp.get("name")): lp for lp in loops if isinstance(lp, dict)}
            sync = self.status.get("sync")
            if isinstance(sync, dict):
                self._set_sync(sync, now)
            else:
                self.sync, self.sync_rate = None, None
            changed |= {DAEMON, LOOPS, SYNC}
        if isinstance(snap.get("runs"), list):
            self.runs = [r for r in snap["runs"] if isinstance(r, dict)][:MAX_RUNS]
            changed.add(RUNS)
        if isinstance(snap.get("stats"), dict):
            self.stats = snap["stats"]
            changed |= {API, SHIPMENTS}
        if isinstance(snap.get("health"), dict):
            self.health = snap["health"]
            changed.add(HEALTH)
        if isinstance(snap.get("alerts"), dict):
            self.alerts = notifications_of(snap["alerts"])
            changed.add(ALERTS)
        return changed

    # --- events ----------------------------------------------------------------------

    def apply_event(self, event: dict[str, Any], now: datetime) -> set[str]:
        """Fold one event in; returns the topics to redraw. Never raises on odd input."""
        if not isinstance(event, dict):
            return set()
        seq = event.get("seq")
        if isinstance(seq, int):
            self.last_seq = seq
        kind = event.get("type")
        if kind == "heartbeat":
            return set()
        self.events.append(event)
        self.events_seen += 1
        try:
            return {EVENTS} | self._fold(str(kind), event, now)
        except (KeyError, TypeError, ValueError, AttributeError):
            return {EVENTS}

    def _fold(self, kind: str, event: dict[str, Any], now: datetime) -> set[str]:
        if kind == "sync.started":
            self.sync = {
                "run_id": event["run_id"],
                "trigger": event.get("trigger", ""),
                "started_at": event.get("at"),
                "done": 0,
                "selected": 0,
                "planned": event.get("planned", 0),
            }
            self.sync_rate = None
            return {SYNC}
        if kind == "sync.progress":
            self._set_sync({k: v for k, v in event.items() if k not in ("seq", "type")}, parse_at(event.get("at")))
            return {SYNC}
        if kind == "sync.finished":
            run = event.get("run") or {}
            self.sync, self.sync_rate = None, None
            if isinstance(run, dict) and "id" in run:
                self.runs = [run, *[r for r in self.runs if r.get("id") != run["id"]]][:MAX_RUNS]
            return {SYNC, RUNS}
        if kind == "loop.changed":
            loop = event["loop"]
            self.loops[str(loop["name"])] = loop
            return {LOOPS}
        if kind == "shipments.added":
            store = self.status.setdefault("store", {})
            for key in ("shipments", "active", "due_now"):
                if isinstance(store.get(key), int):
                    store[key] += int(event.get("count", 0))
            return {DAEMON, SHIPMENTS}
        if kind == "shipments.removed":
            return {SHIPMENTS}
        if kind == "shipment.status_changed":
            return {SHIPMENTS}
        if kind == "health.report":
            report = event["report"]
            if isinstance(report, dict):
                self.health = report
            return {HEALTH}
        if kind.startswith("alert."):  # says that the log changed, not how: the app re-reads it
            return {ALERTS}
        return set()

    def _set_sync(self, progress: dict[str, Any], at: datetime | None) -> None:
        self.sync = progress
        started = parse_at(progress.get("started_at"))
        done = progress.get("done")
        if started is not None and at is not None and isinstance(done, int):
            elapsed = (at - started).total_seconds()
            self.sync_rate = done / elapsed if elapsed > 0.5 else None

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
        base = self.status.get("uptime_s")
        if not isinstance(base, int | float) or self.status_at is None:
            return None
        if not self.connected:
            return float(base)
        return float(base) + max(0.0, (now - self.status_at).total_seconds())

    def health_checks(self) -> list[HealthCheck]:
        return health_checks(self.health) if self.health is not None else []

    def health_level(self) -> str:
        return level_of(self.health.get("level")) if self.health is not None else "unknown"


def health_checks(report: dict[str, Any]) -> list[HealthCheck]:
    """The checks of a health report (GET /v1/health, event health.report), in the daemon's order."""
    return [
        HealthCheck(str(c.get("name")), level_of(c.get("level")), str(c.get("message") or ""), c.get("value"))
        for c in report.get("checks") or []
        if isinstance(c, dict)
    ]


def notifications_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The notifications of GET /v1/alerts ({"notifications": [...], "states": ..., "channels": ...}), newest first."""
    return [n for n in answer.get("notifications") or [] if isinstance(n, dict)][:MAX_ALERTS]
