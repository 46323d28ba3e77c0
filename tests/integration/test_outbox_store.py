"""The transactional outbox on a real SQLite file: rows land with the change, or not at all; claims keep order."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.store import Change, FetchSuccess, Route, Settlement, Store

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EVERYTHING = frozenset({"shipment.added", "shipment.status_changed", "shipment.delivered", "shipment.removed"})


@pytest.fixture
async def store(any_store: Store) -> AsyncIterator[Store]:
    """The outbox on both backends (SQLite file, PostgreSQL), every test's routes set."""
    s = any_store
    s.outbox.routes = (
        Route("all", EVERYTHING),
        Route("delivered-only", frozenset({"shipment.delivered"})),
        Route("fedex", EVERYTHING, carriers=frozenset({"fedex"})),
        Route("exceptions", EVERYTHING, statuses=frozenset({"EX"})),
    )
    yield s


def _info(status: str) -> TrackingInfo:
    event = TrackingEvent(occurred_at=NOW, status_code=status, description=f"now {status}")
    return TrackingInfo(tracking_number="x", status_code=status, status_description=status, events=(event,))


async def _rows(store: Store) -> list[tuple[str, str, str]]:
    rows = await store.db.fetchall("SELECT endpoint, shipment_id, event_type FROM outbox ORDER BY id")
    return [tuple(r) for r in rows]


async def test_a_change_and_its_rows_commit_together_for_every_matching_endpoint(store: Store) -> None:
    added = await store.shipments.add_many([NewShipment("ups", "1Z1")], NOW)
    sid = added.added[0].id
    await store.shipments.apply(None, [FetchSuccess(sid, _info("DE"), None, "delivered")], NOW)
    assert await _rows(store) == [
        ("all", sid, "shipment.added"),
        ("all", sid, "shipment.status_changed"),
        ("all", sid, "shipment.delivered"),
        ("delivered-only", sid, "shipment.delivered"),
    ]
    [body] = [
        r[0] for r in await store.db.fetchall("SELECT body FROM outbox WHERE event_type = 'shipment.delivered' LIMIT 1")
    ]
    assert '"previous_status":null' in body and '"status":"DE"' in body
    await store.shipments.apply(None, [FetchSuccess(sid, _info("DE"), None, "delivered")], NOW)
    assert len(await _rows(store)) == 4  # no change, no row


async def test_a_rolled_back_change_leaves_no_row(store: Store) -> None:
    """The enqueue shares the writer's transaction: when the transaction fails, its rows go with it."""
    added = await store.shipments.add_many([NewShipment("ups", "1Z2")], NOW)
    before = await _rows(store)

    def fn(conn: Any) -> None:
        store.outbox.enqueue(conn, [Change(added.added[0].id, ("shipment.status_changed",))], NOW)
        raise RuntimeError("the change failed after its rows were written")

    with pytest.raises(Exception, match="change failed"):
        await store.db.write(fn)
    assert await _rows(store) == before


async def test_removed_carries_the_last_state_and_filters_apply(store: Store) -> None:
    added = await store.shipments.add_many([NewShipment("fedex", "F1"), NewShipment("ups", "U1")], NOW)
    fid, uid = (a.id for a in added.added)
    await store.shipments.apply(None, [FetchSuccess(uid, _info("EX"), NOW, "x")], NOW)
    assert await store.shipments.remove(fid, NOW)
    rows = await _rows(store)
    assert ("fedex", fid, "shipment.removed") in rows and ("fedex", uid, "shipment.added") not in rows
    assert ("exceptions", uid, "shipment.status_changed") in rows
    assert not [r for r in rows if r[0] == "exceptions" and r[1] == fid]


async def test_claims_keep_order_per_endpoint_and_shipment(store: Store) -> None:
    """Only the oldest undelivered row of a chain is claimed; a dead one releases the next."""
    store.outbox.routes = (Route("all", EVERYTHING),)
    added = await store.shipments.add_many([NewShipment("ups", "A"), NewShipment("ups", "B")], NOW)
    a, b = (x.id for x in added.added)
    await store.shipments.apply(None, [FetchSuccess(a, _info("DE"), None, "d")], NOW)
    first = await store.outbox.cycle([], NOW, 10, ["all"])
    assert [(r.shipment_id, r.event_type) for r in first] == [(a, "shipment.added"), (b, "shipment.added")]
    assert await store.outbox.cycle([], NOW, 10, ["all"]) == []  # heads are in flight: nothing else
    dead = Settlement(first[0].id, "all", 1, NOW, "failed", "dead", None, 500, 3.0, "HTTP 500")
    later = NOW + timedelta(seconds=1)
    retry = Settlement(first[1].id, "all", 1, NOW, "failed", "pending", later, None, 3.0, "reset")
    second = await store.outbox.cycle([dead, retry], NOW, 10, ["all"])
    assert [(r.shipment_id, r.event_type) for r in second] == [(a, "shipment.status_changed")]
    third = await store.outbox.cycle([], later, 10, ["all"])
    assert [(r.shipment_id, r.attempts) for r in third] == [(b, 1)]
    assert await store.outbox.reset_sending() == 2  # a crash now: both go back to pending


async def test_a_notice_row_keeps_which_targets_have_it_through_retries(store: Store) -> None:
    """A failed attempt's delivered targets stay on the row for its retries, an operator's retry included."""
    store.outbox.routes = (Route("notice:support", frozenset({"shipment.added"})),)
    await store.shipments.add_many([NewShipment("ups", "N1")], NOW)
    [row] = await store.outbox.cycle([], NOW, 10, ["notice:support"])
    assert row.targets_done == frozenset()
    later = NOW + timedelta(seconds=5)
    failed = Settlement(row.id, row.endpoint, 1, NOW, "failed", "pending", later, None, 3.0, "1 of 2 targets failed")
    failed = dataclasses.replace(failed, targets_done=frozenset({"aaaaaaaaaaaa"}))
    [again] = await store.outbox.cycle([failed], later, 10, ["notice:support"])
    assert (again.id, again.attempts, again.targets_done) == (row.id, 1, frozenset({"aaaaaaaaaaaa"}))
    dead = Settlement(row.id, row.endpoint, 2, later, "failed", "dead", None, None, 3.0, "1 of 1 targets failed")
    await store.outbox.cycle([dead], later, 0, [])  # no targets_done: the row keeps what it had
    assert await store.outbox.retry(row.id, later)
    [retried] = await store.outbox.cycle([], later, 10, ["notice:support"])
    assert (retried.attempts, retried.targets_done) == (0, frozenset({"aaaaaaaaaaaa"}))
