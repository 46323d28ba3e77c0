"""
Shipments added without a carrier (issue 12 item 6): the provider account detects it on registration
(AfterShip `POST /couriers/detect`, 17TRACK's `register`, EasyPost's tracker creation), the daemon
stores and shows it, and `set-carrier` overrides a wrong guess. A real daemon with four accounts
on the sandbox's four dialects; the ctl runs as a real subprocess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import SANDBOX_KEY, quiet_daemon_env
from test_ctl import ctl

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.providers.seventeentrack_wire import CARRIER_IDS
from shiptrackd.sandbox.seventeen import PREFIX as PREFIX17

pytestmark = pytest.mark.anyio


def four_accounts(path: Path, base_url: str) -> None:
    path.write_text(
        f"""
[[providers]]
name = "domestic"
kind = "shipengine"
api_key = "{SANDBOX_KEY}"
base_url = "{base_url}"
rate_limit = "none"
default = true

[[providers]]
name = "as"
kind = "aftership"
api_key = "asat_detect"
base_url = "{base_url}/tracking/2026-07"
rate_limit = "none"
carriers = ["dhl_express"]

[[providers]]
name = "t17"
kind = "17track"
api_key = "t17_detect"
base_url = "{base_url}{PREFIX17}"
rate_limit = "none"
carriers = ["china_post"]

[[providers]]
name = "ez"
kind = "easypost"
api_key = "EZTK_detect"
base_url = "{base_url}/v2"
rate_limit = "none"
carriers = ["royal_mail"]
""",
        encoding="utf-8",
    )


async def synced(client: ApiClient, daemon: Any) -> Any:
    """Sync (joining the run an add may have triggered) and wait for every run to finish."""
    started = await client.sync()
    with anyio.fail_after(15):
        while (run := await client.run(started.run_id)).outcome == "running":  # noqa: ASYNC110
            await anyio.sleep(0.02)
        await daemon.engine.wait_idle()
    return run


async def test_each_detecting_provider_finds_the_carrier_and_an_operator_overrides_it(
    short_tmp: Path, sandbox: Any
) -> None:
    sandbox.aftership.configure({"api_key": "asat_detect"})
    sandbox.seventeen.configure(api_key="t17_detect")
    sandbox.easypost.configure({"api_key": "EZTK_detect"})
    path = short_tmp / "shiptrackd.toml"
    four_accounts(path, sandbox.base_url)
    env = {k: v for k, v in quiet_daemon_env(short_tmp, sandbox.base_url).items() if "PROVIDER__" not in k}
    config = load(path, env)
    sock = config.daemon.socket
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(sock) as client:
            added = await client.add_shipments(
                [
                    {"tracking_number": "1ZDELIVERED0101"},  # no account named: the first that detects (as)
                    {"tracking_number": "9400INTRANSIT0102", "provider": "t17"},
                    {"tracking_number": "EZ2000000002", "provider": "ez"},
                    {"tracking_number": "1ZNODETECT0104"},
                    {"tracking_number": "1ZDELIVERED0105", "provider": "domestic"},  # ShipEngine cannot detect
                ]
            )
            assert [(a.tracking_number, a.carrier_code, a.provider) for a in added.added] == [
                ("1ZDELIVERED0101", "", "as"),
                ("9400INTRANSIT0102", "", "t17"),
                ("EZ2000000002", "", "ez"),
                ("1ZNODETECT0104", "", "as"),
            ]
            (refused,) = added.invalid
            assert (refused.index, refused.code) == (4, "carrier_required")
            assert "'domestic' cannot detect carriers (these can: as, t17, ez)" in refused.error
            ids = {a.tracking_number: a.id for a in added.added}
            pending = await client.shipment(ids["1ZDELIVERED0101"])
            assert (pending.carrier_code, pending.carrier_source) == ("", "pending")

            run = await synced(client, daemon)
            assert run.failed == 1  # the number no courier matches, alone
            got = {n: await client.shipment(i) for n, i in ids.items()}
            as_why = await client.why(ids["1ZDELIVERED0101"])
            stuck_why = await client.why(ids["1ZNODETECT0104"])

            # A wrong guess overridden: the old tracking is deleted at AfterShip, a new one made with the new slug.
            old_ref = got["1ZDELIVERED0101"].provider_ref
            fixed = await client.set_carrier(ids["1ZDELIVERED0101"], "fedex")
            with anyio.fail_after(5):
                while old_ref in sandbox.aftership.trackings:  # noqa: ASYNC110  (deleted in the background)
                    await anyio.sleep(0.02)
            seventeen = await client.set_carrier(ids["9400INTRANSIT0102"], "ups")
            await synced(client, daemon)
            refetched = await client.shipment(ids["1ZDELIVERED0101"])
            twin = await client.add_shipments(
                [{"carrier_code": "ups", "tracking_number": "1ZDELIVERED0101", "provider": "domestic"}]
            )
            with pytest.raises(ApiError) as conflict:  # it would become the first one's twin
                await client.set_carrier(twin.added[0].id, "fedex")
            with pytest.raises(ApiError) as unknown:
                await client.set_carrier("ship_" + "0" * 27, "ups")

            # The ctl: add without a carrier, refused where no account detects; set-carrier by hand.
            refused_ctl = await ctl(sock, "shipments", "add", "--provider", "domestic", "1ZDELIVERED0106")
            set_ctl = await ctl(sock, "shipments", "set-carrier", ids["1ZNODETECT0104"], "dhl_express")
            shown = await client.shipment(ids["1ZNODETECT0104"])
        daemon.stop()

    # Detected by each provider in its own dialect, stored as the shipment's carrier.
    assert (got["1ZDELIVERED0101"].carrier_code, got["1ZDELIVERED0101"].carrier_source) == ("ups", "detected")
    assert got["1ZDELIVERED0101"].status_code == "DE"
    assert (got["9400INTRANSIT0102"].carrier_code, got["9400INTRANSIT0102"].carrier_source) == ("usps", "detected")
    assert (got["EZ2000000002"].carrier_code, got["EZ2000000002"].status_code) == ("usps", "IT")
    assert sorted(sandbox.aftership.detections) == ["1ZDELIVERED0101", "1ZNODETECT0104"]  # fedex: none needed
    assert "carrier: ups, detected by as" in as_why.explanation
    # No courier matched: that shipment alone failed, its carrier still unknown, and `why` says what to do.
    stuck = got["1ZNODETECT0104"]
    assert (stuck.carrier_code, stuck.carrier_source, stuck.last_error_kind) == ("", "pending", "not_found")
    assert "detected no courier" in stuck.last_error
    assert any("set-carrier" in line for line in stuck_why.explanation)
    # The override: stored with what was detected, registered again with the new carrier.
    assert (fixed.carrier_code, fixed.carrier_source, fixed.detected_carrier) == ("fedex", "set", "ups")
    assert (fixed.provider_ref, fixed.schedule_reason) == ("", "carrier set")
    assert refetched.provider_ref not in ("", old_ref)
    assert sandbox.aftership.trackings[refetched.provider_ref].slug == "fedex"
    assert seventeen.detected_carrier == "usps"
    assert sandbox.seventeen.registered["9400INTRANSIT0102"].carrier == CARRIER_IDS["ups"]
    assert conflict.value.http_status == 409
    assert f"{ids['1ZDELIVERED0101']} already tracks fedex 1ZDELIVERED0101" in conflict.value.message
    assert unknown.value.http_status == 404
    assert refused_ctl.code == 1 and "cannot detect carriers" in refused_ctl.err
    assert set_ctl.code == 0 and "is tracked as dhl_express (set by an operator), due now" in set_ctl.out
    assert (shown.carrier_code, shown.carrier_source, shown.detected_carrier) == ("dhl_express", "set", "")
