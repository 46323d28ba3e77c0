"""
Figures per provider account (issue 12 item 5): `status`, `stats`, `/metrics` and the health report show
each account's own requests, 429s, errors and circuit, and a failing account is named. A real daemon
with a ShipEngine and a 17TRACK account on the sandbox; the 17TRACK key is wrong.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from conftest import SANDBOX_KEY, quiet_daemon_env
from prometheus_client.parser import text_string_to_metric_families

from shiptrackd.api.client import ApiClient
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.sandbox.seventeen import PREFIX as PREFIX17

pytestmark = pytest.mark.anyio


async def test_each_account_has_its_own_figures_and_a_failing_one_is_named(short_tmp: Path, sandbox: Sandbox) -> None:
    sandbox.seventeen.configure(api_key="the_real_17track_key")
    path = short_tmp / "shiptrackd.toml"
    path.write_text(
        f"""
[[providers]]
name = "domestic"
kind = "shipengine"
api_key = "{SANDBOX_KEY}"
base_url = "{sandbox.base_url}"
rate_limit = "10/s"
default = true

[[providers]]
name = "intl"
kind = "17track"
api_key = "a_wrong_17track_key"
base_url = "{sandbox.base_url}{PREFIX17}"
carriers = ["usps"]
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in quiet_daemon_env(short_tmp, sandbox.base_url).items() if "PROVIDER__" not in k}
    config = load(path, env)
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            await client.add_shipments(
                [
                    {"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0301"},
                    {"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0302"},
                    {"carrier_code": "usps", "tracking_number": "9400INTRANSIT0303"},
                ]
            )
            await client.sync()
            await daemon.engine.wait_idle()
            status = await client.status()
            stats = await client.stats()
            report = await client.health(fresh=True)
            transport = httpx.AsyncHTTPTransport(uds=str(config.daemon.socket))
            async with httpx.AsyncClient(transport=transport) as http:
                scraped = (await http.get("http://shiptrackd/metrics")).text
        daemon.stop()

    assert status.provider.name == "domestic"  # the default account, not the unused [provider] table
    domestic, intl = status.providers
    assert (domestic.name, domestic.kind, intl.name, intl.kind) == ("domestic", "shipengine", "intl", "17track")
    assert (domestic.requests, domestic.errors, domestic.circuit) == (2, 0, "closed")
    assert intl.requests >= 1 and intl.errors == intl.requests and intl.rate_limited == 0
    figures = {p.name: p for p in stats.providers}
    assert figures["intl"].by_error == {"unauthorized": figures["intl"].requests}
    assert figures["domestic"].requests == 2 and stats.api.requests == 2 + figures["intl"].requests
    assert stats.forecast.rate_limit_per_hour == (10 + 3) * 3600  # both accounts; 17TRACK's documented 3/s

    api = next(c for c in report.checks if c.name == "api_connectivity")
    assert api.level == "critical"
    assert api.message == "intl: the API rejected the key (HTTP 401): check the api_key of [[providers]] 'intl'"
    assert api.details["provider"] == "intl" and api.details["accounts"]["domestic"]["level"] == "ok"

    samples = {
        (s.name, s.labels.get("provider"), s.labels.get("kind")): s.value
        for fam in text_string_to_metric_families(scraped)
        if fam.name.startswith("shiptrackd_account_")
        for s in fam.samples
    }
    assert samples[("shiptrackd_account_requests_total", "domestic", None)] >= 2
    assert samples[("shiptrackd_account_errors_total", "intl", "unauthorized")] >= 2
    assert samples[("shiptrackd_account_errors_total", "domestic", "unauthorized")] == 0
    assert samples[("shiptrackd_account_circuit_open", "intl", None)] == 0
