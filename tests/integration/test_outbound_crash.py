"""
Kill -9 in the middle of dispatching: nothing is lost, order per shipment holds (issue 11, item 3).

A real daemon subprocess, the sandbox, a real receiver verifying signatures with the reference
library. The daemon is killed with SIGKILL while deliveries are in flight, started again on the
same store, and every change must arrive at least once, in order per shipment.
"""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest
from test_lifecycle import daemon_env, daemon_process
from webhook_receivers import Received, Receiver, outbound_toml

from shiptrackd.api.client import ApiClient
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio
SHIPMENTS = 30
ORDER = {"shipment.added": 0, "shipment.status_changed": 1, "shipment.delivered": 2}


@pytest.mark.timeout(180)  # two daemon starts; slow only on a loaded box
async def test_kill_9_mid_dispatch_loses_nothing(short_tmp: Path, sandbox: Sandbox) -> None:
    held = True  # until the kill, the receiver takes only the first half and answers 500 to the rest

    def answer(r: Received) -> tuple[int, dict[str, str]]:
        taken = sum(1 for x in rx.requests if 200 <= x.status < 300)
        return (500, {}) if held and taken >= SHIPMENTS // 2 else (200, {})

    async with Receiver(answer=answer).serve() as rx:
        config = short_tmp / "shiptrackd.toml"
        config.write_text(
            outbound_toml(
                "shop",
                rx.url,
                retry_schedule=[
                    "0s",
                    "50ms",
                    "100ms",
                    "200ms",
                    "400ms",
                    "800ms",
                    "1s",
                    "1s",
                    "1s",
                    "1s",
                    "1s",
                    "1s",
                    "1s",
                ],
            )
        )
        env = daemon_env(short_tmp, sandbox.base_url)
        first_log, second_log = short_tmp / "first.log", short_tmp / "second.log"
        async with daemon_process(env, first_log, "--config", str(config)) as first:
            await first.wait_ready(timeout_s=40)
            async with ApiClient(first.socket) as client:
                numbers = [{"carrier_code": "ups", "tracking_number": f"1ZDELIVERED{i:04}"} for i in range(SHIPMENTS)]
                await client.add_shipments(numbers)
                sandbox.advance(days=10)
                run_id = (await client.sync(force=True)).run_id
                with anyio.fail_after(30):
                    while True:
                        if (await client.run(run_id)).outcome != "running":
                            break
                        await anyio.sleep(0.05)
            await rx.wait_for(SHIPMENTS // 2, timeout_s=60)  # mid-dispatch: some delivered, many still to go
            first.process.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
        before = len(rx.delivered())
        assert before < 3 * SHIPMENTS, "the kill came too late to prove anything"
        held = False
        async with daemon_process(env, second_log, "--config", str(config)) as second:
            await second.wait_ready(timeout_s=40)
            expected = 3 * SHIPMENTS
            with anyio.fail_after(60):
                while len({r.headers["webhook-id"] for r in rx.delivered()}) < expected:
                    await rx.wait_for(len(rx.delivered()) + 1)
            await second.stop()
    got = rx.delivered()
    ids = {r.headers["webhook-id"] for r in got}
    assert len(ids) == 3 * SHIPMENTS  # every change, at least once
    first_seen: dict[str, list[int]] = {}
    for r in got:
        seen = first_seen.setdefault(r.payload["data"]["shipment_id"], [])
        rank = ORDER[r.payload["type"]]
        if rank not in seen:
            seen.append(rank)
    assert all(seen == [0, 1, 2] for seen in first_seen.values())  # in order per shipment
    duplicates = len(got) - len(ids)
    print(f"delivered {len(got)} for {len(ids)} changes: {duplicates} duplicates; {before} before the kill")
