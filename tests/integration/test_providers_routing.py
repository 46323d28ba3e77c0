"""
Two provider accounts in one daemon ([[providers]] in a real config file): ShipEngine and 17TRACK on
the sandbox's two dialects. A shipment goes to the account serving its carrier, or the one named by
its `provider` field, and keeps it; each account is called in its own dialect.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from conftest import SANDBOX_KEY, quiet_daemon_env

from shiptrackd.api.client import ApiClient
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.sandbox.seventeen import PREFIX

pytestmark = pytest.mark.anyio

KEY17 = "TEST_17track_routing"


async def test_shipments_go_to_their_carriers_account_or_the_one_they_name(short_tmp: Path, sandbox: Sandbox) -> None:
    sandbox.seventeen.configure(api_key=KEY17)
    path = short_tmp / "shiptrackd.toml"
    path.write_text(
        f"""
[[providers]]
name = "domestic"
kind = "shipengine"
api_key = "{SANDBOX_KEY}"
base_url = "{sandbox.base_url}"
rate_limit = "none"
default = true

[[providers]]
name = "intl"
kind = "17track"
api_key = "{KEY17}"
base_url = "{sandbox.base_url}{PREFIX}"
rate_limit = "50/s"
concurrency = 2
carriers = ["usps"]
""",
        encoding="utf-8",
    )
    env = quiet_daemon_env(short_tmp, sandbox.base_url)
    env = {k: v for k, v in env.items() if not k.startswith("SHIPTRACK_PROVIDER__")}
    config = load(path, env)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            added = await client.add_shipments(
                [
                    {"carrier_code": "ups", "tracking_number": "1ZINTRANSIT7001"},
                    {"carrier_code": "usps", "tracking_number": "9400INTRANSIT7002"},
                    {"carrier_code": "ups", "tracking_number": "1ZDELIVERED7003", "provider": "intl"},
                    {"carrier_code": "ups", "tracking_number": "1ZNOWHERE7004", "provider": "nowhere"},
                ]
            )
            assert [a.tracking_number for a in added.added] == [
                "1ZINTRANSIT7001",
                "9400INTRANSIT7002",
                "1ZDELIVERED7003",
            ]
            (invalid,) = added.invalid
            assert invalid.index == 3 and "'nowhere' is not configured" in invalid.error
            ids = {a.tracking_number: a.id for a in added.added}
            await client.sync()
            await daemon.engine.wait_idle()
            with anyio.fail_after(10):
                while (await client.shipment(ids["1ZDELIVERED7003"])).status_code is None:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            await daemon.engine.wait_idle()
            shipments = {n: await client.shipment(i) for n, i in ids.items()}
            stats = await client.stats()
        daemon.stop()
    assert shipments["1ZINTRANSIT7001"].provider == "domestic"
    assert shipments["9400INTRANSIT7002"].provider == "intl"
    assert shipments["1ZDELIVERED7003"].provider == "intl"  # named on add, whatever its carrier
    assert shipments["1ZDELIVERED7003"].status_code == "DE"
    assert shipments["1ZDELIVERED7003"].provider_status == "Delivered"
    assert shipments["1ZINTRANSIT7001"].provider_status == "IT"  # ShipEngine's own code, kept as is
    # Each account in its own dialect: one ShipEngine GET, one 17TRACK register + one gettrackinfo for two.
    assert sandbox.stats.requests_for("1ZINTRANSIT7001") == 1
    assert sandbox.seventeen.by_endpoint == {"/register": 1, "/gettrackinfo": 1, "/getquota": 1}  # quota: stats
    assert set(sandbox.seventeen.registered) == {"9400INTRANSIT7002", "1ZDELIVERED7003"}
    assert [p.name for p in stats.providers] == ["domestic", "intl"]
    assert [p.batch_size for p in stats.providers] == [1, 40]
