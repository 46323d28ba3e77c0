"""
The push store on both backends (SQLite file, PostgreSQL server): a pushed answer goes through the
poll's writer and is counted in the same transaction; older answers merge events without moving
the status; subscriptions queue, end on DE/EX and come back after an exception.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.store import FetchSuccess, Route, Store
from shiptrackd.store.push import Elsewhere, PushBatchItem, PushWrite
from shiptrackd.store.rows import Shipment

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _history(*statuses: str) -> TrackingInfo:
    """A history of one scan per status, an hour apart; the last one is the shipment's status."""
    events = tuple(
        TrackingEvent(NOW + timedelta(hours=i), f"scan {s}", s, event_code=f"E{i}") for i, s in enumerate(statuses)
    )
    return TrackingInfo("1ZPUSH", statuses[-1], events=events)


async def test_pushes_write_once_and_never_move_a_status_back(any_store: Store) -> None:
    """The same push twice adds nothing; an older history after a newer one keeps the newer status."""
    store = any_store
    (added,) = (await store.shipments.add_many([NewShipment("ups", "1ZPUSH")], NOW)).added
    sid = added.id
    assert [s.id for s in await store.push.find("1ZPUSH")] == [sid]
    later = NOW + timedelta(hours=5)
    first = await store.push.apply([FetchSuccess(sid, _history("AC", "IT"), later, "push: safety poll every 1d")], NOW)
    assert first.applied.changed == [(sid, None, "IT")]
    again = await store.push.apply([FetchSuccess(sid, _history("AC", "IT"), later, "push")], NOW)
    assert again.applied.changed == [] and again.applied.unchanged == 1
    older = await store.push.apply([FetchSuccess(sid, _history("AC"), later, "push")], NOW)
    assert older.applied.stale == [sid] and older.applied.changed == []
    shipment = await store.shipments.get(sid)
    assert shipment is not None
    assert (shipment.status_code, shipment.push_count) == ("IT", 3)
    assert shipment.last_push_at is not None and shipment.subscribed_at is not None
    assert len(await store.shipments.events(sid)) == 2
    assert await store.push.count_subscribed() == 1
    assert await store.push.last_push_at() == NOW


async def test_subscriptions_queue_end_on_delivery_and_return_after_an_exception(any_store: Store) -> None:
    """to_subscribe lists the unsubscribed active ones; DE ends a subscription for good, EX until resubscribed."""
    store = any_store
    result = await store.shipments.add_many([NewShipment("ups", f"1ZSUB{i}") for i in range(3)], NOW)
    ids = sorted(a.id for a in result.added)  # one millisecond: ids sort by their random part
    assert [s.id for s in await store.push.to_subscribe(10)] == ids
    assert await store.push.mark_subscribed(ids, NOW) == 3
    assert await store.push.to_subscribe(10) == []
    later = NOW + timedelta(hours=5)
    await store.push.apply([FetchSuccess(ids[0], _history("IT", "DE"), later, "delivered")], NOW)
    await store.push.apply([FetchSuccess(ids[1], _history("IT", "EX"), later, "exception")], NOW)
    # DE and EX end the provider's pushes: both unsubscribed; only the exception is queued again.
    assert [s.id for s in await store.push.to_subscribe(10)] == [ids[1]]
    await store.push.mark_subscribed([ids[1]], NOW + timedelta(minutes=1))
    assert await store.push.forget_auto_stopped() == 0  # subscribed after the exception: it stands
    assert await store.push.count_subscribed_by_status() == {"EX": 1, "none": 1}
    await store.shipments.remove(ids[2])
    assert await store.push.count_subscribed() == 1


async def test_shipments_another_account_tracks_are_never_subscribed_here(any_store: Store) -> None:
    """to_subscribe leaves out another account's shipments (its own, or its carrier's route while it has none);
    to_unsubscribe lists those subscribed all the same (a daemon before this rule subscribed them)."""
    store = any_store
    rows = [
        NewShipment("ups", "1ZMINE"),
        NewShipment("usps", "9400ROUTED"),  # usps goes to 17track: not ours though no account answered yet
        NewShipment("", "1ZDETECT", provider="17track"),  # added for 17track to detect its carrier
        NewShipment("usps", "9400KEPT"),  # tracked here before usps was routed away: it stays here
    ]
    ids = {a.tracking_number: a.id for a in (await store.shipments.add_many(rows, NOW)).added}
    await store.shipments.set_provider([(ids["9400KEPT"], "shipengine", "")], NOW)
    elsewhere = Elsewhere(accounts=("17track",), carriers=("usps",))
    assert sorted(s.tracking_number for s in await store.push.to_subscribe(10, elsewhere)) == ["1ZMINE", "9400KEPT"]
    assert len(await store.push.to_subscribe(10)) == 4  # one account: it tracks them all
    await store.push.mark_subscribed(list(ids.values()), NOW)
    gone = await store.push.to_unsubscribe(10, elsewhere)
    assert sorted(s.tracking_number for s in gone) == ["1ZDETECT", "9400ROUTED"]
    assert await store.push.to_unsubscribe(10) == []


async def test_a_pushed_change_is_announced_like_a_polled_one(any_store: Store) -> None:
    """A push that changes a status writes its outbox rows in its own transaction; a resent push writes none."""
    store = any_store
    store.outbox.routes = (Route("app", frozenset({"shipment.status_changed", "shipment.delivered"})),)
    (added,) = (await store.shipments.add_many([NewShipment("ups", "1ZPUSH")], NOW)).added
    later = NOW + timedelta(hours=5)
    await store.push.apply([FetchSuccess(added.id, _history("IT", "DE"), later, "push")], NOW)
    await store.push.apply([FetchSuccess(added.id, _history("IT", "DE"), later, "push")], NOW)  # resent
    rows = await store.db.fetchall("SELECT endpoint, shipment_id, event_type FROM outbox ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("app", added.id, "shipment.status_changed"),
        ("app", added.id, "shipment.delivered"),
    ]


def _info(number: str, *statuses: str) -> TrackingInfo:
    return TrackingInfo(number, statuses[-1], events=_history(*statuses).events)


async def test_a_batch_of_pushes_commits_together_and_one_that_fails_fails_alone(any_store: Store) -> None:
    """
    Group commit: several pushes in one transaction, each in its own savepoint. A push whose write
    raises (here a bug in its cadence rule) gets its exception back and leaves no trace; the
    others, before and after it, commit; a number no shipment has is reported unmatched.
    """
    store = any_store
    result = await store.shipments.add_many([NewShipment("ups", n) for n in ("1ZBA", "1ZBB", "1ZBC")], NOW)
    ids = {a.tracking_number: a.id for a in result.added}
    later = NOW + timedelta(hours=5)

    def decide(shipment: Shipment, info: TrackingInfo) -> FetchSuccess:
        if info.tracking_number == "1ZBB":
            raise ValueError("a bug in this push's path")
        return FetchSuccess(shipment.id, info, later, "push")

    items = [PushBatchItem([("ups", n, _info(n, "AC", "IT"))], NOW, decide) for n in ("1ZBA", "1ZBB", "1ZBC", "1ZNONE")]
    a, b, c, unknown = await store.push.write_batch(items)
    assert isinstance(a, PushWrite) and a.shipment_ids == [ids["1ZBA"]] and a.applied.changed[0][2] == "IT"
    assert isinstance(b, ValueError)
    assert isinstance(c, PushWrite) and c.shipment_ids == [ids["1ZBC"]]
    assert isinstance(unknown, PushWrite) and unknown.unmatched == ["1ZNONE"] and unknown.shipment_ids == []
    for number, status, count, events in (("1ZBA", "IT", 1, 2), ("1ZBB", None, 0, 0), ("1ZBC", "IT", 1, 2)):
        shipment = await store.shipments.get(ids[number])
        assert shipment is not None
        assert (shipment.status_code, shipment.push_count) == (status, count), number
        assert len(await store.shipments.events(ids[number])) == events, number


async def test_two_pushes_for_one_shipment_in_one_batch_apply_in_order(any_store: Store) -> None:
    """The second push of a batch sees the first one's write: an older history after a newer one is stale."""
    store = any_store
    (added,) = (await store.shipments.add_many([NewShipment("ups", "1ZPUSH")], NOW)).added
    later = NOW + timedelta(hours=5)

    def decide(shipment: Shipment, info: TrackingInfo) -> FetchSuccess:
        return FetchSuccess(shipment.id, info, later, "push")

    newer = PushBatchItem([("ups", "1ZPUSH", _history("AC", "IT", "OD"))], NOW, decide)
    older = PushBatchItem([("ups", "1ZPUSH", _history("AC", "IT"))], NOW, decide)
    first, second = await store.push.write_batch([newer, older])
    assert isinstance(first, PushWrite) and first.applied.changed == [(added.id, None, "OD")]
    assert isinstance(second, PushWrite) and second.applied.stale == [added.id] and second.applied.changed == []
    shipment = await store.shipments.get(added.id)
    assert shipment is not None and (shipment.status_code, shipment.push_count) == ("OD", 2)
