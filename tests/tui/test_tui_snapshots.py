"""Pixel snapshots of the console's main views, from a fake daemon with fixed data and a fixed clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tui_fakes import Clustered, make_fake_app


async def settle(pilot: Any, ready: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until *ready()* holds (workers done, rows in), then let the screen repaint."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not ready():
        if loop.time() > deadline:
            raise AssertionError("the console did not get ready in time")
        await pilot.pause(0.02)
    await pilot.pause()


def connected(app: Any) -> bool:
    """Snapshot loaded, the fake's few events folded in and drawn (they are batched every update_s)."""
    return (
        app.state.connected and app.state.health is not None and app.state.events_seen == 3 and not app.redraw_pending
    )


async def dashboard_ready(pilot: Any) -> None:
    await settle(pilot, lambda: connected(pilot.app))


async def shipments_ready(pilot: Any) -> None:
    await settle(pilot, lambda: connected(pilot.app))
    await pilot.press("2")
    await settle(pilot, lambda: _listing(pilot.app) is not None and _listing(pilot.app).model.pages)


async def detail_ready(pilot: Any) -> None:
    await shipments_ready(pilot)
    await pilot.press("down", "down", "down", "down", "enter")
    await settle(pilot, lambda: getattr(pilot.app.screen, "shipment", None) is not None)


def _listing(app: Any) -> Any:
    from tui.widgets.shipment_list import ShipmentList

    found = app.screen.query(ShipmentList)
    return found.first() if found else None


def test_dashboard_wide(snap_compare: Any) -> None:
    """The dashboard shows daemon, loops, a running sync, health, API figures, pushes in, deliveries out, runs
    and alerts at 120x36 (no cluster panel: one daemon on SQLite)."""
    assert snap_compare(make_fake_app(), terminal_size=(120, 36), run_before=dashboard_ready)


def test_dashboard_80x24(snap_compare: Any) -> None:
    """At 80x24 the dashboard reflows to one column for loops and sync and two below, with no wrapped lines."""
    assert snap_compare(make_fake_app(), terminal_size=(80, 24), run_before=dashboard_ready)


def test_shipments_table(snap_compare: Any) -> None:
    """The shipments screen shows the first page of a 100,000-shipment store with its header and status line."""
    assert snap_compare(make_fake_app(), terminal_size=(120, 30), run_before=shipments_ready)


def test_shipment_detail(snap_compare: Any) -> None:
    """The detail view shows status, dates, the next check and why, and the event timeline."""
    assert snap_compare(make_fake_app(), terminal_size=(120, 30), run_before=detail_ready)


def test_dashboard_light_theme(snap_compare: Any) -> None:
    """f2 switches to the light theme; levels stay readable on a light background."""

    async def light(pilot: Any) -> None:
        await dashboard_ready(pilot)
        await pilot.press("f2")
        await pilot.pause()

    assert snap_compare(make_fake_app(), terminal_size=(100, 32), run_before=light)


def test_dashboard_no_color(snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under NO_COLOR the console renders without colour; glyphs and words still carry every level."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_fake_app()
    assert app.no_color
    assert snap_compare(app, terminal_size=(100, 32), run_before=dashboard_ready)


async def deliveries_ready(pilot: Any) -> None:
    await dashboard_ready(pilot)
    await pilot.press("4")
    await settle(pilot, lambda: getattr(pilot.app.screen, "deliveries", None) is not None)


def test_deliveries_view(snap_compare: Any) -> None:
    """4 shows each endpoint's state, backlog, lag and last error, and the latest deliveries, newest first."""
    assert snap_compare(make_fake_app(), terminal_size=(120, 30), run_before=deliveries_ready)


def test_dashboard_cluster(snap_compare: Any) -> None:
    """On a shared PostgreSQL store the dashboard lists the cluster's members (scrolled to the cluster panel)."""

    async def cluster_ready(pilot: Any) -> None:
        await dashboard_ready(pilot)
        pilot.app.screen.query_one("#cluster").scroll_visible(animate=False, top=True)
        await pilot.pause()

    assert snap_compare(make_fake_app(Clustered()), terminal_size=(120, 36), run_before=cluster_ready)
