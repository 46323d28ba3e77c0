"""
Adaptive cadence over simulated days: the daemon's FakeClock and the sandbox's simulated time
move in step, an hour at a time, with a regular sync after each step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_sync_faults import Rig, make_rig

from shiptrackd.models import TrackingInfo
from shiptrackd.sandbox import Sandbox
from shiptrackd.store.apply import changes

pytestmark = pytest.mark.anyio

STEP_H = 1


async def step_days(rig: Rig, sandbox: Sandbox, days: float) -> list[dict[str, Any]]:
    """Advance both clocks an hour at a time, running a regular sync after each step."""
    runs = []
    for _ in range(int(days * 24 / STEP_H)):
        await rig.clock.advance(hours=STEP_H)
        sandbox.advance(hours=STEP_H)
        runs.append(await rig.engine.run_once("schedule"))
    return runs


async def test_not_yet_in_system_backs_off_and_expires(tmp_path: Path, sandbox: Sandbox) -> None:
    """Numbers the carrier never knows (NY, stuck, 404) are polled less and less, then expire as inactive."""
    async with make_rig(tmp_path, sandbox.base_url, SHIPTRACK_SYNC__CADENCE__EXPIRE_AFTER="3d") as rig:
        ids = await rig.add("1ZNOTYET0001", "1ZLCSTUCK001", "1ZNOTFOUND03")
        await rig.engine.run_once("manual")
        await step_days(rig, sandbox, 2)
        calls_first_two_days = {n: sandbox.stats.requests_for(n) for n in ids}
        await step_days(rig, sandbox, 2)
        for number, shipment_id in ids.items():
            shipment = await rig.shipment(shipment_id)
            assert not shipment.active, number
            assert shipment.schedule_reason.startswith("expired"), number
            assert shipment.next_sync_at is None, number
            # Back-off: a wait of 15% of the shipment's age grows geometrically, so about 20 calls in
            # the first two days rather than 48 hourly ones.
            assert 4 <= calls_first_two_days[number] <= 24, (number, calls_first_two_days[number])
        assert (await rig.shipment(ids["1ZNOTYET0001"])).status_code == "NY"
        assert (await rig.shipment(ids["1ZNOTFOUND03"])).last_error_kind == "not_found"
        # Expired shipments cost nothing more.
        total = sandbox.stats.total
        await step_days(rig, sandbox, 1)
        assert sandbox.stats.total == total
        why = await rig.shipment(ids["1ZLCSTUCK001"])
        assert "after 3d" in why.schedule_reason


async def test_delivered_gets_one_confirming_check_then_stops(tmp_path: Path, sandbox: Sandbox) -> None:
    """A delivered parcel is checked once more a day later and then never again (terminal)."""
    async with make_rig(tmp_path, sandbox.base_url) as rig:
        ids = await rig.add("1ZDELIVERED01")
        sid = ids["1ZDELIVERED01"]
        await rig.engine.run_once("manual")
        first = await rig.shipment(sid)
        assert first.status_code == "DE" and first.active
        assert first.schedule_reason == "delivered: one confirming check"
        await step_days(rig, sandbox, 0.5)
        assert sandbox.stats.requests_for("1ZDELIVERED01") == 1  # not before the day is up
        await step_days(rig, sandbox, 1)
        assert sandbox.stats.requests_for("1ZDELIVERED01") == 2
        done = await rig.shipment(sid)
        assert not done.active and done.next_sync_at is None
        assert done.schedule_reason == "delivered (confirmed): terminal"
        await step_days(rig, sandbox, 2)
        assert sandbox.stats.requests_for("1ZDELIVERED01") == 2


async def test_a_parcel_in_motion_is_followed_to_delivery_with_few_calls(tmp_path: Path, sandbox: Sandbox) -> None:
    """A normal lifecycle is tracked through to delivered with far fewer calls than a fixed 30-minute poll."""
    async with make_rig(tmp_path, sandbox.base_url) as rig:
        ids = await rig.add("1ZLCNORMAL001", "1ZLCEXCEPTION1")
        await rig.engine.run_once("manual")
        runs = await step_days(rig, sandbox, 5)
        for number, shipment_id in ids.items():
            shipment = await rig.shipment(shipment_id)
            assert shipment.status_code == "DE", number
            assert not shipment.active, number
            events = await rig.store.shipments.events(shipment_id)
            assert events[0].status_code == "DE" and len(events) >= 6, number
            calls = sandbox.stats.requests_for(number)
            # About 30 calls each (25 and 30 today); a fixed 30-minute poll needs ~160 to see it confirmed.
            assert calls <= 35, (number, calls)
        assert all(r["outcome"] in ("ok", "partial") for r in runs if r["selected"])
        assert sum(r["failed"] for r in runs) == 0


async def test_an_eventless_not_found_after_scans_keeps_in_transit_on_its_cadence(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """The engine gives a stale answer the kept status's schedule: an eventless UN for a parcel in
    transit past expire_after would expire it as "status unknown"; IT is kept, active, on IT's cadence."""
    async with make_rig(tmp_path, sandbox.base_url, SHIPTRACK_SYNC__CADENCE__EXPIRE_AFTER="3d") as rig:
        sid = (await rig.add("1ZINTRANSIT01"))["1ZINTRANSIT01"]
        await rig.engine.run_once("manual")
        await rig.clock.advance(days=4)
        shipment = await rig.shipment(sid)
        assert shipment.status_code == "IT" and await rig.store.shipments.events(sid)
        result = rig.engine.fetcher.succeeded(
            rig.engine.lane_for(shipment), shipment, TrackingInfo("1ZINTRANSIT01", "UN")
        )
        assert result.next_sync_at is None and result.reason.startswith("expired")  # the answer's own schedule
        out = await rig.store.shipments.apply(None, [result], rig.clock.now())
        assert out.stale == [sid] and changes([result], out) == []  # no status change, no expiry announced
        kept = await rig.shipment(sid)
        assert kept.status_code == "IT" and kept.active and kept.schedule_reason.startswith("in transit: every")
        assert kept.next_sync_at is not None and kept.next_sync_at > rig.clock.now()
