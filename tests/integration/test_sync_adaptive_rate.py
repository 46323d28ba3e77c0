"""
Configured above the account's real limit, against the sandbox's token bucket: the pace comes
down to what the account allows, the 429s stay few, and no shipment fails for rate limiting.

The throttle runs on the event loop's clock, not the engine's FakeClock, so these use small real
limits and a deadline; how close to the limit the pace settles is measured in
bench/bench_adaptive_rate.py, not here.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from test_sync_faults import make_rig

from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio

DEADLINE_S = 30  # ~9 s here with the cuts; the fixed pace of today needed 28 s and 159 429s


@pytest.mark.parametrize("quota_headers", [False, True], ids=["retry-after-only", "x-ratelimit-headers"])
async def test_configured_far_above_the_real_limit_no_shipment_fails_and_429s_stay_few(
    tmp_path: Path, sandbox: Sandbox, quota_headers: bool
) -> None:
    """At 8x the account's limit the pace is cut to it: every shipment synced, none failed or deferred, few 429s."""
    # 50/s with a burst of 5: a pace above it empties the bucket within a few requests, and each
    # Retry-After (1 s) refills only 5, so a pace that does not come down crawls at ~6/s.
    sandbox.configure(rate_limit="50/s", burst=5, quota_headers=quota_headers)
    async with make_rig(
        tmp_path,
        sandbox.base_url,
        SHIPTRACK_PROVIDER__RATE_LIMIT="400/s",
        SHIPTRACK_PROVIDER__CONCURRENCY="8",
    ) as rig:
        await rig.add(*(f"1ZINTRANSIT{i:04}" for i in range(200)))
        with anyio.fail_after(DEADLINE_S):
            run = await rig.engine.run_once("manual")
        errors = rig.rows("SELECT kind, count(*) AS n FROM sync_errors GROUP BY kind")
        controller = rig.engine.throttle.controller

    refused = sandbox.stats.by_status[429]
    assert (run["updated"], run["failed"], run["skipped"], run["outcome"]) == (200, 0, 0, "ok")
    assert errors == []
    assert run["rate_limited"] == refused
    assert refused <= 12  # a few cuts from 400/s down to 50/s; the fixed pace of today met 159 in 28 s
    assert controller.rate is not None and controller.rate < 60  # it found the limit, not the configured 400/s
    assert sandbox.stats.total == 200 + refused
