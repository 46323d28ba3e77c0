"""
shiptrack-tui: the operator console, live over the daemon's control socket.

One long-lived worker follows the daemon's event stream: it loads a snapshot,
posts one message per event, and on a drop says so, keeps the last state on screen
and reconnects with back-off, resuming with `since=<last seq>`. Widgets never call
the client: they post intents, and the app runs one short worker per action; one
Worker.StateChanged handler turns failures into notifications (STYLE.md §6).
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.signal import Signal
from textual.timer import Timer
from textual.worker import Worker, WorkerState, get_current_worker

from shiptrackd.api.client import ApiClient
from shiptrackd.errors import DaemonUnavailableError, ShiptrackError
from shiptrackd.paths import default_socket
from shiptrackd.wire import events as ev

from . import daemon
from .events import ConsoleEvent
from .format import number
from .messages import (
    AddShipmentRequested,
    DaemonDisconnected,
    DaemonReconnected,
    EventReceived,
    HealthCheckRequested,
    LoopToggleRequested,
    SnapshotLoaded,
    SyncRequested,
    TestAlertRequested,
)
from .screens.base import TICK
from .screens.dashboard import DashboardScreen
from .screens.events import EventsScreen
from .screens.modals import AddShipmentModal, ConfirmModal, HelpModal, LoopPickerModal
from .screens.shipments import ShipmentsScreen
from .state import ALERTS, CONNECTION, HEALTH, LOOPS, ConsoleState
from .themes import DARK, LIGHT

ClientFactory = Callable[[], ApiClient]
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class ShiptrackApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "shiptrack"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "dashboard": DashboardScreen,
        "shipments": ShipmentsScreen,
        "events": EventsScreen,
    }
    DEFAULT_MODE = "dashboard"
    # Textual declares it `ClassVar[...] | None`, which mypy reads as an instance variable.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('dashboard')", "Dashboard", show=False),
        Binding("2", "switch_mode('shipments')", "Shipments", show=False),
        Binding("3", "switch_mode('events')", "Events", show=False),
        Binding("r", "sync", "Sync"),
        Binding("f", "force_sync", "Force"),
        Binding("h", "health_check", "Health"),
        Binding("t", "test_alert", "Test alert"),
        Binding("p", "toggle_loop", "Loops"),
        Binding("a", "add_shipment", "Add"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("f2", "toggle_theme", "Theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

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
        page_size: int = 1000,
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
        self.page_size = page_size
        self.client: ApiClient | None = None
        self.state = ConsoleState()
        self.state_changed: Signal[set[str]] = Signal(self, "state-changed")
        self.event_arrived: Signal[list[ConsoleEvent]] = Signal(self, "event-arrived")
        self._pending_topics: set[str] = set()
        self._pending_events: list[ConsoleEvent] = []
        self._publish_timer: Timer | None = None
        self._refresh_timer: Timer | None = None
        self._alerts_timer: Timer | None = None
        self.register_theme(DARK)
        self.register_theme(LIGHT)
        self.theme = "shiptrack-dark"

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

    def _publish(self, topics: set[str]) -> None:
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
        self._publish(topics)
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
        self._publish(topics)
        if events:
            self.event_arrived.publish(events)

    def on_daemon_disconnected(self, message: DaemonDisconnected) -> None:
        self.state.disconnected(message.reason, self.clock() + timedelta(seconds=message.retry_in_s))
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self._publish({CONNECTION})

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
        self._publish({ALERTS})

    # --- actions: one short worker each --------------------------------------------------

    def start_action(self, name: str, work_fn: Callable[[], Awaitable[Any]]) -> Worker[Any]:
        return self.run_worker(work_fn(), name=name, group="actions", exit_on_error=False)

    @on(Worker.StateChanged)
    def _on_worker_state(self, event: Worker.StateChanged) -> None:
        self.worker_state_changed(event.worker, event.state)

    def worker_state_changed(self, worker: Worker[Any], state: WorkerState) -> None:
        """The one place a failed worker becomes a notification (never a traceback)."""
        if state != WorkerState.ERROR or worker.group in ("events", "refresh", "alerts"):
            return
        error = worker.error
        if isinstance(error, ShiptrackError):
            text = error.message
        else:
            text = f"{type(error).__name__}: {error}"
        self.notify(text, title=f"{worker.name or 'Action'} failed", severity="error", timeout=8)

    def confirm(self, title: str, body: str, then: Callable[[], None], *, confirm: str = "Yes") -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(ConfirmModal(title, body, confirm=confirm), answered)

    # sync -----------------------------------------------------------------------------

    def action_sync(self) -> None:
        self.post_message(SyncRequested())

    def action_force_sync(self) -> None:
        self.post_message(SyncRequested(force=True))

    @on(SyncRequested)
    def _sync_requested(self, message: SyncRequested) -> None:
        force, ids = message.force, message.shipments
        self.start_action("Plan sync", lambda: self._plan_and_confirm(force, ids))

    async def _plan_and_confirm(self, force: bool, ids: list[str] | None) -> None:
        """Ask the daemon what the sync would do (a dry run: no API call), then confirm with the count."""
        plan = await self.api.sync_plan(force=force, shipments=ids)
        count, unknown = plan.would_sync, plan.unknown_ids
        if ids:
            title = f"Sync {number(count)} selected shipment(s)?"
        elif force:
            title = f"Force-sync all {number(count)} active shipments?"
        else:
            title = f"Sync the {number(count)} due shipment(s) now?"
        body = f"This costs about {number(count)} tracking API call(s)."
        if unknown:
            body += f"\nUnknown ids (skipped): {', '.join(unknown[:5])}"
        if count == 0 and not force and not ids:
            body = "Nothing is due, so the run will find no work."

        def go() -> None:
            self.start_action("Sync", lambda: self._sync(force, ids))

        self.confirm(title, body, go, confirm="Sync")

    async def _sync(self, force: bool, ids: list[str] | None) -> None:
        result = await self.api.sync(force=force, shipments=ids)
        if result.joined:
            self.notify(f"a sync is already running: joined run #{result.run_id}")
        else:
            self.notify(f"sync run #{result.run_id} started ({result.trigger})", title="Sync")

    # health and alerts ---------------------------------------------------------------------

    def action_health_check(self) -> None:
        self.post_message(HealthCheckRequested())

    @on(HealthCheckRequested)
    def _health_requested(self) -> None:
        self.start_action("Health check", self._health_check)

    async def _health_check(self) -> None:
        self.state.health = await self.api.health(fresh=True)
        self._publish({HEALTH})
        level = self.state.health_level()
        severity = {"ok": "information", "warning": "warning", "critical": "error"}.get(level, "information")
        self.notify(f"health: {level}", title="Health check", severity=severity)  # type: ignore[arg-type]

    def action_test_alert(self) -> None:
        self.post_message(TestAlertRequested())

    @on(TestAlertRequested)
    def _test_alert_requested(self) -> None:
        def go() -> None:
            self.start_action("Test alert", self._test_alert)

        self.confirm(
            "Send a test alert?", "Every configured alert channel gets a test notification.", go, confirm="Send"
        )

    async def _test_alert(self) -> None:
        result = await self.api.alert_test()
        summary = daemon.alert_test_summary(result)
        failed = not result.delivered and bool(result.deliveries)
        self.notify(summary, title="Test alert", severity="warning" if failed else "information")
        self.refresh_alerts()

    # loops -----------------------------------------------------------------------------------

    def action_toggle_loop(self) -> None:
        if not self.state.loops:
            self.notify("no loops known yet", severity="warning")
            return

        def chosen(choice: tuple[str, str] | None) -> None:
            if choice:
                self.post_message(LoopToggleRequested(*choice))

        self.push_screen(LoopPickerModal(self.state.loops), chosen)

    @on(LoopToggleRequested)
    def _loop_toggle(self, message: LoopToggleRequested) -> None:
        name, action = message.name, message.action
        self.start_action(f"{action.capitalize()} {name}", lambda: self._loop_action(name, action))

    async def _loop_action(self, name: str, action: str) -> None:
        loop = await self.api.loop_action(name, action)
        self.state.loops[loop.name] = loop
        self._publish({LOOPS})
        self.notify(f"loop {name} {'paused' if action == 'pause' else 'resumed'}", title="Loops")

    # shipments ----------------------------------------------------------------------------

    def action_add_shipment(self) -> None:
        def submitted(record: dict[str, str] | None) -> None:
            if record:
                self.post_message(AddShipmentRequested(record))

        self.push_screen(AddShipmentModal(), submitted)

    @on(AddShipmentRequested)
    def _add_requested(self, message: AddShipmentRequested) -> None:
        record = message.record
        self.start_action("Add shipment", lambda: self._add(record))

    async def _add(self, record: dict[str, str]) -> None:
        result = await self.api.add_shipments([dict(record)])
        if result.added:
            added = result.added[0]
            self.notify(f"now tracking {added.carrier_code} {added.tracking_number} as {added.id}")
        elif result.duplicates:
            self.notify(f"already tracked as {result.duplicates[0].id}", severity="warning")
        elif result.invalid:
            self.notify(result.invalid[0].error, title="Add shipment failed", severity="error")

    # screens and themes --------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpModal):
            self.push_screen(HelpModal())

    def action_toggle_theme(self) -> None:
        self.theme = "shiptrack-light" if self.theme == "shiptrack-dark" else "shiptrack-dark"

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand("Sync now", "Sync the shipments that are due (asks first)", self.action_sync)
        yield SystemCommand("Force sync", "Sync every active shipment (asks first)", self.action_force_sync)
        if isinstance(screen, ShipmentsScreen):
            yield SystemCommand("Sync selected shipments", "Sync the selected shipments", screen.action_sync_selected)
        yield SystemCommand("Run health check", "Run the health checks now", self.action_health_check)
        yield SystemCommand("Send test alert", "Notify every alert channel (asks first)", self.action_test_alert)
        yield SystemCommand("Add shipment", "Start tracking a shipment", self.action_add_shipment)
        for name, loop in self.state.loops.items():
            verb = "resume" if loop.paused else "pause"
            yield SystemCommand(
                f"{verb.capitalize()} loop {name}",
                f"{verb} the {name} loop",
                lambda n=name, v=verb: self.post_message(LoopToggleRequested(n, v)),
            )
        yield SystemCommand("Dashboard", "Show the dashboard (1)", lambda: self.switch_mode("dashboard"))
        yield SystemCommand("Shipments", "Browse and search the shipments (2)", lambda: self.switch_mode("shipments"))
        yield SystemCommand("Events", "Tail the daemon's events (3)", lambda: self.switch_mode("events"))
        yield SystemCommand(
            "Toggle dark/light theme", "Switch between shiptrack-dark and -light (f2)", self.action_toggle_theme
        )
        yield SystemCommand("Help", "Keys and screens (?)", self.action_help)
        yield from super().get_system_commands(screen)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shiptrack-tui", description="The shiptrackd operator console.")
    parser.add_argument(
        "--socket",
        type=Path,
        help="control socket (default: $SHIPTRACK_SOCKET, then /run/shiptrackd/control.sock if it exists,"
        " then $XDG_RUNTIME_DIR/shiptrackd/control.sock)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = args.socket or default_socket()
    # A factory, not a client: the app makes it on its own event loop.
    app = ShiptrackApp(lambda: ApiClient(path), socket_label=str(path))
    return app.run() or 0
