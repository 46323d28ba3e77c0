"""
Several daemons on one PostgreSQL (issue 13 "Tests and measurements").

1. Shared limit: 1, 2 and 3 sync engines (each its own store connections, throttle, lease owner and
   shared budget, as separate daemons have), every one configured at the account's 50/s, against
   a sandbox whose account bucket is 50/s (burst 50). Target: together >= 0.97 of 50/s, 0 x 429.
2. Shared pause: the same three, one shipment answered 429 with Retry-After 2 s (the sandbox's
   forced RATELIMIT fault): the longest gap between requests arriving at the sandbox after it.
   Target: no request in the window (gap >= Retry-After, less the answer's own latency).
3. Throughput when the limit is not the bottleneck (no limit, 20 ms latency, concurrency 8).

The engines share one process and event loop (the sandbox too): what is measured is the budget,
the leases and PostgreSQL, not process isolation. Needs PostgreSQL at 127.0.0.1:5432 (trust).

    uv run python bench/bench_cluster.py [--quick]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _common import bench_config, header, loadavg, quiet_logs, table, tracking_numbers, verdict

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LIMIT = 50


def create_db() -> tuple[str, str]:
    import psycopg

    name = f"shiptrackd_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_db(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_cluster(
    url: str, base_url: str, n_engines: int, numbers: list[str], rate: str, tmp: Path
) -> dict[str, Any]:
    """Add *numbers*, then a force sync on every engine at once; the runs' records and the wall time."""
    from shiptrackd.clock import SystemClock
    from shiptrackd.cluster.wiring import shared_budget
    from shiptrackd.events import EventBus
    from shiptrackd.models import NewShipment
    from shiptrackd.providers import make_provider
    from shiptrackd.store import Store
    from shiptrackd.sync.engine import SyncEngine
    from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

    cfg = bench_config(
        tmp,
        base_url,
        SHIPTRACK_PROVIDER__RATE_LIMIT=rate,
        SHIPTRACK_PROVIDER__CONCURRENCY="8",
        SHIPTRACK_SYNC__BATCH_SIZE="50",
    )
    clock = SystemClock()
    stores = [await Store.open(url) for _ in range(n_engines)]
    engines, providers = [], []
    try:
        await stores[0].shipments.add_many([NewShipment("ups", n) for n in numbers], clock.now())
        for store in stores:
            provider = make_provider(cfg.provider)
            providers.append(provider)
            throttle = ProviderThrottle(provider, cfg.provider, ApiStats())
            throttle.shared = shared_budget(store, cfg.provider)
            engines.append(SyncEngine(store, throttle, clock, EventBus(), cfg))
        records: list[dict[str, Any]] = []

        async def one(engine: SyncEngine) -> None:
            records.append(await engine.run_once("force"))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for engine in engines:
                tg.start_soon(one, engine)
        wall = time.perf_counter() - started
        return {"records": records, "wall_s": wall, "synced": sum(r["updated"] + r["unchanged"] for r in records)}
    finally:
        for engine in engines:
            if engine.throttle.shared is not None:
                await engine.throttle.shared.aclose()
        for provider in providers:
            await provider.aclose()
        for store in stores:
            await store.close()


async def scenario(n_engines: int, n: int, rate: str, sandbox_kw: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    from _common import SANDBOX_KEY  # type: ignore[attr-defined]

    from shiptrackd.sandbox import Sandbox

    name, url = create_db()
    try:
        async with Sandbox(api_key=SANDBOX_KEY, time_scale=0, **sandbox_kw).serve() as sb:
            with tempfile.TemporaryDirectory(prefix="st-bench-") as tmp:
                numbers = [*extra, *tracking_numbers(f"C{n_engines}", n - len(extra))]
                out = await run_cluster(url, sb.base_url, n_engines, numbers, rate, Path(tmp))
            times = sorted(sb.stats.request_times)
            out["requests"] = sb.stats.total
            out["r429"] = sb.stats.by_status.get(429, 0)
            out["span_s"] = times[-1] - times[0] if len(times) > 1 else 0.0
            out["rate"] = (len(times) - 1) / out["span_s"] if out["span_s"] else 0.0
            out["max_gap_s"] = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
        return out
    finally:
        drop_db(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the shipments")
    args = parser.parse_args()
    quiet_logs()
    n = 600 if args.quick else 3000
    header("bench_cluster: several daemons on one PostgreSQL")
    print(f"load before: {loadavg()}")

    rows = []
    for k in (1, 2, 3):
        out = anyio.run(scenario, k, n, f"{LIMIT}/s", {"rate_limit": f"{LIMIT}/s", "latency_s": 0.02}, [])
        rows.append(
            [k, out["synced"], out["requests"], out["r429"], f"{out['rate']:.2f}", f"{out['rate'] / LIMIT:.3f}"]
        )
    print(table(["daemons", "synced", "requests", "429s", "req/s at sandbox", "share of 50/s"], rows))
    three = rows[-1]
    verdict(
        float(three[5]) >= 0.97 and three[3] == 0,
        f"3 daemons reach {three[5]} of the shared 50/s with {three[3]} x 429",
    )

    out = anyio.run(
        scenario,
        3,
        max(600, n // 5),
        f"{LIMIT}/s",
        {"rate_limit": f"{LIMIT}/s", "latency_s": 0.02},
        ["1ZRATELIMIT0001"],
    )
    print(
        "forced 429 (Retry-After 2 s) on one shipment: longest gap between requests at the sandbox"
        f" {out['max_gap_s']:.3f} s; 429s {out['r429']} (the forced one, retried after each pause)"
    )
    verdict(out["max_gap_s"] >= 1.9, "one 429 pauses all three daemons for its Retry-After")

    rows = []
    for k in (1, 2, 3):
        out = anyio.run(scenario, k, n, "none", {"latency_s": 0.02}, [])
        rows.append([k, out["synced"], f"{out['wall_s']:.2f}", f"{out['synced'] / out['wall_s']:.1f}"])
    print(table(["daemons", "synced", "wall s", "shipments/s (no limit, 20 ms latency)"], rows))
    print(f"load after: {loadavg()}")


if __name__ == "__main__":
    sys.exit(main())
