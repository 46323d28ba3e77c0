"""
shiptrack-tui: the operator console, live over the daemon's control socket.

ShiptrackApp is the console's keys, screens and actions; its base, DaemonLink (link.py),
keeps the state in step with the daemon. Widgets never call the client: they post intents,
and the app runs one short worker per action; one Worker.StateChanged handler turns
failures into notifications (STYLE.md §6).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from shiptrackd.api.client import ApiClient
from shiptrackd.errors import ShiptrackError
from shiptrackd.paths import default_socket

from . import daemon
from .format import number
from .link import ClientFactory, Clock, DaemonLink, system_clock
from .messages import (
    AddShipmentRequested,
    HealthCheckRequested,
    LoopToggleRequested,
    SyncRequested,
    TestAlertRequested,
)
from .screens.dashboard import DashboardScreen
from .screens.deliveries import DeliveriesScreen
from .screens.events import EventsScreen
from .screens.modals import AddShipmentModal, ConfirmModal, HelpModal, LoopPickerModal
from .screens.shipments import ShipmentsScreen
from .state import HEALTH, LOOPS
from .themes import DARK, LIGHT


class ShiptrackApp(DaemonLink):
    CSS_PATH = "app.tcss"
    TITLE = "shiptrack"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "dashboard": DashboardScreen,
        "shipments": ShipmentsScreen,
        "events": EventsScreen,
        "deliveries": DeliveriesScreen,
    }
    DEFAULT_MODE = "dashboard"
    # Textual declares it `ClassVar[...] | None`, which mypy reads as an instance variable.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('dashboard')", "Dashboard", show=False),
        Binding("2", "switch_mode('shipments')", "Shipments", show=False),
        Binding("3", "switch_mode('events')", "Events", show=False),
        Binding("4", "switch_mode('deliveries')", "Deliveries", show=False),
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
        super().__init__(
            client_factory,
            clock=clock,
            socket_label=socket_label,
            follow=follow,
            backoff_s=backoff_s,
            heartbeat_s=heartbeat_s,
            refresh_s=refresh_s,
            update_s=update_s,
        )
        self.page_size = page_size
        self.register_theme(DARK)
        self.register_theme(LIGHT)
        self.theme = "shiptrack-dark"

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
        self.publish_topics({HEALTH})
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
        self.publish_topics({LOOPS})
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
            "Deliveries", "Webhook endpoints and deliveries to them (4)", lambda: self.switch_mode("deliveries")
        )
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
