"""
A push that lands while a poll holds the shipment's lease (both backends). The push is not the
lease's holder: it leaves the lease alone, so the poll's write still lands (fresh, or stale and
rescheduled by the rules of store/apply.py) instead of failing as "lease lost", no other daemon
claims the shipment meanwhile, and each real status change is announced once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.store import FetchSuccess, Route, Store

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
PUSH_NEXT = NOW + timedelta(days=1)
POLL_NEXT = NOW + timedelta(hours=4)
EVENTS = ("shipment.status_changed", "shipment.delivered")


def _history(number: str, *statuses: str) -> TrackingInfo:
    """One scan per status, an hour apart from ten hours ago; the last one is the shipment's status."""
    events = tuple(
        TrackingEvent(NOW - timedelta(hours=10 - i), f"scan {s}", s, event_code=f"E{i}") for i, s in enumerate(statuses)
    )
    return TrackingInfo(number, statuses[-1], events=events)


async def _claimed(store: Store, *numbers: str) -> list[str]:
    """Shipments at IT with two stored scans, claimed by poll "A"; the outbox routes changes from then on."""
    added = (await store.shipments.add_many([NewShipment("ups", n) for n in numbers], NOW)).added
    first = [FetchSuccess(a.id, _history(a.tracking_number, "AC", "IT"), NOW, "due") for a in added]
    assert len((await store.shipments.apply(None, first, NOW)).changed) == len(numbers)
    store.outbox.routes = (Route("app", frozenset(EVENTS)),)
    claimed = await store.leases.claim_due("A", NOW, NOW, NOW + LEASE, 10)
    assert sorted(s.id for s in claimed) == sorted(a.id for a in added)
    return [a.id for a in added]


async def _outbox(store: Store) -> list[tuple[str, str]]:
    rows = await store.db.fetchall("SELECT shipment_id, event_type FROM outbox ORDER BY id")
    return [(r[0], r[1]) for r in rows]


async def test_a_push_keeps_the_polls_lease_and_the_polls_same_answer_lands(any_store: Store) -> None:
    """A push moves one of A's two claimed shipments to DE; A's lease stays, B cannot claim it, and A's
    poll with the same history then writes both (no "lease lost", no second announcement)."""
    store = any_store
    one, two = await _claimed(store, "1ZONE", "1ZTWO")
    pushed = await store.push.apply([FetchSuccess(one, _history("1ZONE", "AC", "IT", "DE"), PUSH_NEXT, "push")], NOW)
    assert pushed.applied.changed == [(one, "IT", "DE")]
    assert await store.leases.held(NOW) == {"A": 2}
    assert await store.leases.claim_ids("B", [one], NOW, NOW + LEASE) == []
    poll = [
        FetchSuccess(one, _history("1ZONE", "AC", "IT", "DE"), POLL_NEXT, "delivered: poll"),
        FetchSuccess(two, _history("1ZTWO", "AC", "IT"), POLL_NEXT, "in transit: poll"),
    ]
    out = await store.shipments.apply(None, poll, NOW, owner="A")
    assert out.write_errors == [] and out.changed == [] and out.stale == []
    assert await store.leases.held(NOW) == {}
    assert await _outbox(store) == [(one, "shipment.status_changed"), (one, "shipment.delivered")]
    shipment = await store.shipments.get(one)
    assert shipment is not None and (shipment.status_code, shipment.push_count) == ("DE", 1)


async def test_an_older_poll_after_a_push_is_stale_keeps_the_push_and_releases(any_store: Store) -> None:
    """A's poll fetched before the push's DE: its older answer is judged stale (DE and the push's
    schedule kept) and written, giving the lease back; nothing is announced twice."""
    store = any_store
    (sid,) = await _claimed(store, "1ZOLD")
    await store.push.apply([FetchSuccess(sid, _history("1ZOLD", "AC", "IT", "DE"), PUSH_NEXT, "push")], NOW)
    older = FetchSuccess(sid, _history("1ZOLD", "AC", "IT"), POLL_NEXT, "x", kept=("IT", POLL_NEXT, "in transit"))
    out = await store.shipments.apply(None, [older], NOW, owner="A")
    assert out.write_errors == [] and out.stale == [sid] and out.stale_schedules == {}
    assert await store.leases.held(NOW) == {}
    shipment = await store.shipments.get(sid)
    assert shipment is not None
    assert (shipment.status_code, shipment.next_sync_at, shipment.schedule_reason) == ("DE", PUSH_NEXT, "push")
    assert await _outbox(store) == [(sid, "shipment.status_changed"), (sid, "shipment.delivered")]


async def test_a_newer_poll_after_a_push_applies_and_announces_its_own_change(any_store: Store) -> None:
    """The push said OD, A's poll (fetched later) says DE: the poll's change lands and is announced once."""
    store = any_store
    (sid,) = await _claimed(store, "1ZNEW")
    await store.push.apply([FetchSuccess(sid, _history("1ZNEW", "AC", "IT", "OD"), PUSH_NEXT, "push")], NOW)
    newer = FetchSuccess(sid, _history("1ZNEW", "AC", "IT", "OD", "DE"), None, "delivered")
    out = await store.shipments.apply(None, [newer], NOW, owner="A")
    assert out.write_errors == [] and out.changed == [(sid, "OD", "DE")]
    assert await _outbox(store) == [
        (sid, "shipment.status_changed"),
        (sid, "shipment.status_changed"),
        (sid, "shipment.delivered"),
    ]


async def test_a_lease_a_push_left_alone_still_expires(any_store: Store) -> None:
    """A dies after the push: its lease is not left forever, B takes the shipment over at the expiry."""
    store = any_store
    (sid,) = await _claimed(store, "1ZDEAD")
    await store.push.apply([FetchSuccess(sid, _history("1ZDEAD", "AC", "IT", "OD"), NOW, "push: due now")], NOW)
    assert await store.leases.claim_due("B", NOW, NOW + LEASE - timedelta(seconds=1), NOW + 2 * LEASE, 10) == []
    taken = await store.leases.claim_due("B", NOW, NOW + LEASE, NOW + 2 * LEASE, 10)
    assert [s.id for s in taken] == [sid] and await store.leases.held(NOW + LEASE) == {"B": 1}
    dead = FetchSuccess(sid, _history("1ZDEAD", "AC", "IT"), NOW, "x")
    late = await store.shipments.apply(None, [dead], NOW, owner="A")
    assert len(late.write_errors) == 1 and await store.leases.held(NOW + LEASE) == {"B": 1}


async def test_a_poll_that_finds_what_a_push_wrote_keeps_the_push_regime(any_store: Store) -> None:
    """A subscribed shipment: A's poll was scheduled from IT, so its OD answer says "push missed"; but a
    push reported OD while the poll was in flight, so the push's schedule and flag stay, nothing announced twice."""
    store = any_store
    (sid,) = await _claimed(store, "1ZSUB")
    history = _history("1ZSUB", "AC", "IT", "OD")
    await store.push.apply([FetchSuccess(sid, history, PUSH_NEXT, "push: safety poll every 1d")], NOW)
    missed = "push overdue: out for delivery"
    poll = FetchSuccess(sid, history, POLL_NEXT, missed, push_missed=True, kept=("IT", POLL_NEXT, "in transit"))
    out = await store.shipments.apply(None, [poll], NOW, owner="A")
    assert out.write_errors == [] and out.changed == [] and out.stale == [sid]
    shipment = await store.shipments.get(sid)
    assert shipment is not None and await store.leases.held(NOW) == {}
    assert (shipment.status_code, shipment.next_sync_at, shipment.schedule_reason, shipment.push_missed) == (
        "OD",
        PUSH_NEXT,
        "push: safety poll every 1d",
        False,
    )
    assert await _outbox(store) == [(sid, "shipment.status_changed")]


async def test_a_push_clears_an_expired_lease(any_store: Store) -> None:
    """A died holding the lease; a push delivering the shipment after the expiry clears it (as it always
    did): a terminal row is never claimed again and would otherwise name the dead owner forever."""
    store = any_store
    (sid,) = await _claimed(store, "1ZGONE")
    after = NOW + LEASE
    await store.push.apply([FetchSuccess(sid, _history("1ZGONE", "AC", "IT", "DE"), None, "delivered")], after)
    assert await store.leases.held(NOW) == {}
    row = await store.db.fetchone("SELECT lease_owner, lease_until FROM shipments WHERE id = ?", (sid,))
    assert row is not None and tuple(row) == ("", None)
