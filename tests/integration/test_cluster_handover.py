"""
In-flight deliveries on a shared store (issue 13 items 4 and 5): a webhook or alert delivery left
'sending' by a member whose heartbeat stopped goes back to pending at a live member's next beat,
and one a live member is sending is never reset (it would go out twice). On both backends (the
rule is the store's); the hand-over itself runs on a shared store only, as the membership does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from shiptrackd.clock import FakeClock
from shiptrackd.cluster.membership import STALE_AFTER_S, Membership
from shiptrackd.models import NewShipment
from shiptrackd.store import NewNotification, Route, Store

pytestmark = pytest.mark.anyio
EVENTS = frozenset({"shipment.added"})


async def test_a_dead_members_deliveries_are_handed_on_and_a_live_ones_kept(any_store: Store) -> None:
    """B claims, then stops beating; A's beat hands B's webhook and alert rows back, and keeps its own."""
    store = any_store
    clock = FakeClock()
    alive, dead = Membership(store, clock, "A"), Membership(store, clock, "B")
    await alive.join()
    await dead.join()
    store.outbox.routes = (Route("app", EVENTS),)
    await store.shipments.add_many([NewShipment("ups", f"1Z{i}") for i in range(2)], clock.now())
    [mine] = await store.outbox.cycle([], clock.now(), 1, ["app"], owner="A")
    [theirs] = await store.outbox.cycle([], clock.now(), 1, ["app"], owner="B")
    notice = NewNotification("firing", "warning", [], "t", "b", [("hook", "json://x"), ("mail", "mailto://y")])
    await store.alerts.queue(notice, clock.now())
    first, second = await store.alerts.pending()
    assert await store.alerts.claim(first.id, clock.now(), "A")
    assert await store.alerts.claim(second.id, clock.now(), "B")

    await clock.advance(seconds=STALE_AFTER_S + 1)  # B is killed: only A beats on
    await alive.beat()
    states = {r[0]: r[1] for r in await store.db.fetchall("SELECT id, state FROM outbox")}
    alerts = {r[0]: r[1] for r in await store.db.fetchall("SELECT id, status FROM alerts")}
    if store.backend == "sqlite":  # one daemon per file: its dispatchers reset their own file at start
        assert states[theirs.id] == "sending" and alerts[second.id] == "sending"
        assert await store.outbox.reset_sending() == 2
        return
    assert states == {mine.id: "sending", theirs.id: "pending"}
    assert alerts == {first.id: "sending", second.id: "pending"}
    # Handed on: a live member claims B's webhook now (A's own is still its, in flight).
    [again] = await store.outbox.cycle([], clock.now() + timedelta(seconds=1), 5, ["app"], owner="A")
    assert again.id == theirs.id
    assert await store.outbox.reset_sending(clock.now() - timedelta(seconds=STALE_AFTER_S)) == 0  # all A's, live
