"""
A real daemon whose `[provider]` is EasyPost or AfterShip, against the sandbox dialects: registered once, polled by ref.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import SANDBOX_KEY, Running, daemon_config

pytestmark = pytest.mark.anyio


async def wait_for_run(client: Any, run_id: int, timeout_s: float = 10.0) -> dict[str, Any]:
    with anyio.fail_after(timeout_s):
        while True:
            run: dict[str, Any] = await client.run(run_id)
            if run["outcome"] != "running":
                return run
            await anyio.sleep(0.02)  # the run record is polled under a deadline


async def start(short_tmp: Path, sandbox: Any, kind: str, prefix: str) -> AsyncIterator[Running]:
    from shiptrackd.api.client import ApiClient
    from shiptrackd.daemon import Daemon

    config = daemon_config(short_tmp, sandbox.base_url + prefix, SHIPTRACK_PROVIDER__NAME=kind)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            yield Running(daemon, client, sandbox, config)
        daemon.stop()


@pytest.fixture
async def easypost(short_tmp: Path, sandbox: Any) -> AsyncIterator[Running]:
    sandbox.easypost.configure({"api_key": SANDBOX_KEY})
    async for running in start(short_tmp, sandbox, "easypost", "/v2"):
        yield running


@pytest.fixture
async def aftership(short_tmp: Path, sandbox: Any) -> AsyncIterator[Running]:
    sandbox.aftership.configure({"api_key": SANDBOX_KEY})
    async for running in start(short_tmp, sandbox, "aftership", "/tracking/2026-07"):
        yield running


async def test_easypost_test_codes_sync_through_the_engine(easypost: Running) -> None:
    """EZ test codes are registered (one tracker each), then read by ref; statuses and raw words are stored."""
    client, sandbox = easypost.client, easypost.sandbox
    codes = {"EZ2000000002": "IT", "EZ4000000004": "DE", "EZ6000000006": "EX", "EZ7000000007": "UN"}
    added = await client.add_shipments([{"carrier_code": "usps", "tracking_number": c} for c in codes])
    ids = {s["tracking_number"]: s["id"] for s in added["added"]}
    run = await wait_for_run(client, (await client.sync())["run_id"])
    assert (run["outcome"], run["failed"]) == ("ok", 0)
    again = await wait_for_run(client, (await client.sync(force=True))["run_id"])
    assert again["failed"] == 0
    for code, status in codes.items():
        shipment = await client.shipment(ids[code])
        assert shipment["status_code"] == status, code
    assert len(sandbox.easypost.trackers) == 4
    assert all(sandbox.stats.by_number[code] == 1 for code in codes)  # created once, read by id after


async def test_aftership_lifecycle_through_the_engine(aftership: Running) -> None:
    """A number is created at AfterShip once, then read by id as it moves to delivered; checkpoints stored once."""
    client, sandbox = aftership.client, aftership.sandbox
    added = await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZLCNORMAL0042"}])
    sid = added["added"][0]["id"]
    await wait_for_run(client, (await client.sync())["run_id"])
    sandbox.advance(days=5)
    for _ in range(2):
        run = await wait_for_run(client, (await client.sync(force=True))["run_id"])
        assert run["failed"] == 0
    shipment = await client.shipment(sid)
    assert shipment["status_code"] == "DE"
    assert len(shipment["events"]) == 8  # the same checkpoints fetched twice are stored once (by hash)
    assert sandbox.stats.by_status[201] == 1 and len(sandbox.aftership.trackings) == 1
