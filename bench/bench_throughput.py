"""
Sync throughput against the sandbox (DESIGN.md "Performance targets", issue 3).

Part 1: provider rate limit 50/s, sandbox latency 20 ms, the sandbox's own limit at 55/s with a
small burst (5), so any sustained overshoot by the daemon shows up as a 429. Target: achieved /
configured >= 0.95 with zero 429s, over ~1000 shipments in one run.

Part 2: no rate limit, 20 ms latency: shipments/s at concurrency 1, 8, 32, 128 against the
ceiling concurrency / latency, and the engine's CPU a synced shipment (target <= 0.5 ms at 32 in
flight, >= 0.8 of the ceiling up to 32: issue 9 item 27).

The sandbox runs out of process (`python -m shiptrackd.sandbox`) so it does not share the event
loop or the CPU core with the engine; the engine runs in this process on a real Store (temp file).

    uv run python bench/bench_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from _common import (
    bench_config,
    cpu_times,
    header,
    idle_share,
    loadavg,
    process_cpu_s,
    quiet_logs,
    sandbox_process,
    table,
    tracking_numbers,
    verdict,
)

LATENCY_S = 0.020
CPU_MS_TARGET = 0.5  # issue 9 item 27
CEILING_TARGET = 0.8
WHAT_IF: list[str] = []


async def run_sync(base_url: str, sandbox_pid: int, n: int, prefix: str, **env: str) -> dict[str, Any]:
    """Add n fresh shipments to a new store and time one sync run that fetches all of them."""
    from shiptrackd.clock import SystemClock
    from shiptrackd.events import EventBus
    from shiptrackd.models import NewShipment
    from shiptrackd.providers import make_provider
    from shiptrackd.store import Store
    from shiptrackd.sync.engine import SyncEngine
    from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

    with tempfile.TemporaryDirectory(prefix="st-bench-") as tmp:
        cfg = bench_config(Path(tmp), base_url, **env)
        clock = SystemClock()
        store = await Store.open(Path(tmp) / "shiptrackd.db")
        stats = ApiStats()
        provider = make_provider(cfg.provider, observer=stats.observe)
        if "httpx-aiohttp" in WHAT_IF:
            _use_httpx_aiohttp(provider, cfg.provider)
        try:
            items = [NewShipment("ups", number) for number in tracking_numbers(prefix, n)]
            await store.shipments.add_many(items, clock.now())
            engine = SyncEngine(store, ProviderThrottle(provider, cfg.provider, stats), clock, EventBus(), cfg)
            started, cpu0, sb_cpu0 = time.perf_counter(), time.process_time(), process_cpu_s(sandbox_pid)
            machine0 = cpu_times()
            record = await engine.run_once("manual")
            elapsed = time.perf_counter() - started
            cpu = (time.process_time() - cpu0) / elapsed
            sandbox_cpu = (process_cpu_s(sandbox_pid) - sb_cpu0) / elapsed
            idle = idle_share(machine0, cpu_times())
        finally:
            await provider.aclose()
            await store.close()
    return {
        "record": record,
        "elapsed": elapsed,
        "api": stats.snapshot(),
        "cpu": cpu,
        "sandbox_cpu": sandbox_cpu,
        "idle": idle,
    }


def part1(n: int) -> bool:
    print(f"\n## 1. rate limit 50/s, latency 20 ms, {n} shipments, concurrency 8 (sandbox limit 55/s, burst 5)")
    with sandbox_process("--latency", "20ms", "--rate-limit", "55/s", "--burst", "5") as sb:
        result = anyio.run(
            lambda: run_sync(sb.base_url, sb.proc.pid, n, "1ZRL", SHIPTRACK_PROVIDER__RATE_LIMIT="50/s"),
            backend="asyncio",
        )
        seen = sb.stats()
    rec = result["record"]
    configured = 50.0
    end_to_end = rec["selected"] / result["elapsed"]
    wire = seen["achieved_rate"]
    http_429 = seen["by_status"].get("429", 0)
    rows = [
        ["shipments synced (updated+unchanged)", rec["updated"] + rec["unchanged"]],
        ["failed", rec["failed"]],
        ["run wall time (s)", round(result["elapsed"], 2)],
        ["end-to-end rate (shipments/s)", round(end_to_end, 2)],
        ["wire rate at the sandbox (req/s, first..last arrival)", round(wire, 2)],
        ["achieved / configured (end-to-end)", round(end_to_end / configured, 3)],
        ["achieved / configured (wire)", round(wire / configured, 3)],
        ["sandbox requests", seen["total"]],
        ["sandbox 429s", http_429],
        ["daemon-side 429s (ApiStats.rate_limited)", result["api"]["rate_limited"]],
        ["sandbox peak in flight", seen["peak_in_flight"]],
        ["request latency p50 / p95 (ms)", f"{result['api']['p50_s'] * 1e3:.1f} / {result['api']['p95_s'] * 1e3:.1f}"],
    ]
    print(table(["figure", "value"], rows))
    ratio = end_to_end / configured
    ok = ratio >= 0.95 and http_429 == 0 and rec["failed"] == 0
    verdict(ok, f"rate-limited throughput {ratio:.3f} x configured (target >= 0.95), {http_429} 429s (target 0)")
    return ok


def part2(levels: list[int], seconds_per_level: float, cap: int) -> bool:
    print("\n## 2. no rate limit, latency 20 ms: throughput vs concurrency (ceiling = concurrency / 20 ms)")
    rows = []
    with sandbox_process("--latency", "20ms") as sb:
        for level in levels:
            ceiling = level / LATENCY_S
            n = int(max(200, min(cap, ceiling * seconds_per_level)))
            sb.reset()
            env = {
                "SHIPTRACK_PROVIDER__CONCURRENCY": str(level),
                "SHIPTRACK_SYNC__BATCH_SIZE": str(max(100, level * 2)),
            }
            result = anyio.run(partial(run_sync, sb.base_url, sb.proc.pid, n, f"1ZC{level:03d}", **env))
            seen = sb.stats()
            rec = result["record"]
            rate = rec["selected"] / result["elapsed"]
            rows.append(
                [
                    level,
                    n,
                    round(result["elapsed"], 2),
                    round(rate, 1),
                    round(ceiling, 0),
                    round(rate / ceiling, 3),
                    seen["peak_in_flight"],
                    round(result["cpu"], 2),
                    round(result["sandbox_cpu"], 2),
                    round(result["cpu"] / rate * 1e3, 2) if rate else float("nan"),
                    f"{result['idle']:.0%}",
                    rec["failed"],
                ]
            )
    headers = ["concurrency", "shipments", "wall s", "shipments/s", "ceiling/s", "of ceiling", "peak in flight"]
    headers += ["engine CPU", "sandbox CPU", "engine CPU ms/shipment", "machine idle", "failed"]
    print(table(headers, rows))
    print(
        "(CPU: cores busy during the run; engine = this process incl. its SQLite writer thread;"
        " machine idle = share of both cores idle, other work on the box included)"
    )
    # Scaling: every step up in concurrency raises throughput by >= 1.3x, unless the CPU was the limit
    # at that step (the engine's event loop at >= 0.85 of a core, or the machine < 10% idle) and the
    # throughput held within 10% of the best so far.
    ok = all(r[-1] == 0 for r in rows)
    best = 0.0
    notes = []
    for prev, cur in zip(rows, rows[1:], strict=False):
        best = max(best, prev[3])
        saturated = cur[7] >= 0.85 or cur[8] >= 0.85 or idle_of(cur) < 0.10
        if cur[3] >= 1.3 * prev[3]:
            notes.append(f"{prev[0]}->{cur[0]}: x{cur[3] / prev[3]:.2f}")
        elif saturated and cur[3] >= 0.9 * best:
            notes.append(f"{prev[0]}->{cur[0]}: CPU-bound (engine {cur[7]:.2f}, machine idle {cur[10]}), held")
        else:
            ok = False
            notes.append(f"{prev[0]}->{cur[0]}: x{cur[3] / prev[3]:.2f} without a CPU limit: does NOT scale")
    rates = [r[3] for r in rows]
    verdict(
        ok,
        "throughput scales with concurrency until the CPU is the limit ("
        + "; ".join(notes)
        + f"); best {max(rates):.0f}/s",
    )
    return ok and cpu_targets(rows)


def cpu_targets(rows: list[list[Any]]) -> bool:
    """Issue 9 item 27: <= 0.5 ms of engine CPU a synced shipment at 32 in flight, >= 0.8 of the ceiling up to 32."""
    at_32 = next((r for r in rows if r[0] == 32), None)
    if at_32 is None:
        return True
    cpu_ms = at_32[9]
    worst = min((r for r in rows if r[0] <= 32), key=lambda r: r[5])
    ok = cpu_ms <= CPU_MS_TARGET and worst[5] >= CEILING_TARGET
    verdict(
        ok,
        f"engine CPU {cpu_ms:.2f} ms a synced shipment at 32 in flight (target <= {CPU_MS_TARGET}); lowest share of"
        f" the ceiling up to 32 in flight {worst[5]:.3f} at {worst[0]} (target >= {CEILING_TARGET}); load {loadavg()}",
    )
    return ok


def _use_httpx_aiohttp(provider: Any, config: Any) -> None:
    """The provider's client rebuilt over httpx-aiohttp's AiohttpTransport instead of ours (a what-if)."""
    import httpx
    from httpx_aiohttp import AiohttpTransport  # uv run --with httpx-aiohttp

    from shiptrackd.providers.shipengine import USER_AGENT

    limits = httpx.Limits(max_connections=config.concurrency + 2, max_keepalive_connections=config.concurrency + 2)
    transport = AiohttpTransport(limits=limits)
    timeout = httpx.Timeout(config.timeout_s)
    provider._client = httpx.AsyncClient(transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT})
    provider._direct = None  # every GET through that client, not straight to our transport


def idle_of(row: list[Any]) -> float:
    return float(row[10].rstrip("%")) / 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="300 shipments in part 1, shorter levels in part 2")
    parser.add_argument(
        "--what-if",
        action="append",
        choices=("httpx-aiohttp",),
        default=[],
        help="try a proposed fix (bench/README.md) by patching this process",
    )
    args = parser.parse_args()
    WHAT_IF.extend(args.what_if)
    quiet_logs()
    header("bench_throughput: sync throughput against the out-of-process sandbox")
    if "httpx-aiohttp" in args.what_if:
        print("# WHAT-IF run (not the shipped code): httpx-aiohttp's AiohttpTransport under the provider")
    ok1 = part1(300 if args.quick else 1000)
    ok2 = part2([1, 8, 32, 128], 1.5 if args.quick else 4.0, 2000 if args.quick else 6000)
    print(f"\n# load average at the end: {loadavg()}")
    verdict(ok1 and ok2, "bench_throughput overall")


if __name__ == "__main__":
    main()
