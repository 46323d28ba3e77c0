"""The API panel gives each provider account its own line once there are several (issue 12 item 5)."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from tui_fakes import FakeClient, fixed_clock

from tui.state import ConsoleState
from tui.widgets.panels import ApiPanel

pytestmark = pytest.mark.anyio


async def test_each_account_has_its_line_and_a_paused_one_says_so() -> None:
    now = fixed_clock()
    stats = await FakeClient().stats()
    (domestic,) = stats.providers
    intl = msgspec.structs.replace(
        domestic,
        name="intl",
        kind="17track",
        requests=120,
        rate_limited=3,
        errors=0,
        paused_until=now + timedelta(seconds=30),
    )
    panel = ApiPanel("API")
    alone = panel.draw(ConsoleState(stats=stats), now, 100).plain
    assert "shipengine (shipengine):" not in alone  # one account: the totals say it all

    both = panel.draw(ConsoleState(stats=msgspec.structs.replace(stats, providers=[domestic, intl])), now, 100).plain
    assert "shipengine (shipengine): 48,213 req · 12 429s · 301 errors · circuit closed" in both
    assert "intl (17track): 120 req · 3 429s · 0 errors · circuit closed · paused" in both
