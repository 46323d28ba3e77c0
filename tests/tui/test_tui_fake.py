"""Console behaviour that needs no daemon: the command palette, help, themes, and an unknown-event-proof stream."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from tui_fakes import FakeClient, make_fake_app

from tui.screens.modals import ConfirmModal, HelpModal

pytestmark = pytest.mark.anyio


async def until(pilot: Any, ready: Any, timeout_s: float = 5.0) -> None:
    with anyio.fail_after(timeout_s):
        while not ready():
            await pilot.pause(0.02)


async def test_command_palette_offers_the_actions():
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


async def test_help_and_theme_keys():
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


async def test_older_daemon_without_health_endpoints():
    """Without /v1/health and /v1/alerts the panels say 'not available' and h says so plainly."""
    app = make_fake_app(FakeClient(total=10, health=False))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.connected)
        assert app.state.health == "not available" and app.state.alerts == "not available"
        await pilot.press("h")
        await until(pilot, lambda: any("not available" in n.message for n in app._notifications))


async def test_unexpected_events_are_logged_not_fatal():
    """The fake stream includes an event type the console does not know; it lands in the log and nothing breaks."""
    app = make_fake_app(FakeClient(total=10))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.state.events_seen == 3)
        assert [e["type"] for e in app.state.events][-1] == "something.new"
        await pilot.press("3")
        await pilot.pause()
        assert app.is_running
