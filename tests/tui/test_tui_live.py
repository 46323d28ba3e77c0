"""
The console against a real daemon on the sandbox: keys pressed in the console must
change the daemon (a sync really ran, a loop really paused), and the console must
survive the daemon going away and come back by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Running, daemon_config
from textual.widgets import RichLog

from shiptrackd.api.client import ApiClient
from shiptrackd.sandbox import Sandbox
from tui.app import ShiptrackApp
from tui.events import event_type
from tui.messages import DaemonDisconnected, DaemonReconnected, EventReceived, SnapshotLoaded
from tui.screens.detail import ShipmentDetailScreen
from tui.screens.modals import AddShipmentModal, ConfirmModal, LoopPickerModal
from tui.widgets.banner import ConnectionBanner
from tui.widgets.cluster_panel import ClusterPanel
from tui.widgets.shipment_list import ShipmentList

pytestmark = pytest.mark.anyio

SIZE = (100, 30)


@pytest.fixture
def api(running: Running) -> ApiClient:
    """The running daemon's typed client."""
    return running.client


def console(socket: Path) -> ShiptrackApp:
    """The real console on a real client; fast back-off and heartbeats so a test never waits long."""
    return ShiptrackApp(lambda: ApiClient(socket), backoff_s=(0.05, 0.2), heartbeat_s=1.0, refresh_s=60.0)


async def until(pilot: Any, ready: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Let the app run until *ready()* holds; fail after *timeout_s*."""
    with anyio.fail_after(timeout_s):
        while not ready():
            await pilot.pause(0.02)


async def until_daemon(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll the daemon (over its API) until *check()* holds; fail after *timeout_s*."""
    with anyio.fail_after(timeout_s):
        while not await check():  # noqa: ASYNC110  (the daemon offers no event to wait on for these)
            await anyio.sleep(0.02)


def notes(app: ShiptrackApp) -> list[str]:
    return [n.message for n in app._notifications]


async def add(client: ApiClient, count: int, prefix: str = "1ZTUI") -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 1000):
        records = [
            {"carrier_code": "ups", "tracking_number": f"{prefix}{i:08d}", "reference": f"REF-{i}"}
            for i in range(start, min(start + 1000, count))
        ]
        ids += [a.id for a in (await client.add_shipments(records)).added]
    return ids


async def test_sync_key_runs_a_sync_in_the_daemon(running: Running, api: ApiClient) -> None:
    """r, then y in the confirmation, starts a regular sync in the daemon, and its events reach the console."""
    await add(api, 3)
    messages: list[Any] = []
    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await until(pilot, lambda: app.state.connected)
        assert any(isinstance(m, SnapshotLoaded) for m in messages)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert (await api.runs()).runs == []  # nothing happens before the operator says yes
        await pilot.press("y")

        async def finished() -> bool:
            runs = (await api.runs()).runs
            return bool(runs) and runs[0].outcome != "running"

        await until_daemon(finished)
        run = (await api.runs()).runs[0]
        assert run.trigger == "manual" and run.selected == 3
        await until(pilot, lambda: bool(app.state.runs) and app.state.runs[0].id == run.id)
        kinds = {event_type(m.event) for m in messages if isinstance(m, EventReceived)}
        assert {"sync.started", "sync.finished"} <= kinds
        await pilot.press("3")  # the event log tails what arrived
        await pilot.pause()
        log = app.screen.query_one("#event-log", RichLog)
        text = "\n".join("".join(seg.text for seg in line) for line in log.lines)
        assert "sync.finished" in text and f"run #{run.id}" in text


async def test_force_key_forces_a_sync(running: Running, api: ApiClient) -> None:
    """f, then y, runs a force sync of every active shipment."""
    await add(api, 2)
    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")

        async def forced() -> bool:
            return any(r.trigger == "force" for r in (await api.runs()).runs)

        await until_daemon(forced)
        await until(pilot, lambda: any("started" in n for n in notes(app)))


async def test_declining_the_confirmation_costs_nothing(running: Running, api: ApiClient) -> None:
    """n in the confirmation starts no run."""
    await add(api, 1)
    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")
        await pilot.pause(0.2)
        assert (await api.runs()).runs == []


async def test_pause_and_resume_a_loop(running: Running, api: ApiClient) -> None:
    """p opens the loop picker; Enter on a loop pauses it in the daemon, and again resumes it."""
    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)

        async def sync_paused(want: bool) -> bool:
            return next(lp for lp in (await api.loops()).loops if lp.name == "sync").paused is want

        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, LoopPickerModal))
        await pilot.press("enter")  # the first loop: sync
        await until_daemon(lambda: sync_paused(True))
        await until(pilot, lambda: app.state.loops["sync"].paused is True)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, LoopPickerModal))
        await pilot.press("enter")
        await until_daemon(lambda: sync_paused(False))


async def test_action_errors_become_notifications(running: Running) -> None:
    """A failing action (a loop the daemon does not have) shows the daemon's message, not a traceback."""
    from tui.messages import LoopToggleRequested

    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        app.post_message(LoopToggleRequested("nope", "pause"))
        await until(pilot, lambda: any("no loop named 'nope'" in n for n in notes(app)))
        assert app.is_running


async def test_health_and_test_alert_report(running: Running) -> None:
    """h runs the checks and says the level; t (after y) says how many channels got the test notice."""
    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("h")
        await until(pilot, lambda: any(n.startswith("health: ") for n in notes(app)))
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: "test alert delivered to 1/1 channel(s)" in notes(app))
        assert app.is_running


async def test_add_shipment_form(running: Running, api: ApiClient) -> None:
    """a opens the form; carrier and tracking number, then Enter, add the shipment in the daemon."""
    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AddShipmentModal))
        await pilot.press(*"ups", "tab", *"1ZFORM0001", "enter")

        async def added() -> bool:
            found = await api.shipments(search="1ZFORM0001")
            return len(found.shipments) == 1

        await until_daemon(added)
        await until(pilot, lambda: any("now tracking ups 1ZFORM0001" in n for n in notes(app)))


async def test_shipments_page_end_select_and_sync(running: Running, api: ApiClient) -> None:
    """The shipments list pages from the API, End reaches the last row, and y syncs the selected shipment."""
    ids = sorted(await add(api, 2500))  # the list is in id order: creation ms, then randomness
    app = ShiptrackApp(
        lambda: ApiClient(running.config.daemon.socket), backoff_s=(0.05, 0.2), heartbeat_s=1.0, page_size=500
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("2")
        await until(pilot, lambda: bool(app.screen.query(ShipmentList)))
        listing = app.screen.query_one(ShipmentList)
        await until(pilot, lambda: 0 in listing.model.pages)
        first = listing.model.row(0)
        assert first is not None and first.id == ids[0]
        assert len(listing.model.pages) <= 2  # opened with a page or two, not the store
        await pilot.press("end")
        await until(pilot, lambda: listing.model.complete and listing.cursor_row == 2499)
        await until(pilot, lambda: listing.current is not None)
        current = listing.current
        assert current is not None and current.id == ids[-1]
        await pilot.press("space")
        assert listing.selected == {ids[-1]}
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")

        async def targeted() -> bool:
            runs = (await api.runs()).runs
            return bool(runs) and runs[0].trigger == "targeted" and runs[0].outcome != "running"

        await until_daemon(targeted)
        assert (await api.runs()).runs[0].selected == 1
        await pilot.press("home", "enter")
        await until(pilot, lambda: isinstance(app.screen, ShipmentDetailScreen))
        detail = app.screen
        assert isinstance(detail, ShipmentDetailScreen)
        await until(pilot, lambda: detail.shipment is not None)
        assert detail.shipment is not None and detail.shipment.id == ids[0]


async def test_search_filters_through_the_api(running: Running, api: ApiClient) -> None:
    """Typing in the search box narrows the list to what the daemon finds."""
    await add(api, 30)
    app = console(running.config.daemon.socket)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("2")
        await until(pilot, lambda: bool(app.screen.query(ShipmentList)))
        listing = app.screen.query_one(ShipmentList)
        await until(pilot, lambda: listing.model.complete)
        assert listing.model.total == 30
        await pilot.press("slash", *"1ZTUI0000002", "enter")
        await until(pilot, lambda: listing.model.complete and listing.model.total == 10)  # ...20 to ...29


async def test_disconnect_banner_and_reconnect(short_tmp: Path, sandbox: Sandbox) -> None:
    """When the daemon stops the console says so and keeps its state; a new daemon on the socket is picked up."""
    from shiptrackd.daemon import Daemon

    config = daemon_config(short_tmp, sandbox.base_url)
    messages: list[Any] = []
    async with anyio.create_task_group() as tg:
        first = await tg.start(Daemon(config, handle_signals=False).run)
        app = console(config.daemon.socket)
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            await until(pilot, lambda: app.state.connected)
            banner = app.screen.query_one(ConnectionBanner)
            await until(pilot, lambda: not banner.display)  # hidden on the refresh after connecting
            loops_before = set(app.state.loops)

            first.stop()
            await until(pilot, lambda: not app.state.connected)
            await until(pilot, lambda: banner.display)
            assert "disconnected — retrying" in str(banner.render())
            assert any(isinstance(m, DaemonDisconnected) for m in messages)
            assert set(app.state.loops) == loops_before  # the last known state stays on screen
            with anyio.fail_after(10):
                while config.daemon.socket.exists():
                    await pilot.pause(0.02)
            await pilot.pause(0.3)  # a few failed reconnect attempts against no socket at all
            assert app.is_running and not app.state.connected

            second = await tg.start(Daemon(config, handle_signals=False).run)
            await until(pilot, lambda: app.state.connected)
            await until(pilot, lambda: not banner.display)
            assert any(isinstance(m, DaemonReconnected) for m in messages)
            async with ApiClient(config.daemon.socket) as client:  # the stream is live again
                await client.loop_action("health", "pause")
            await until(pilot, lambda: app.state.loops["health"].paused is True)
            second.stop()


async def test_cluster_panel_on_either_store(running_any: Running) -> None:
    """On PostgreSQL the dashboard lists the daemon as the cluster's one member, leading its singletons;
    on SQLite (one daemon per file) the panel stays hidden."""
    client: ApiClient = running_any.client
    backend = (await client.status()).store.backend

    async def leading() -> bool:
        cluster = (await client.status()).cluster
        return cluster is not None and bool(cluster.leads)

    if backend == "postgresql":
        await until_daemon(leading)  # elected (pg_try_advisory_lock) before the console's snapshot
    app = console(running_any.config.daemon.socket)
    async with app.run_test(size=(120, 50)) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.pause()
        panel = app.screen.query_one(ClusterPanel)
        if backend == "sqlite":
            assert not panel.display
            return
        status = app.state.status
        assert panel.display and status is not None and status.cluster is not None
        lines = [" ".join(line.split()) for line in str(panel.render()).splitlines()]
        me = status.cluster.members[0]
        assert lines[1].startswith(f"● {me.host}:{me.pid} {me.version}") and "leader: " in lines[1]
