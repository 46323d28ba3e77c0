"""
What /metrics costs (issue 9 item 23: prometheus_client's registry, process collector and exposition,
unless a measurement says otherwise).

1. Per tracking request, the latency histogram's observe(): ours (metrics.Histogram, a bisect into a
   list) against prometheus_client.Histogram (a lock and a per-bucket loop). It runs on the sync's
   hot path, once per request, so it counts against item 27's CPU budget per shipment.
2. A scrape: GET /metrics over the control socket of an in-process daemon (against the sandbox),
   p50/p99 over N sequential requests with the SQL figures cached, and the share of it that
   prometheus_client's ProcessCollector takes (it reads /proc on every scrape).

    uv run python bench/bench_metrics.py [--observations 200000] [--scrapes 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from _common import bench_config, header, percentile, quiet_logs, sandbox_process, table, verdict
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client import Histogram as LibraryHistogram

from shiptrackd.daemon import Daemon
from shiptrackd.metrics import REQUEST_BUCKETS, Histogram


def observe_cost(n: int) -> list[list[Any]]:
    """Microseconds per observe() for both histograms, best of 3 runs of *n*."""
    values = [0.001 * (i % 40_000) for i in range(n)]  # 0 to 40 s: every bucket gets some
    ours = Histogram(REQUEST_BUCKETS)
    library = LibraryHistogram("x_seconds", "x", buckets=REQUEST_BUCKETS, registry=CollectorRegistry())
    rows = []
    candidates = [("shiptrackd.metrics.Histogram", ours.observe), ("prometheus_client.Histogram", library.observe)]
    for name, observe in candidates:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for v in values:
                observe(v)
            best = min(best, time.perf_counter() - started)
        rows.append([name, round(best / n * 1e6, 3)])
    return rows


def process_collector_cost(n: int = 2000) -> float:
    """Microseconds for one collect() of prometheus_client's ProcessCollector."""
    collector = ProcessCollector(registry=None)
    started = time.perf_counter()
    for _ in range(n):
        list(collector.collect())
    return (time.perf_counter() - started) / n * 1e6


async def scrape_latency(base_url: str, scrapes: int) -> tuple[list[float], int]:
    with tempfile.TemporaryDirectory(prefix="bm-", dir="/tmp") as tmp:
        config = bench_config(Path(tmp), base_url)
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, handle_signals=False).run)
            transport = httpx.AsyncHTTPTransport(uds=str(config.daemon.socket))
            async with httpx.AsyncClient(transport=transport, base_url="http://shiptrackd") as http:
                size = len((await http.get("/metrics")).content)  # warms the SQL cache
                times = []
                for _ in range(scrapes):
                    started = time.perf_counter()
                    response = await http.get("/metrics")
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
            daemon.stop()
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=200_000)
    parser.add_argument("--scrapes", type=int, default=300)
    args = parser.parse_args()
    quiet_logs()
    header("bench_metrics: what /metrics costs")
    print(table(["histogram observe()", "us per call"], observe_cost(args.observations)))
    process_us = process_collector_cost()
    with sandbox_process() as sandbox:
        times, size = anyio.run(scrape_latency, sandbox.base_url, args.scrapes, backend="asyncio")
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    print()
    print(
        table(
            ["scrape (GET /metrics, socket)", "value"],
            [
                ["body bytes", size],
                ["p50 ms", round(p50, 2)],
                ["p99 ms", round(p99, 2)],
                ["ProcessCollector.collect() ms", round(process_us / 1000, 3)],
            ],
        )
    )
    verdict(p99 < 50, f"a scrape p99 {p99:.1f} ms (< 50 ms: scraping every 15 s costs < 0.4% of a core)")


if __name__ == "__main__":
    main()
