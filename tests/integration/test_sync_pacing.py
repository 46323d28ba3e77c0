"""
How hard a sync leans on the provider, measured at the sandbox: the account-wide Retry-After
pause, the concurrency cap and the rate limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sync_faults import make_rig

from shiptrackd.sandbox import Sandbox, faults
from shiptrackd.sync import throttle

pytestmark = pytest.mark.anyio


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in zip(ordered, ordered[1:], strict=False)]


async def test_retry_after_pauses_every_request_to_the_provider(tmp_path: Path, sandbox: Sandbox) -> None:
    """After a 429 nothing at all is sent until its Retry-After has passed, and then every shipment is synced."""
    # The sandbox allows a burst of 20, then answers 429 with Retry-After: 1; the daemon has no limit of its own.
    sandbox.configure(rate_limit="20/s")
    async with make_rig(tmp_path, sandbox.base_url, SHIPTRACK_PROVIDER__CONCURRENCY="4") as rig:
        await rig.add(*(f"1ZINTRANSIT{i:03}" for i in range(28)))
        run = await rig.engine.run_once("manual")

    refused = sandbox.stats.by_status[429]
    assert 1 <= refused <= 4  # only calls already in flight when the first 429 came back
    assert run["outcome"] == "ok" and run["updated"] == 28 and run["failed"] == 0
    assert run["rate_limited"] == refused and run["retries"] == 0  # waiting out a 429 spends no retry
    assert sandbox.stats.total == 28 + refused
    # One silence of at least Retry-After, right after the refused calls: the pause is account-wide.
    times = sorted(sandbox.stats.request_times)
    longest = max(gaps(times))
    assert longest >= 1.0 - 0.02
    assert sum(1 for g in gaps(times) if g > 0.5) == 1


async def test_the_retry_after_header_value_is_what_is_waited(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 saying `Retry-After: 2` holds the next request back 2 s; a 429 that persists defers its shipment."""
    monkeypatch.setattr(throttle, "MAX_RATE_LIMITED_ROUNDS", 1)  # give up after one pause (the default is 5)
    async with make_rig(tmp_path, sandbox.base_url, SHIPTRACK_PROVIDER__CONCURRENCY="1") as rig:
        limited = await rig.add("1ZRATELIMIT01")  # due first: added a second before the others
        await rig.clock.advance(seconds=1)
        await rig.add("1ZINTRANSIT001", "1ZINTRANSIT002")
        run = await rig.engine.run_once("schedule")
        errors = rig.rows("SELECT shipment_id, kind, http_status FROM sync_errors WHERE run_id = ?", run["id"])
        (left,) = rig.rows(
            "SELECT consecutive_failures, last_synced_at FROM shipments WHERE id = ?", limited["1ZRATELIMIT01"]
        )
        due_next = await rig.store.shipments.due(rig.clock.now(), 10)

    assert sandbox.stats.by_status[429] == 1 and sandbox.stats.requests_for("1ZRATELIMIT01") == 1
    first, second, third = sorted(sandbox.stats.request_times)
    assert second - first >= faults.FORCED_RETRY_AFTER_S - 0.02
    assert third - second < 1.0  # the pause is over, not repeated
    # Deferred, not failed: no error row, no failure counted against it, and still due for the next run.
    assert (run["updated"], run["failed"], run["skipped"], run["rate_limited"]) == (2, 0, 1, 1)
    assert run["outcome"] == "partial" and "1 deferred by the provider's rate limit" in run["stop_reason"]
    assert errors == [] and left["consecutive_failures"] == 0 and left["last_synced_at"] is None
    assert [s.id for s in due_next] == [limited["1ZRATELIMIT01"]]


async def test_peak_in_flight_never_exceeds_concurrency(tmp_path: Path, sandbox: Sandbox) -> None:
    """With slow answers the sandbox sees exactly `[provider] concurrency` requests at once, never more."""
    sandbox.configure(latency_s=0.05)
    async with make_rig(tmp_path, sandbox.base_url, SHIPTRACK_PROVIDER__CONCURRENCY="4") as rig:
        await rig.add(*(f"1ZINTRANSIT{i:03}" for i in range(40)))
        run = await rig.engine.run_once("manual")
    assert run["updated"] == 40
    assert sandbox.stats.peak_in_flight == 4


async def test_request_rate_stays_under_the_rate_limit(tmp_path: Path, sandbox: Sandbox) -> None:
    """At `rate_limit = 50/s` the achieved rate stays within 5% of it and the sandbox's own limit never fires."""
    # The sandbox limit is a little above ours with a small burst (for scheduling jitter on a busy machine),
    # so a daemon that bursts would see 429s.
    sandbox.configure(rate_limit="55/s", burst=5)
    async with make_rig(
        tmp_path,
        sandbox.base_url,
        SHIPTRACK_PROVIDER__RATE_LIMIT="50/s",
        SHIPTRACK_PROVIDER__CONCURRENCY="8",
    ) as rig:
        await rig.add(*(f"1ZINTRANSIT{i:03}" for i in range(50)))
        run = await rig.engine.run_once("manual")
    assert run["updated"] == 50 and run["rate_limited"] == 0
    assert sandbox.stats.by_status[429] == 0
    assert sandbox.stats.total == 50
    assert sandbox.stats.achieved_rate() <= 50 * 1.05
    assert sandbox.stats.achieved_rate() >= 50 * 0.5  # and it is not crawling either
