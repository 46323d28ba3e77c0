"""
The console's webhook and cluster views on the fake daemon: push health and deliveries on the
dashboard, the deliveries view (4) and its keys, the cluster panel, a shipment's pushes, and what
each shows when there is nothing to show or the daemon's answer failed.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from textual.widgets import DataTable, Static
from tui_fake_data import DELIVERIES, WEBHOOKS_OFF
from tui_fakes import Clustered, FakeClient, make_fake_app

from shiptrackd.api.client import ApiError
from shiptrackd.errors import DaemonUnavailableError
from shiptrackd.wire.outbound import Deliveries, Endpoints
from shiptrackd.wire.push import WebhooksStatus
from tui.app import ShiptrackApp
from tui.daemon import load_snapshot
from tui.messages import DaemonDisconnected, SnapshotLoaded
from tui.screens.deliveries import DeliveriesScreen
from tui.screens.detail import ShipmentDetailScreen
from tui.widgets.cluster_panel import ClusterPanel
from tui.widgets.webhook_panels import DeliveriesPanel, PushPanel

pytestmark = pytest.mark.anyio

SIZE = (120, 40)


async def until(pilot: Any, ready: Any, timeout_s: float = 5.0) -> None:
    with anyio.fail_after(timeout_s):
        while not ready():
            await pilot.pause(0.02)


def text_of(app: ShiptrackApp, panel: type[Any]) -> str:
    return str(app.screen.query_one(panel).render())


def rows(app: ShiptrackApp, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(table_id, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def note(app: ShiptrackApp, note_id: str) -> str:
    widget = app.screen.query_one(note_id, Static)
    return str(widget.render()) if widget.display else ""


async def test_dashboard_shows_push_health_and_deliveries() -> None:
    """The dashboard says how pushes are doing and, per endpoint, how deliveries are doing; no cluster on SQLite."""
    fake = FakeClient(total=50)
    app = make_fake_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.webhooks is not None and app.state.endpoints is not None)
        await pilot.pause()
        push = text_of(app, PushPanel)
        assert "ok" in push and "81,234 subscribed" in push and "last push 42s ago" in push
        assert "1,180 accepted · 14 duplicate · 2 bad_signature" in push  # most frequent first
        assert "saves 9,100 calls/h" in push
        out = text_of(app, DeliveriesPanel)
        assert "critical" in out and "2 endpoints · 14 waiting, lag 25m · 2 dead" in out
        assert "warehouse failing" in " ".join(out.split()) and "HTTP 503" in out
        assert not app.screen.query_one(ClusterPanel).display  # one daemon on SQLite: the daemon bar says it all
        assert ("webhooks", {}) in fake.calls and ("endpoints", {}) in fake.calls


class Quiet(FakeClient):
    """Webhooks off, no [[outbound]] endpoints, and no deliveries: a fresh default install."""

    async def webhooks(self) -> WebhooksStatus:
        return WEBHOOKS_OFF

    async def endpoints(self) -> Endpoints:
        return Endpoints(endpoints=[])

    async def deliveries(
        self, *, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> Deliveries:
        self.calls.append(("deliveries", {"endpoint": endpoint, "state": state, "limit": limit}))
        return Deliveries(deliveries=[])


class Failing(FakeClient):
    """Every webhook route fails, as a daemon would answer a store error."""

    async def webhooks(self) -> WebhooksStatus:
        raise ApiError(503, "store_unavailable", "the store is not answering")

    async def endpoints(self) -> Endpoints:
        raise ApiError(503, "store_unavailable", "the store is not answering")

    async def deliveries(
        self, *, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> Deliveries:
        raise ApiError(503, "store_unavailable", "the store is not answering")


async def test_dashboard_says_when_push_and_deliveries_are_off() -> None:
    """Webhooks off and no endpoints are said in words, not left blank."""
    app = make_fake_app(Quiet(total=10))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.webhooks is not None and app.state.endpoints is not None)
        await pilot.pause()
        assert "off: polling only" in text_of(app, PushPanel)
        assert "no [[outbound]] endpoints" in text_of(app, DeliveriesPanel)


async def test_dashboard_survives_failing_webhook_routes() -> None:
    """A failing /v1/webhooks or /v1/endpoints leaves the rest of the dashboard loaded and says 'no data yet'."""
    app = make_fake_app(Failing(total=10))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected and app.state.health is not None)
        await pilot.pause()
        assert app.state.webhooks is None and app.state.endpoints is None
        assert "no push data yet" in text_of(app, PushPanel)
        assert "no delivery data yet" in text_of(app, DeliveriesPanel)


async def test_deliveries_view_keys() -> None:
    """4 opens the deliveries view; e filters to the highlighted endpoint, d to dead letters, c clears both."""
    fake = FakeClient(total=50)
    app = make_fake_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen) and app.screen.deliveries is not None)
        await pilot.pause()
        endpoints = rows(app, "#endpoint-table")
        assert [r[:3] for r in endpoints] == [["shop", "ok", "0"], ["warehouse", "failing", "14"]]
        assert endpoints[1][6] == "HTTP 503: Service Unavailable"
        assert [r[0] for r in rows(app, "#delivery-table")] == ["212", "211", "210", "209", "180", "179"]
        assert note(app, "#deliveries-note") == ""

        await pilot.press("down", "e")
        await until(pilot, lambda: len(rows(app, "#delivery-table")) == 4)
        assert {r[2] for r in rows(app, "#delivery-table")} == {"warehouse"}
        assert fake.calls[-1] == ("deliveries", {"endpoint": "warehouse", "state": None, "limit": 200})

        await pilot.press("d")
        await until(pilot, lambda: len(rows(app, "#delivery-table")) == 2)
        assert [r[4] for r in rows(app, "#delivery-table")] == ["dead", "dead"]
        assert "dead letters to warehouse (2)" in str(app.screen.query_one("#deliveries-title", Static).render())

        await pilot.press("c")
        await until(pilot, lambda: len(rows(app, "#delivery-table")) == 6)
        assert fake.calls[-1] == ("deliveries", {"endpoint": None, "state": None, "limit": 200})

        def dead_colour() -> object:
            return app.screen.query_one("#delivery-table", DataTable).get_row_at(4)[4].style

        await pilot.press("tab", "enter")  # on the deliveries table: open the first one's shipment
        await until(pilot, lambda: isinstance(app.screen, ShipmentDetailScreen))
        detail = app.screen
        assert isinstance(detail, ShipmentDetailScreen) and detail.shipment_id == DELIVERIES[0].shipment_id
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen))

        dark = dead_colour()
        await pilot.press("f2")  # the light theme's colours, without a re-read
        await until(pilot, lambda: dead_colour() != dark)
        assert app.theme == "shiptrack-light" and "bold" in str(dead_colour())


async def test_deliveries_view_when_nothing_is_configured() -> None:
    """No endpoints and no deliveries: the view says so instead of showing empty tables."""
    app = make_fake_app(Quiet(total=10))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen) and app.screen.deliveries is not None)
        await pilot.pause()
        assert rows(app, "#endpoint-table") == [] and rows(app, "#delivery-table") == []
        assert "no [[outbound]] endpoints configured" in note(app, "#endpoints-note")
        assert note(app, "#deliveries-note") == "no deliveries yet"
        await pilot.press("d")
        await until(pilot, lambda: "match the filters" in note(app, "#deliveries-note"))


async def test_deliveries_view_shows_a_failed_read() -> None:
    """A failing /v1/deliveries is shown in the view and as a notification, and the console keeps running."""
    app = make_fake_app(Failing(total=10))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen) and bool(app.screen.error))
        await pilot.pause()
        assert note(app, "#deliveries-note") == "could not read the deliveries: the store is not answering"
        assert any("the store is not answering" in n.message for n in app._notifications)
        await pilot.press("1")
        assert app.is_running


async def test_cluster_panel_lists_every_member() -> None:
    """On a shared store the dashboard lists each member: host:pid, version, heartbeat, leases and role."""
    app = make_fake_app(Clustered(total=10))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.pause()
        panel = app.screen.query_one(ClusterPanel)
        assert panel.display
        lines = [" ".join(line.split()) for line in str(panel.render()).splitlines()]
        assert lines[0] == "MEMBER VERSION HEARTBEAT LEASES ROLE"
        assert lines[1] == "● vm1:4001 0.1.0 1s ago 50 leader: alerts,force,health"
        assert lines[2] == "vm2:4002 0.1.0 3s ago 48 standby"
        assert lines[3] == "vm3:4003 0.1.0 12s ago 0 standby"
        assert lines[4].startswith("1 member stopped beating")


async def test_detail_shows_the_shipments_pushes() -> None:
    """A shipment's detail says since when it is subscribed, how many pushes came, the last one, and its regime."""
    fake = FakeClient(total=50)
    app = make_fake_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        shipment_id = (await fake.shipments(limit=5)).shipments[4].id
        app.push_screen(ShipmentDetailScreen(shipment_id))
        await until(pilot, lambda: getattr(app.screen, "why", None) is not None)
        await pilot.pause()
        facts = " ".join(str(app.screen.query_one("#detail-facts", Static).render()).split())
        assert "subscribed 2025-03-11 11:59" in facts and "pushes 5, the last 5m ago" in facts
        why = " ".join(str(app.screen.query_one("#detail-why", Static).render()).split())
        assert "push push: pushes carry the news" in why and "carrier: given when added" in why
        assert "regime:" not in why and "push(es) received" not in why  # said once, typed, not twice


class Dropping(FakeClient):
    """A daemon that can go away: while `down`, the deliveries routes answer as a missing socket does."""

    down = False

    async def deliveries(
        self, *, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> Deliveries:
        if self.down:
            raise DaemonUnavailableError("shiptrackd is not running at the socket (socket missing)")
        return await super().deliveries(endpoint=endpoint, state=state, limit=limit)


async def test_deliveries_view_waits_out_a_disconnection() -> None:
    """While the daemon is away the view says why without a notification per read; back, it reads again by itself."""
    fake = Dropping(total=10)
    app = make_fake_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("4")
        await until(pilot, lambda: isinstance(app.screen, DeliveriesScreen) and app.screen.deliveries is not None)
        fake.down = True
        app.post_message(DaemonDisconnected("the daemon went away", 60.0))
        await until(pilot, lambda: not app.state.connected)
        notified = len(app._notifications)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "socket missing" in note(app, "#deliveries-note"))
        assert len(app._notifications) == notified  # the banner says it, once
        fake.down = False
        reads = sum(1 for call, _ in fake.calls if call == "deliveries")
        app.post_message(SnapshotLoaded(await load_snapshot(fake)))
        await until(pilot, lambda: note(app, "#deliveries-note") == "" and len(rows(app, "#delivery-table")) == 6)
        assert sum(1 for call, _ in fake.calls if call == "deliveries") == reads + 1
