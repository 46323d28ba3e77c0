"""
Pushes with two provider accounts (ShipEngine the default, pushing; 17TRACK for USPS, as --demo runs
them): ShipEngine is asked to push only its own parcels, and a push it sends for another account's
parcel all the same is written nowhere. ShipEngine pushes a parcel as it saw it from its
subscription on, "not yet in system" with a label scan newer than 17TRACK's real history: written,
it moved the status back and made 17TRACK's later answers look stale.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from conftest import daemon_config

from shiptrackd.api.client import ApiClient
from shiptrackd.daemon import Daemon
from shiptrackd.demo import DEMO_17TRACK_KEY, DEMO_KEY, free_port, pointed_at
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio
T = TypeVar("T")

OURS = "1ZLCNORMAL0000042"  # ups: the default account's (ShipEngine)
THEIRS = "9400LCNORMAL0000000042"  # usps: routed to the 17track account


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 10.0) -> T:
    with anyio.fail_after(timeout_s):
        while True:
            if result := await check():
                return result
            await anyio.sleep(0.02)


async def test_shipengine_pushes_only_the_parcels_its_account_tracks(short_tmp: Path) -> None:
    """17TRACK's parcel is never subscribed with ShipEngine, and a ShipEngine push for it changes nothing."""
    async with Sandbox(api_key=DEMO_KEY, time_scale=0).serve() as sandbox:
        sandbox.seventeen.configure(api_key=DEMO_17TRACK_KEY)
        sandbox.configure(push_retry_s=0.05)
        config = pointed_at(daemon_config(short_tmp, sandbox.base_url), sandbox.base_url, free_port())
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, handle_signals=False).run)
            assert daemon.push is not None and daemon.push.address
            sandbox.push.register_webhook({"event": "track", "url": f"http://{daemon.push.address}/hooks/shipengine"})
            async with ApiClient(config.daemon.socket) as client:
                added = await client.add_shipments(
                    [
                        {"carrier_code": "ups", "tracking_number": OURS},
                        {"carrier_code": "usps", "tracking_number": THEIRS},
                    ]
                )
                ours, theirs = (a.id for a in added.added)

                async def pushed_ours() -> bool:
                    return (await client.shipment(ours)).push_count > 0

                await eventually(pushed_ours)  # subscribed, and its first push written
                assert set(sandbox.push.subscriptions) == {("ups", OURS)}
                before = await client.shipment(theirs)
                assert before.subscribed_at is None

                sandbox.push.start("usps", THEIRS)  # as a daemon before this rule subscribed it

                async def answered() -> list[int | None]:
                    return [a for d in sandbox.push.deliveries if d.tracking_number == THEIRS for a in d.answers]

                assert await eventually(answered) == [200]  # taken (no redelivery), matched to nothing
                after = await client.shipment(theirs)
                status = await client.webhooks()
            daemon.stop()
    assert (after.status_code, after.push_count, after.events) == (before.status_code, 0, before.events)
    assert (status.totals or {}).get("unknown_shipment") == 1
