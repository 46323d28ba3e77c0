"""Status's store figures come from memory during a busy sync, and a control-API write is seen at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup

from shiptrackd.clock import FakeClock
from shiptrackd.models import NewShipment
from shiptrackd.status_figures import MAX_AGE, STALE_AFTER, ShipmentFigures, StatusFigures
from shiptrackd.store import Store

pytestmark = pytest.mark.anyio


async def _fresh(figures: StatusFigures, total: int, tg: TaskGroup) -> ShipmentFigures:
    """The figures once a background refresh has brought them to *total* (polled with a deadline)."""
    with anyio.fail_after(5):
        while (got := await figures.get(tg)).total != total:  # noqa: ASYNC110 - a refresh sets no event
            await anyio.sleep(0.01)
    return got


async def test_figures_are_served_from_memory_and_refreshed_behind_the_caller(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await Store.open(tmp_path / "st.db")
    try:
        figures = StatusFigures(store, clock, None)
        async with anyio.create_task_group() as tg:
            first = await figures.get(tg)
            assert (first.total, first.active, first.due_now) == (0, 0, 0)

            # A write the figures were not told of (the sync engine's, say) is not read within MAX_AGE...
            await store.shipments.add_many([NewShipment("ups", "1Z001"), NewShipment("ups", "1Z002")], clock.now())
            assert (await figures.get(tg)) is first

            # ...past it the caller still gets the held figures at once, and a refresh runs behind it.
            await clock.advance(MAX_AGE + timedelta(milliseconds=1))
            refreshed = await _fresh(figures, 2, tg)
            assert (refreshed.active, refreshed.due_now) == (2, 2)
    finally:
        await store.close()


async def test_a_write_through_the_control_api_is_seen_by_the_next_status(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await Store.open(tmp_path / "st.db")
    try:
        figures = StatusFigures(store, clock, None)
        async with anyio.create_task_group() as tg:
            assert (await figures.get(tg)).total == 0
            await store.shipments.add_many([NewShipment("ups", "1Z003")], clock.now())
            figures.invalidate()
            assert (await figures.get(tg)).total == 1
    finally:
        await store.close()


async def test_figures_too_old_to_show_are_read_in_the_foreground(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await Store.open(tmp_path / "st.db")
    try:
        figures = StatusFigures(store, clock, None)
        async with anyio.create_task_group() as tg:
            await figures.get(tg)
            await store.shipments.add_many([NewShipment("ups", "1Z004")], clock.now())
            await clock.advance(STALE_AFTER + timedelta(seconds=1))
            assert (await figures.get(tg)).total == 1  # no refresh to wait for: this call read the store
    finally:
        await store.close()
