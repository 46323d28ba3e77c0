"""
Stale answers on both backends (issue 10 item 3): an answer older than the stored history, or one
with no events after real scans ("not found"), keeps the stored status, polled or pushed; it is
rescheduled on the kept status's cadence and gives its lease back, as a fresh answer does. An
expiry after a delivery keeps DE unless it brings a newer scan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.store import FetchSuccess, Store

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
IT_NEXT = NOW + timedelta(hours=4)  # what the engine would compute for IT (the kept status)
UN_NEXT = NOW + timedelta(hours=1)  # ... and for the answer's UN
CONFIRM_AT, CONFIRM = NOW + timedelta(days=1), "delivered: one confirming check"
EXPIRED = TrackingInfo("1ZSTALE", "EX", status_detail_code="TRACKING_EXPIRED")


def _history(*statuses: str) -> TrackingInfo:
    """One scan per status, an hour apart; the last one is the shipment's status."""
    events = tuple(
        TrackingEvent(NOW - timedelta(hours=10 - i), f"scan {s}", s, event_code=f"E{i}") for i, s in enumerate(statuses)
    )
    return TrackingInfo("1ZSTALE", statuses[-1], events=events)


def _answer(sid: str, info: TrackingInfo, kept_status: str | None = "IT") -> FetchSuccess:
    """The engine's result: the answer's schedule, and the kept status's should the store keep it."""
    return FetchSuccess(
        sid, info, UN_NEXT, "status unknown: backing off, every 1h", kept=(kept_status, IT_NEXT, "in transit: every 4h")
    )


async def _in_transit(store: Store) -> str:
    """A shipment at IT with two stored scans, due now."""
    (added,) = (await store.shipments.add_many([NewShipment("ups", "1ZSTALE")], NOW)).added
    first = FetchSuccess(added.id, _history("AC", "IT"), NOW, "in transit: every 4h")
    assert (await store.shipments.apply(None, [first], NOW)).changed == [(added.id, None, "IT")]
    return added.id


async def test_an_eventless_not_found_poll_keeps_in_transit_and_moves_on_its_cadence(any_store: Store) -> None:
    """A poll answering UN with no events, after IT with scans, keeps IT, is next due on IT's cadence, and
    gives its lease back: not re-fetched at the lease's expiry."""
    store = any_store
    sid = await _in_transit(store)
    assert [s.id for s in await store.leases.claim_due("A", NOW, NOW, NOW + LEASE, 10)] == [sid]
    out = await store.shipments.apply(None, [_answer(sid, TrackingInfo("1ZSTALE", "UN"))], NOW, owner="A")
    assert out.write_errors == [] and out.stale == [sid] and out.changed == []
    shipment = await store.shipments.get(sid)
    assert shipment is not None
    assert (shipment.status_code, shipment.next_sync_at, shipment.schedule_reason) == (
        "IT",
        IT_NEXT,
        "in transit: every 4h",
    )
    assert shipment.active and len(await store.shipments.events(sid)) == 2
    assert await store.leases.held(NOW) == {}
    expiry = NOW + LEASE
    assert await store.leases.claim_due("B", expiry, expiry, expiry + LEASE, 10) == []  # not due at the expiry


async def test_an_eventless_not_found_push_keeps_in_transit(any_store: Store) -> None:
    """The same eventless UN, pushed: IT kept, the push counted, the kept status's schedule written."""
    store = any_store
    sid = await _in_transit(store)
    pushed = await store.push.apply([_answer(sid, TrackingInfo("1ZSTALE", "UN"))], NOW)
    assert pushed.applied.stale == [sid] and pushed.applied.changed == []
    shipment = await store.shipments.get(sid)
    assert shipment is not None
    assert (shipment.status_code, shipment.next_sync_at, shipment.push_count) == ("IT", IT_NEXT, 1)


async def test_eventless_answers_apply_to_a_new_shipment_and_an_expiry_applies_after_scans(any_store: Store) -> None:
    """No stored history: an eventless UN is the first status; after scans, an eventless EX (an expired
    tracking) still applies, as a status a provider states without a scan."""
    store = any_store
    (added,) = (await store.shipments.add_many([NewShipment("ups", "1ZNEW")], NOW)).added
    out = await store.shipments.apply(None, [_answer(added.id, TrackingInfo("1ZNEW", "UN"), None)], NOW)
    assert out.changed == [(added.id, None, "UN")] and out.stale == []
    shipment = await store.shipments.get(added.id)
    assert shipment is not None and (shipment.status_code, shipment.next_sync_at) == ("UN", UN_NEXT)
    sid = await _in_transit(store)
    expired = FetchSuccess(sid, TrackingInfo("1ZSTALE", "EX", status_detail_code="TRACKING_EXPIRED"), None, "x")
    out = await store.shipments.apply(None, [expired], NOW)
    assert out.changed == [(sid, "IT", "EX")] and out.stale == []


async def test_an_older_history_reschedules_and_releases_its_lease(any_store: Store) -> None:
    """A poll with an older history (events, not eventless) is stale too: next_sync_at moves forward from
    'due now' and the lease is cleared; a lease another owner took over refuses the write."""
    store = any_store
    sid = await _in_transit(store)
    await store.leases.claim_due("A", NOW, NOW, NOW + LEASE, 10)
    assert await store.shipments.count_due(NOW) == 1
    out = await store.shipments.apply(None, [_answer(sid, _history("AC"))], NOW, owner="A")
    assert out.stale == [sid] and out.write_errors == []
    assert await store.shipments.count_due(NOW + timedelta(hours=1)) == 0
    assert await store.leases.held(NOW) == {}
    later = IT_NEXT + LEASE
    assert len(await store.leases.claim_due("A", IT_NEXT, IT_NEXT, IT_NEXT + LEASE, 10)) == 1
    assert len(await store.leases.claim_due("B", later, later, later + LEASE, 10)) == 1  # A's lease expired
    late = await store.shipments.apply(None, [_answer(sid, _history("AC"))], NOW, owner="A")
    assert len(late.write_errors) == 1 and late.stale == []
    assert await store.leases.held(later) == {"B": 1}


async def test_a_stale_poll_leaves_the_schedule_of_a_status_a_push_moved(any_store: Store) -> None:
    """A poll computed its kept schedule for IT, then a push moved the shipment to DE: the stale poll
    keeps DE and the push's schedule (its confirming check), not IT's cadence."""
    store = any_store
    sid = await _in_transit(store)
    delivered = FetchSuccess(
        sid, _history("AC", "IT", "DE"), NOW + timedelta(days=1), "delivered: one confirming check"
    )
    await store.push.apply([delivered], NOW)
    out = await store.shipments.apply(None, [_answer(sid, TrackingInfo("1ZSTALE", "UN"))], NOW)
    assert out.stale == [sid] and out.stale_schedules == {}
    shipment = await store.shipments.get(sid)
    assert shipment is not None
    assert (shipment.status_code, shipment.next_sync_at, shipment.schedule_reason) == (
        "DE",
        NOW + timedelta(days=1),
        "delivered: one confirming check",
    )


async def _delivered(store: Store) -> str:
    """A shipment delivered by a poll (three stored scans), its one confirming check due a day later."""
    sid = await _in_transit(store)
    delivered = FetchSuccess(sid, _history("AC", "IT", "DE"), CONFIRM_AT, CONFIRM)
    assert (await store.shipments.apply(None, [delivered], NOW)).changed == [(sid, "IT", "DE")]
    return sid


def _expired_answer(sid: str, info: TrackingInfo = EXPIRED) -> FetchSuccess:
    """The confirming check's answer: the provider's expiry, scheduled as EX (terminal) or kept as DE."""
    return FetchSuccess(sid, info, None, "expired", kept=("DE", CONFIRM_AT + timedelta(days=1), "delivered: done"))


async def test_an_eventless_expiry_after_a_delivery_keeps_it_delivered(any_store: Store) -> None:
    """The day-later check of a delivered parcel answers an eventless EX ("tracking expired"): DE stays,
    nothing is announced, the kept status's schedule is written and the lease given back."""
    store = any_store
    sid = await _delivered(store)
    assert [s.id for s in await store.leases.claim_ids("A", [sid], NOW, NOW + LEASE)] == [sid]
    out = await store.shipments.apply(None, [_expired_answer(sid)], NOW, owner="A")
    assert out.write_errors == [] and out.changed == [] and out.stale == [sid]
    shipment = await store.shipments.get(sid)
    assert shipment is not None and await store.leases.held(NOW) == {}
    assert (shipment.status_code, shipment.next_sync_at, shipment.schedule_reason) == (
        "DE",
        CONFIRM_AT + timedelta(days=1),
        "delivered: done",
    )
    # The same expiry restating the delivered history, and one pushed: DE stays too.
    again = _expired_answer(sid, TrackingInfo("1ZSTALE", "EX", events=_history("AC", "IT", "DE").events))
    assert (await store.shipments.apply(None, [again], NOW)).stale == [sid]
    pushed = await store.push.apply([_expired_answer(sid)], NOW)
    assert pushed.applied.stale == [sid] and pushed.applied.changed == []
    shipment = await store.shipments.get(sid)
    assert shipment is not None and shipment.status_code == "DE"


async def test_an_exception_with_a_scan_after_the_delivery_still_applies(any_store: Store) -> None:
    """Returned to sender after a delivery: an EX with a scan newer than the DE moves it, polled or pushed."""
    store = any_store
    sid = await _delivered(store)
    returned = _expired_answer(sid, _history("AC", "IT", "DE", "EX"))
    out = await store.shipments.apply(None, [returned], NOW)
    assert out.changed == [(sid, "DE", "EX")] and out.stale == []
    other = await _delivered_other(store)
    pushed = await store.push.apply([_expired_answer(other, _history("AC", "IT", "DE", "EX"))], NOW)
    assert pushed.applied.changed == [(other, "DE", "EX")]


async def _delivered_other(store: Store) -> str:
    (added,) = (await store.shipments.add_many([NewShipment("ups", "1ZOTHER")], NOW)).added
    delivered = FetchSuccess(added.id, _history("AC", "IT", "DE"), CONFIRM_AT, CONFIRM)
    assert (await store.shipments.apply(None, [delivered], NOW)).changed == [(added.id, None, "DE")]
    return added.id
