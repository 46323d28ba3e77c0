"""
Several daemons on one PostgreSQL (issue 13 "Tests and measurements").

1. Shared limit: 1, 2 and 3 sync engines (each its own store connections, throttle, lease owner and
   shared budget, as separate daemons have), every one configured at the account's 50/s, against
   a sandbox whose account bucket is 50/s (burst 50). Target: together >= 0.97 of 50/s, 0 x 429.
2. Shared pause: the same three, one shipment answered 429 with Retry-After 2 s (the sandbox's
   forced RATELIMIT fault): the longest gap between requests arriving at the sandbox after it.
   Target: no request in the window (gap >= Retry-After, less the answer's own latency).
3. Throughput when the limit is not the bottleneck (no limit, 20 ms latency, concurrency 8).
4. The same with real daemons: 1, 2 and 3 `shiptrackd` processes on one database, the sandbox in
   a process of its own; a force sync on every node at once, and meanwhile `GET /v1/status` asked
   of each node in turn from this process: shipments/s together and status p50/p99 per node.
5. Failover: two daemon processes; the one leading the singleton loops is killed with -9; the time
   until the other's status says it leads them all.

In 1-3 the engines share one process and event loop (the sandbox too): what is measured is the
budget, the leases and PostgreSQL, not process isolation. Needs PostgreSQL at 127.0.0.1:5432 (trust).

    uv run python bench/bench_cluster.py [--quick] [--only budget,pause,throughput,daemons,failover]
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from _common import NEVER, bench_config, header, loadavg, quiet_logs, table, tracking_numbers, verdict

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LIMIT = 50
PARTS = ("budget", "pause", "throughput", "daemons", "failover")


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


@asynccontextmanager
async def daemon_processes(k: int, url: str, sandbox_url: str, state_root: Path) -> AsyncIterator[list[Any]]:
    """*k* `shiptrackd` processes on the database at *url*, each answering on its socket: [(process, client)]."""
    import os

    from _common import SANDBOX_KEY  # type: ignore[attr-defined]

    from shiptrackd.api.client import ApiClient

    base = {key: v for key, v in os.environ.items() if not key.startswith("SHIPTRACK_")}
    nodes: list[Any] = []
    try:
        for i in range(k):
            state = state_root / f"n{i}"
            state.mkdir(parents=True)
            env = {
                **base,
                "XDG_CONFIG_HOME": str(state / "no-config"),
                "SHIPTRACK_DAEMON__STATE_DIR": str(state),
                "SHIPTRACK_DAEMON__SOCKET": str(state / "ctl.sock"),
                "SHIPTRACK_DAEMON__LOG_LEVEL": "WARNING",
                "SHIPTRACK_PROVIDER__BASE_URL": sandbox_url,
                "SHIPTRACK_PROVIDER__API_KEY": SANDBOX_KEY,
                "SHIPTRACK_PROVIDER__RATE_LIMIT": "none",
                "SHIPTRACK_PROVIDER__CONCURRENCY": "8",
                "SHIPTRACK_SYNC__BATCH_SIZE": "50",
                "SHIPTRACK_SYNC__SCHEDULE": NEVER,
                "SHIPTRACK_SYNC__FORCE_SCHEDULE": NEVER,
                "SHIPTRACK_HEALTH__SCHEDULE": NEVER,
                "SHIPTRACK_STORE__RETENTION_SCHEDULE": NEVER,
                "SHIPTRACK_STORE__URL": url,
            }
            quiet = subprocess.DEVNULL  # an unread pipe would fill and stop the daemon
            proc = await anyio.open_process([sys.executable, "-m", "shiptrackd"], env=env, stdout=quiet, stderr=quiet)
            nodes.append((proc, ApiClient(state / "ctl.sock")))
        for _, client in nodes:
            with anyio.fail_after(60):
                while True:
                    try:
                        await client.status()
                        break
                    except Exception:  # not up yet: the socket appears when it serves
                        await anyio.sleep(0.1)
        yield nodes
    finally:
        for proc, client in nodes:
            await client.aclose()
            if proc.returncode is None:
                proc.terminate()
        for proc, _ in nodes:
            with anyio.move_on_after(15):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def daemons_scenario(k: int, n: int, tmp: Path) -> dict[str, Any]:
    """*k* daemon processes on a fresh database and an out-of-process sandbox: force sync on all, status timed."""
    from _common import percentile, sandbox_process

    name, url = create_db()
    try:
        with sandbox_process("--latency", "20ms") as sb:
            async with daemon_processes(k, url, sb.base_url, tmp / f"k{k}") as nodes:
                clients = [client for _, client in nodes]
                numbers = tracking_numbers(f"P{k}", n)
                for start in range(0, n, 500):
                    batch = numbers[start : start + 500]
                    await clients[0].add_shipments([{"carrier_code": "ups", "tracking_number": x} for x in batch])
                started = time.perf_counter()
                runs = [(await client.sync(force=True)).run_id for client in clients]
                latencies: list[list[float]] = [[] for _ in clients]
                records: list[Any] = [None] * k
                while any(r is None for r in records):
                    for i, client in enumerate(clients):
                        t0 = time.perf_counter()
                        await client.status()
                        latencies[i].append(time.perf_counter() - t0)
                        if records[i] is None:
                            run = await client.run(runs[i])
                            if run.outcome != "running":
                                records[i] = run
                    await anyio.sleep(0.02)
                wall = time.perf_counter() - started
            done = [r for r in records if r is not None]
            return {
                "synced": sum(r.updated + r.unchanged for r in done),
                "wall_s": wall,
                "requests": sb.stats()["total"],
                "p50_ms": [percentile(lat, 0.5) * 1000 for lat in latencies],
                "p99_ms": [percentile(lat, 0.99) * 1000 for lat in latencies],
            }
    finally:
        drop_db(name)


async def leading(client: Any) -> list[str]:
    """The singletons the daemon behind *client* leads now (status.cluster.leads)."""
    cluster = (await client.status()).cluster
    return list(cluster.leads) if cluster is not None else []


async def failover_scenario(tmp: Path) -> dict[str, Any]:
    """Two daemon processes; the one leading the singletons is killed with -9: how long until the other leads."""
    from _common import sandbox_process

    name, url = create_db()
    try:
        with sandbox_process() as sb:
            async with daemon_processes(2, url, sb.base_url, tmp / "failover") as nodes:
                with anyio.fail_after(30):
                    while True:
                        leads = [set(await leading(client)) for _, client in nodes]
                        if any(leads):
                            break
                        await anyio.sleep(0.05)
                leader = 0 if leads[0] else 1
                singletons = leads[leader]
                nodes[leader][0].kill()  # SIGKILL: no clean stop, the server sees the session end
                killed = time.perf_counter()
                standby = nodes[1 - leader][1]
                with anyio.fail_after(60):
                    while set(await leading(standby)) != singletons:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                return {"failover_s": time.perf_counter() - killed, "singletons": sorted(singletons)}
    finally:
        drop_db(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the shipments")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts - set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(parts - set(PARTS)))}")
    quiet_logs()
    n = 600 if args.quick else 3000
    header("bench_cluster: several daemons on one PostgreSQL")
    print(f"load before: {loadavg()}")

    if "budget" in parts:
        shared_limit(n)
    if "pause" in parts:
        shared_pause(n)
    if "throughput" in parts:
        throughput(n)
    if "daemons" in parts:
        daemons(n)
    if "failover" in parts:
        with tempfile.TemporaryDirectory(prefix="st-", dir="/tmp") as tmp:
            out = anyio.run(failover_scenario, Path(tmp))
        print(
            f"failover: the leader of {', '.join(out['singletons'])} killed with -9; the standby led them"
            f" {out['failover_s']:.2f} s later (a standby tries every 5 s)"
        )
    print(f"load after: {loadavg()}")


def shared_limit(n: int) -> None:
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


def shared_pause(n: int) -> None:
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


def throughput(n: int) -> None:
    rows = []
    for k in (1, 2, 3):
        out = anyio.run(scenario, k, n, "none", {"latency_s": 0.02}, [])
        rows.append([k, out["synced"], f"{out['wall_s']:.2f}", f"{out['synced'] / out['wall_s']:.1f}"])
    print(table(["daemons", "synced", "wall s", "shipments/s (no limit, 20 ms latency)"], rows))


def daemons(n: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="st-", dir="/tmp") as tmp:  # short: AF_UNIX paths
        for k in (1, 2, 3):
            out = anyio.run(daemons_scenario, k, n, Path(tmp))  # each in its own folder under tmp
            per_node = " / ".join(
                f"{p50:.1f}, {p99:.1f}" for p50, p99 in zip(out["p50_ms"], out["p99_ms"], strict=True)
            )
            rows.append(
                [
                    k,
                    out["synced"],
                    out["requests"],
                    f"{out['wall_s']:.2f}",
                    f"{out['synced'] / out['wall_s']:.1f}",
                    per_node,
                ]
            )
    print("daemon processes, force sync on every node, no limit, 20 ms latency:")
    print(table(["daemons", "synced", "requests", "wall s", "shipments/s", "status p50, p99 ms per node"], rows))


if __name__ == "__main__":
    sys.exit(main())
