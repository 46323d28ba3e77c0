"""
DaemonLink: the console's live link to the daemon, the base of ShiptrackApp (app.py).

One long-lived worker follows the daemon's event stream: it loads a snapshot, posts one
message per event, and on a drop says so, keeps the last state on screen and reconnects
with back-off, resuming with `since=<last seq>`. Events are folded into ConsoleState at
once and published to the screens as topics, batched every `update_s`; figures no event
carries are re-read by a refresh re-armed after each one finishes (STYLE.md §6).
The operator's actions, keys and screens are app.py's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from textual import work
from textual.app import App
from textual.signal import Signal
from textual.timer import Timer
from textual.worker import get_current_worker

from shiptrackd.api.client import ApiClient
from shiptrackd.errors import DaemonUnavailableError, ShiptrackError
from shiptrackd.wire import events as ev

from . import daemon
from .events import ConsoleEvent
from .messages import DaemonDisconnected, DaemonReconnected, EventReceived, SnapshotLoaded
from .screens.base import TICK
from .state import ALERTS, CONNECTION, ConsoleState

ClientFactory = Callable[[], ApiClient]
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class DaemonLink(App[int]):
    """An App that keeps `state` in step with the daemon and tells the screens what changed."""

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        clock: Clock = system_clock,
        socket_label: str = "",
        follow: bool = True,
        backoff_s: tuple[float, float] = (0.5, 10.0),
        heartbeat_s: float = 5.0,
        refresh_s: float = 15.0,
        update_s: float = 0.1,
    ) -> None:
        super().__init__()
        self.client_factory = client_factory
        self.clock = clock
        self.socket_label = socket_label
        self.follow = follow
        self.backoff_s = backoff_s
        self.heartbeat_s = heartbeat_s
        self.refresh_s = refresh_s
        self.update_s = update_s
        self.client: ApiClient | None = None
        self.state = ConsoleState()
        self.state_changed: Signal[set[str]] = Signal(self, "state-changed")
        self.event_arrived: Signal[list[ConsoleEvent]] = Signal(self, "event-arrived")
        self._pending_topics: set[str] = set()
        self._pending_events: list[ConsoleEvent] = []
        self._publish_timer: Timer | None = None
        self._refresh_timer: Timer | None = None
        self._alerts_timer: Timer | None = None

    # --- lifecycle -------------------------------------------------------------------

    @property
    def api(self) -> ApiClient:
        """The client, made on mount (on the app's own event loop)."""
        if self.client is None:
            raise RuntimeError("the console is not mounted yet")
        return self.client

    def on_mount(self) -> None:
        self.client = self.client_factory()
        if not self.socket_label:
            self.socket_label = str(self.client.socket_path)
        self.set_interval(1, self._tick)
        if self.follow:
            self.follow_events()

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def _tick(self) -> None:
        """Countdowns and uptime move from what we already know: no daemon call per tick."""
        self.state_changed.publish({TICK})

    def publish_topics(self, topics: set[str]) -> None:
        """Tell the screens which parts of `state` changed (they redraw only those)."""
        if topics:
            self.state_changed.publish(topics)

    # --- the event stream ---------------------------------------------------------------

    @work(exclusive=True, group="events", exit_on_error=False, name="events")
    async def follow_events(self) -> None:
        """Connect, load a snapshot, follow events; on a drop, report it and retry with back-off, forever."""
        delay = self.backoff_s[0]
        failed_before = False
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                snapshot = await daemon.load_snapshot(self.api)
                self.post_message(SnapshotLoaded(snapshot))
                if failed_before:
                    self.post_message(DaemonReconnected())
                failed_before = False
                delay = self.backoff_s[0]
                async for event in self._events():
                    self.post_message(EventReceived(event))
                reason = "the daemon closed the event stream (stopping or restarting)"
            except ShiptrackError as exc:
                reason = exc.message
            except Exception as exc:  # a dropped connection or an unreadable message must never end the console
                reason = f"{type(exc).__name__}: {exc}"
                self.log.warning(f"event stream failed: {reason}")
            failed_before = True
            wait = delay * random.uniform(0.8, 1.2)
            self.post_message(DaemonDisconnected(reason, wait))
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.backoff_s[1])

    async def _events(self) -> AsyncIterator[ConsoleEvent]:
        """The daemon's events from `last_seq` on; a silence longer than three heartbeats counts as a drop."""
        stream = daemon.events(self.api, since=self.state.last_seq, heartbeat_s=self.heartbeat_s)
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                    # races with an arriving event, and this worker would then never stop.
                    async with asyncio.timeout(self.heartbeat_s * 3):
                        event = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise DaemonUnavailableError(
                        f"shiptrackd at {self.socket_label} stopped answering (no heartbeat)"
                    ) from None
                yield event
        finally:
            await stream.aclose()

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        topics = self.state.apply_snapshot(message.snapshot, self.clock())
        if not self.state.connected:
            first = not self.state.ever_connected
            self.state.reconnected()
            topics.add(CONNECTION)
            if first:
                self.log.info("connected")
        self.publish_topics(topics)
        self._arm_refresh()

    def on_event_received(self, message: EventReceived) -> None:
        event = message.event
        topics = self.state.apply_event(event, self.clock())
        match event:
            case ev.Gap():
                self._refresh_now()
            case ev.ConfigReloaded():
                self.notify(f"configuration reloaded; changed: {', '.join(event.changed) or 'nothing'}")
            case ev.AlertQueued() | ev.AlertDelivered() | ev.SilenceAdded() | ev.SilenceRemovedEvent():
                self._refresh_alerts_soon()
            case ev.ProviderAuthFailed():
                self.notify(event.message or "the API rejected the key", severity="error", timeout=10)
        # A busy sync streams hundreds of events a second: fold each in at once, but redraw at
        # most every UPDATE_S (screens get the topics and the new events in one batch).
        self._pending_topics |= topics
        if not isinstance(event, ev.Heartbeat):
            self._pending_events.append(event)
        if self._publish_timer is None and (self._pending_topics or self._pending_events):
            self._publish_timer = self.set_timer(self.update_s, self._publish_pending)

    @property
    def redraw_pending(self) -> bool:
        """Events are folded in but not yet published to the screens (they are batched every update_s)."""
        return self._publish_timer is not None

    def _publish_pending(self) -> None:
        # Not `_flush`: Textual's App._flush(stderr=...) is called on every flush of captured stdout/stderr.
        self._publish_timer = None
        topics, events = self._pending_topics, self._pending_events
        self._pending_topics, self._pending_events = set(), []
        self.publish_topics(topics)
        if events:
            self.event_arrived.publish(events)

    def on_daemon_disconnected(self, message: DaemonDisconnected) -> None:
        self.state.disconnected(message.reason, self.clock() + timedelta(seconds=message.retry_in_s))
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self.publish_topics({CONNECTION})

    def on_daemon_reconnected(self, message: DaemonReconnected) -> None:
        self.notify("reconnected to shiptrackd", title="Daemon")

    # --- periodic refresh: figures no event carries ------------------------------------

    def _arm_refresh(self) -> None:
        """Re-armed after each refresh finishes, so refreshes never overlap."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
        self._refresh_timer = self.set_timer(self.refresh_s, self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh_timer = None
        self.refresh_snapshot()

    @work(exclusive=True, group="refresh", exit_on_error=False, name="refresh")
    async def refresh_snapshot(self) -> None:
        try:
            snapshot = await daemon.load_snapshot(self.api)
        except ShiptrackError:
            # A dead daemon is the event worker's to report (its reconnect re-arms us); any other
            # failure just waits for the next round.
            if self.state.connected:
                self._arm_refresh()
            return
        self.post_message(SnapshotLoaded(snapshot))  # its handler re-arms the timer

    def _refresh_alerts_soon(self) -> None:
        """Alert events say something changed, not what: re-read the log once things settle."""
        if self._alerts_timer is None:
            self._alerts_timer = self.set_timer(0.5, self._refresh_alerts_now)

    def _refresh_alerts_now(self) -> None:
        self._alerts_timer = None
        self.refresh_alerts()

    @work(exclusive=True, group="alerts", exit_on_error=False, name="alerts")
    async def refresh_alerts(self) -> None:
        try:
            self.state.alerts = (await self.api.alerts(daemon.RECENT_ALERTS)).notifications
        except ShiptrackError:
            return
        self.publish_topics({ALERTS})
