"""
An unknown real limit is found, not assumed (DESIGN.md "Performance targets", issue 9 item 5).

The sandbox's account limit is a token bucket of 10 requests/s (burst 10) that answers 429 with
`Retry-After` (whole seconds, as ShipEngine does); the daemon is configured at 10, 20 and 40/s,
concurrency 8, 20 ms latency, one run over enough shipments to last ~60 s at the real limit.
Each rate runs twice: with only `Retry-After` to go by (ShipEngine documents no X-RateLimit-*
headers) and with the sandbox sending `X-RateLimit-Limit/Remaining/Reset` (AfterShip does).

Targets: shipments synced per second >= 0.9 x the real limit, <= 2% of the requests answered
after the first 10 s of the run answered 429, and 0 shipments failed for rate limiting.

    uv run python bench/bench_adaptive_rate.py [--quick]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from _common import bench_config, header, loadavg, quiet_logs, sandbox_process, table, tracking_numbers, verdict

REAL_LIMIT = 10.0
CONFIGURED = (10, 20, 40)
SETTLE_S = 10.0  # the 429 share is judged on what is answered after this long: the search for the limit is free


async def run_sync(base_url: str, n: int, prefix: str, rate: int) -> dict[str, Any]:
    """Add n fresh shipments to a new store and time one sync run that fetches all of them."""
    from shiptrackd.clock import SystemClock
    from shiptrackd.events import EventBus
    from shiptrackd.models import NewShipment
    from shiptrackd.providers import make_provider
    from shiptrackd.store import Store
    from shiptrackd.sync.engine import SyncEngine
    from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

    answers: list[tuple[float, int | None]] = []  # (perf_counter at the answer, HTTP status)
    stats = ApiStats()

    def observe(status: int | None, elapsed_s: float, error_kind: str | None) -> None:
        answers.append((time.perf_counter(), status))
        stats.observe(status, elapsed_s, error_kind)

    with tempfile.TemporaryDirectory(prefix="st-bench-") as tmp:
        cfg = bench_config(Path(tmp), base_url, SHIPTRACK_PROVIDER__RATE_LIMIT=f"{rate}/s")
        clock = SystemClock()
        store = await Store.open(Path(tmp) / "shiptrackd.db")
        provider = make_provider(cfg.provider, observer=observe)
        try:
            items = [NewShipment("ups", number) for number in tracking_numbers(prefix, n)]
            await store.shipments.add_many(items, clock.now())
            throttle = ProviderThrottle(provider, cfg.provider, stats)
            engine = SyncEngine(store, throttle, clock, EventBus(), cfg)
            started = time.perf_counter()
            record = await engine.run_once("manual")
            elapsed = time.perf_counter() - started
            with sqlite3.connect(store.path) as conn:
                errors = dict(conn.execute("SELECT kind, count(*) FROM sync_errors GROUP BY kind").fetchall())
        finally:
            await provider.aclose()
            await store.close()
    late = [status for at, status in answers if at - started >= SETTLE_S]
    return {
        "record": record,
        "elapsed": elapsed,
        "late_answers": len(late),
        "late_429": sum(1 for status in late if status == 429),
        "all_429": sum(1 for _, status in answers if status == 429),
        "errors": errors,
        "final_rate": throttle.controller.rate,
        "cuts": throttle.controller.cuts,
    }


def measure(n: int, quota_headers: bool) -> tuple[list[list[Any]], bool]:
    rows: list[list[Any]] = []
    ok = True
    extra = ["--quota-headers"] if quota_headers else []
    with sandbox_process("--latency", "20ms", "--rate-limit", f"{REAL_LIMIT:g}/s", *extra) as sb:
        for rate in CONFIGURED:
            sb.reset()
            prefix = f"1ZA{'H' if quota_headers else 'R'}{rate:02d}"
            result = anyio.run(partial(run_sync, sb.base_url, n, prefix, rate), backend="asyncio")
            rec = result["record"]
            synced = rec["updated"] + rec["unchanged"]
            achieved = synced / result["elapsed"]
            share = result["late_429"] / result["late_answers"] if result["late_answers"] else float("nan")
            failed_429 = result["errors"].get("rate_limited", 0)
            ok &= achieved / REAL_LIMIT >= 0.9 and share <= 0.02 and failed_429 == 0 and synced == n
            rows.append(
                [
                    "X-RateLimit-* + Retry-After" if quota_headers else "Retry-After only",
                    f"{rate}/s",
                    n,
                    synced,
                    round(result["elapsed"], 1),
                    round(achieved, 2),
                    round(achieved / REAL_LIMIT, 3),
                    result["all_429"],
                    f"{result['late_429']}/{result['late_answers']}",
                    f"{share:.2%}",
                    failed_429,
                    rec["failed"],
                    rec["skipped"],
                    round(result["final_rate"], 2) if result["final_rate"] else "-",
                    result["cuts"],
                ]
            )
    return rows, ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="~30 s per rate instead of ~60 s")
    args = parser.parse_args()
    quiet_logs("ERROR")
    header("bench_adaptive_rate: configured above an unknown real limit of 10/s")
    n = int(REAL_LIMIT * (30 if args.quick else 60))
    print(f"\n## sandbox limit {REAL_LIMIT:g}/s (token bucket, burst 10), latency 20 ms, concurrency 8, {n} shipments")
    rows, ok = [], True
    for quota_headers in (False, True):
        part, part_ok = measure(n, quota_headers)
        rows += part
        ok &= part_ok
    headers = ["limit signals", "configured", "shipments", "synced", "wall s", "synced/s", "of real limit"]
    headers += ["429s", f"429 after {SETTLE_S:g}s", "share", "failed: rate limit", "failed: any", "deferred"]
    headers += ["final rate/s", "cuts"]
    print(table(headers, rows))
    print(
        "(synced/s: shipments synced over the run's wall time, the bucket's initial burst of 10 included;"
        f" share: answers after the first {SETTLE_S:g} s that were 429; deferred: still refused after"
        " every pause, left due; cuts: rate decreases)"
    )
    print(f"\n# load average at the end: {loadavg()}")
    verdict(
        ok,
        "every configured rate reaches >= 0.9 of the real limit with <= 2% 429s after the first"
        f" {SETTLE_S:g} s and 0 shipments failed for rate limiting",
    )


if __name__ == "__main__":
    main()
