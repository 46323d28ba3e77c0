"""
The console's messages: past-tense facts from the link to the daemon, and intents
that widgets post instead of calling the client themselves (STYLE.md §2, §6).
"""

from __future__ import annotations

from textual.message import Message

from .events import ConsoleEvent
from .state import Snapshot

# --- facts: what the event worker learned ---------------------------------------------


class SnapshotLoaded(Message):
    """A fresh picture of the daemon (status, runs, stats, health, alerts) arrived."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class EventReceived(Message):
    """One event from the daemon's stream, decoded (a RawEvent if this console cannot read it)."""

    def __init__(self, event: ConsoleEvent) -> None:
        super().__init__()
        self.event = event


class DaemonDisconnected(Message):
    """The daemon stopped answering; the console keeps its last state and retries in `retry_in_s`."""

    def __init__(self, reason: str, retry_in_s: float) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in_s = retry_in_s


class DaemonReconnected(Message):
    """The daemon answers again after a disconnection."""


# --- intents: what an operator asked for ------------------------------------------------


class SyncRequested(Message):
    """Start a sync: regular (due only), forced (every active shipment) or of the named shipments."""

    def __init__(self, *, force: bool = False, shipments: list[str] | None = None) -> None:
        super().__init__()
        self.force = force
        self.shipments = shipments


class HealthCheckRequested(Message):
    """Run the health checks now."""


class TestAlertRequested(Message):
    """Send a test notification to every alert channel."""


class LoopToggleRequested(Message):
    """Pause a running loop or resume a paused one (`action` is 'pause' or 'resume')."""

    def __init__(self, name: str, action: str) -> None:
        super().__init__()
        self.name = name
        self.action = action


class AddShipmentRequested(Message):
    """Start tracking a shipment."""

    def __init__(self, record: dict[str, str]) -> None:
        super().__init__()
        self.record = record
