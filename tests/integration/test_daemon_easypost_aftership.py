"""
A real daemon whose `[provider]` is EasyPost or AfterShip, against the sandbox dialects: registered once, polled by ref.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from conftest import SANDBOX_KEY, Running, daemon_config, quiet_daemon_env

from shiptrackd.api.client import ApiClient
from shiptrackd.sandbox import Sandbox
from shiptrackd.wire.answers import RunDetail

pytestmark = pytest.mark.anyio


async def wait_for_run(client: ApiClient, run_id: int, timeout_s: float = 10.0) -> RunDetail:
    with anyio.fail_after(timeout_s):
        while True:
            run = await client.run(run_id)
            if run.outcome != "running":
                return run
            await anyio.sleep(0.02)  # the run record is polled under a deadline


async def start(short_tmp: Path, sandbox: Sandbox, kind: str, prefix: str) -> AsyncIterator[Running]:
    from shiptrackd.daemon import Daemon

    config = daemon_config(short_tmp, sandbox.base_url + prefix, SHIPTRACK_PROVIDER__NAME=kind)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            yield Running(daemon, client, sandbox, config)
        daemon.stop()


@pytest.fixture
async def easypost(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Running]:
    sandbox.easypost.configure({"api_key": SANDBOX_KEY})
    async for running in start(short_tmp, sandbox, "easypost", "/v2"):
        yield running


@pytest.fixture
async def aftership(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Running]:
    sandbox.aftership.configure({"api_key": SANDBOX_KEY})
    async for running in start(short_tmp, sandbox, "aftership", "/tracking/2026-07"):
        yield running


async def test_easypost_test_codes_sync_through_the_engine(easypost: Running) -> None:
    """EZ test codes are registered (one tracker each), then read by ref; statuses and raw words are stored."""
    client, sandbox = easypost.client, easypost.sandbox
    codes = {"EZ2000000002": "IT", "EZ4000000004": "DE", "EZ6000000006": "EX", "EZ7000000007": "UN"}
    added = await client.add_shipments([{"carrier_code": "usps", "tracking_number": c} for c in codes])
    ids = {s.tracking_number: s.id for s in added.added}
    run = await wait_for_run(client, (await client.sync()).run_id)
    assert (run.outcome, run.failed) == ("ok", 0)
    again = await wait_for_run(client, (await client.sync(force=True)).run_id)
    assert again.failed == 0
    for code, status in codes.items():
        shipment = await client.shipment(ids[code])
        assert shipment.status_code == status, code
    assert len(sandbox.easypost.trackers) == 4
    assert all(sandbox.stats.by_number[code] == 1 for code in codes)  # created once, read by id after


async def test_aftership_lifecycle_through_the_engine(aftership: Running) -> None:
    """A number is created at AfterShip once, then read by id as it moves to delivered; checkpoints stored once."""
    client, sandbox = aftership.client, aftership.sandbox
    added = await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZLCNORMAL0042"}])
    sid = added.added[0].id
    await wait_for_run(client, (await client.sync()).run_id)
    sandbox.advance(days=5)
    for _ in range(2):
        run = await wait_for_run(client, (await client.sync(force=True)).run_id)
        assert run.failed == 0
    shipment = await client.shipment(sid)
    assert shipment.status_code == "DE"
    assert len(shipment.events) == 8  # the same checkpoints fetched twice are stored once (by hash)
    assert sandbox.stats.by_status[201] == 1 and len(sandbox.aftership.trackings) == 1


async def test_easypost_and_aftership_accounts_side_by_side(short_tmp: Path, sandbox: Sandbox) -> None:
    """[[providers]]: USPS parcels go to an EasyPost account, the rest to AfterShip, each spoken to in its dialect."""
    from shiptrackd.api.client import ApiClient
    from shiptrackd.config import load
    from shiptrackd.daemon import Daemon

    sandbox.easypost.configure({"api_key": "EZTK_side"})
    sandbox.aftership.configure({"api_key": "asat_side"})
    path = short_tmp / "shiptrackd.toml"
    path.write_text(
        f"""
[[providers]]
name = "ez"
kind = "easypost"
api_key = "EZTK_side"
base_url = "{sandbox.base_url}/v2"
rate_limit = "none"
carriers = ["usps"]

[[providers]]
name = "as"
kind = "aftership"
api_key = "asat_side"
base_url = "{sandbox.base_url}/tracking/2026-07"
rate_limit = "5/s"
default = true
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in quiet_daemon_env(short_tmp, sandbox.base_url).items() if "PROVIDER__" not in k}
    config = load(path, env)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            added = await client.add_shipments(
                [
                    {"carrier_code": "usps", "tracking_number": "EZ4000000004"},
                    {"carrier_code": "ups", "tracking_number": "1ZDELIVERED0042"},
                ]
            )
            ids = {a.tracking_number: a.id for a in added.added}
            run = await wait_for_run(client, (await client.sync()).run_id)
            assert run.failed == 0
            await daemon.engine.wait_idle()
            shipments = {n: await client.shipment(i) for n, i in ids.items()}
        daemon.stop()
    assert (shipments["EZ4000000004"].provider, shipments["EZ4000000004"].status_code) == ("ez", "DE")
    assert shipments["EZ4000000004"].provider_status == "delivered"
    assert (shipments["1ZDELIVERED0042"].provider, shipments["1ZDELIVERED0042"].status_code) == ("as", "DE")
    assert shipments["1ZDELIVERED0042"].provider_status == "Delivered"
    assert list(sandbox.easypost.trackers.values())[0].code == "EZ4000000004"
    assert [t.number for t in sandbox.aftership.trackings.values()] == ["1ZDELIVERED0042"]
