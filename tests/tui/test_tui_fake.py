"""Console behaviour that needs no daemon: the command palette, help, themes, and an unknown-event-proof stream."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import anyio
import pytest
from tui_fakes import FakeClient, make_fake_app

from shiptrackd.wire.answers import ShipmentPage
from tui.events import RawEvent
from tui.messages import EventReceived
from tui.screens.modals import ConfirmModal, HelpModal
from tui.widgets.shipment_list import ShipmentList

pytestmark = pytest.mark.anyio


async def until(pilot: Any, ready: Any, timeout_s: float = 5.0) -> None:
    with anyio.fail_after(timeout_s):
        while not ready():
            await pilot.pause(0.02)


async def test_command_palette_offers_the_actions() -> None:
    """ctrl+p, 'force', Enter asks to force a sync, exactly as f does; yes starts it."""
    fake = FakeClient(total=50)
    app = make_fake_app(fake)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"force sync")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: ("sync", {"force": True, "dry_run": False, "shipments": None}) in fake.calls)


async def test_help_and_theme_keys() -> None:
    """? opens the help, escape closes it; f2 switches between the dark and light themes."""
    app = make_fake_app(FakeClient(total=10))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpModal))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpModal))
        assert app.theme == "shiptrack-dark"
        await pilot.press("f2")
        assert app.theme == "shiptrack-light"


async def test_unexpected_events_are_logged_not_fatal() -> None:
    """The fake stream includes an event type the console does not know; it lands in the log and nothing breaks."""
    app = make_fake_app(FakeClient(total=10))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.events_seen == 3)
        last = app.state.events[-1]
        assert isinstance(last, RawEvent) and last.type == "something.new" and last.seq == 104
        await pilot.press("3")
        await pilot.pause()
        assert app.is_running


async def test_printing_while_the_console_runs_does_not_raise() -> None:
    """Textual captures stdout/stderr and calls App._flush(stderr=...) on a flush: ours must not shadow it."""
    app = make_fake_app(FakeClient(total=10))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.connected)
        print("a library prints", flush=True)
        print("and warns", file=sys.stderr, flush=True)
        app.state.events.clear()
        app.post_message(EventReceived(RawEvent(type="something.new", seq=200)))
        await until(pilot, lambda: len(app.state.events) == 1)  # the event batching still runs
        assert app.is_running


class HeldPages(FakeClient):
    """Serves the first page at once and holds every later one until `release` is set."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.release = asyncio.Event()

    async def shipments(
        self,
        *,
        status: str | None = None,
        carrier: str | None = None,
        search: str | None = None,
        active: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> ShipmentPage:
        if cursor:
            await self.release.wait()
        return await super().shipments(status=status, carrier=carrier, search=search, cursor=cursor, limit=limit)


async def test_the_list_scrolls_and_keeps_focus_while_a_page_is_in_flight() -> None:
    """A page on its way must not make Textual treat the list as loading (disabled, out of the focus chain)."""
    fake = HeldPages(total=500)
    app = make_fake_app(fake, page_size=50)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.connected)
        await pilot.press("2")
        await until(pilot, lambda: bool(app.screen.query(ShipmentList)))
        listing = app.screen.query_one(ShipmentList)
        await until(pilot, lambda: 0 in listing.model.pages and listing.page_in_flight)
        assert listing.focusable and not listing.is_disabled and app.focused is listing
        await pilot.press("pagedown", "pagedown")
        assert listing.cursor_row > 20 and listing.scroll_offset.y > 0
        assert app.focused is listing and listing.page_in_flight
        fake.release.set()
        await until(pilot, lambda: 1 in listing.model.pages)
