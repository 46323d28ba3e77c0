"""
1,000,000 shipments in the store (DESIGN.md "Performance targets", issue 3):

1. bulk insert 1M rows with raw sqlite3 into a file migrated by Store.open (in a child process,
   so its memory does not count against the daemon's RSS below);
2. time the due-now query (ShipmentStore.due with limit 100, count_due) and the store reads
   behind GET /v1/status;
3. run a real Daemon in this process, on its real socket and that file, against the sandbox out
   of process (no latency, no rate limit); trigger a force sync over the control API and let it
   walk the store for a capped number of shipments / seconds, sampling this process's RSS;
4. while it runs, a separate process sends ~500 GET /v1/status over the socket (keep-alive) and
   reports their latencies.

Targets: RSS flat over the walk (batches, not whole tables), due-now fast, status p99 < 10 ms.

    uv run python bench/bench_million.py [--quick]     # --quick: 100k rows, a shorter walk
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from _common import (
    REPO,
    bench_config,
    header,
    loadavg,
    peak_rss_mib,
    percentile,
    quiet_logs,
    rss_mib,
    sandbox_process,
    table,
    verdict,
)

CARRIERS = ("ups", "fedex", "usps", "dhl_express", "ontrac")
# Active statuses of a live store; about 30% of rows are delivered and out of the schedule.
ACTIVE_MIX = (("IT", 45), ("AC", 10), ("EX", 6), ("AT", 4), ("SP", 3), ("NY", 2))
DUE_SHARE = 0.05  # of active rows due now


# --- 1. the file (child process) ---------------------------------------------------------


def build(path: Path, n: int, seed: int = 7) -> None:
    """Migrate with Store.open, then raw-insert n shipments in one transaction."""
    from shiptrackd.store import Store

    async def migrate() -> None:
        store = await Store.open(path)
        await store.close()

    anyio.run(migrate, backend="asyncio")
    rng = random.Random(seed)
    now = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    statuses = [s for s, w in ACTIVE_MIX for _ in range(w)]
    base_ms = int((now - timedelta(days=14)).timestamp() * 1000)

    def rows():
        for i in range(n):
            created = base_ms + i * (14 * 86400 * 1000 // n)
            created_at = datetime.fromtimestamp(created / 1000, UTC).strftime(fmt)
            delivered = rng.random() < 0.30
            if delivered:
                status, active, next_at, reason = "DE", 0, None, "delivered (confirmed): terminal"
            else:
                status, active = rng.choice(statuses), 1
                if rng.random() < DUE_SHARE:
                    offset = -rng.uniform(0, 3600)
                else:
                    offset = rng.uniform(60, 86400)
                next_at = (now + timedelta(seconds=offset)).strftime(fmt)
                reason = "in transit: every 2h"
            synced = (now - timedelta(seconds=rng.uniform(0, 7200))).strftime(fmt)
            yield (
                f"ship_{created:011x}{i:08x}",
                CARRIERS[i % len(CARRIERS)],
                f"1ZM{i:010d}",
                f"order-{i}",
                status,
                "",
                "",
                "",
                None,
                None,
                synced,
                synced,
                next_at,
                reason,
                0,
                "",
                "",
                active,
                created_at,
                created_at,
            )

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO shipments (id, carrier_code, tracking_number, reference, status_code, status_detail_code,"
            " status_description, exception_description, estimated_delivery_at, actual_delivery_at,"
            " last_synced_at, status_changed_at, next_sync_at, schedule_reason, consecutive_failures,"
            " last_error, last_error_kind, active, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def build_in_child(path: Path, n: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--build", str(path), str(n)], check=True, cwd=REPO)
    return time.perf_counter() - started


# --- 2. queries ----------------------------------------------------------------------------


async def time_queries(path: Path) -> list[list[Any]]:
    from shiptrackd.store import Store

    store = await Store.open(path)
    rows = []
    try:
        now = datetime.now(UTC)

        async def timed(label: str, fn, repeat: int) -> Any:
            times, result = [], None
            for _ in range(repeat):
                started = time.perf_counter()
                result = await fn()
                times.append((time.perf_counter() - started) * 1e3)
            rows.append([label, repeat, percentile(times, 0.5), max(times), _short(result)])
            return result

        batch = await timed("due(now, limit=100)", lambda: store.shipments.due(now, 100), 50)
        key = (batch[-1].next_sync_at, batch[-1].id)
        await timed("due(now, limit=100, after=key) (next page)", lambda: store.shipments.due(now, 100, after=key), 50)
        await timed("count_due(now)", lambda: store.shipments.count_due(now), 10)
        await timed("active_after('', 100) (force walk page)", lambda: store.shipments.active_after("", 100), 50)
        await timed("counts() (in /v1/status)", store.shipments.counts, 10)
        plan = await store.db.fetchall(
            "EXPLAIN QUERY PLAN SELECT id FROM shipments WHERE active = 1 AND next_sync_at <= ?"
            " ORDER BY next_sync_at, id LIMIT 100",
            ("2026-01-01",),
        )
        rows.append(["due plan", "", float("nan"), float("nan"), "; ".join(r["detail"] for r in plan)])
    finally:
        await store.close()
    return rows


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} rows"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


# --- 3 + 4. the daemon under a force sync --------------------------------------------------

STATUS_CLIENT = r"""
import json, socket, sys, time
path, count, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_UNIX); sock.connect(path)
request = b"GET /v1/status HTTP/1.1\r\nHost: shiptrackd\r\n\r\n"
buf = b""
def read_response():
    global buf
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += sock.recv(65536)
    buf = rest[length:]
    assert head.startswith(b"HTTP/1.1 200"), head[:40]
    return json.loads(rest[:length])
lat, done_seen = [], []
next_at = time.perf_counter()
for i in range(count):
    next_at += interval
    t = time.perf_counter(); sock.sendall(request); body = read_response(); lat.append((time.perf_counter() - t) * 1e3)
    done_seen.append((body.get("sync") or {}).get("done"))
    pause = next_at - time.perf_counter()
    if pause > 0: time.sleep(pause)
print(json.dumps({"latencies_ms": lat, "done": done_seen}))
"""


def start_status_client(socket_path: Path, count: int, interval_s: float) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", STATUS_CLIENT, str(socket_path), str(count), str(interval_s)]
    return subprocess.Popen(args, stdout=subprocess.PIPE)


async def walk(
    state_dir: Path,
    base_url: str,
    cap_shipments: int,
    cap_s: float,
    status_requests: int,
    concurrency: int = 8,
    rate_limit: str = "none",
) -> dict[str, Any]:
    from shiptrackd.__main__ import FreezeOnStart
    from shiptrackd.api.client import ApiClient
    from shiptrackd.daemon import Daemon

    cfg = bench_config(
        state_dir,
        base_url,
        SHIPTRACK_PROVIDER__CONCURRENCY=str(concurrency),
        SHIPTRACK_PROVIDER__RATE_LIMIT=rate_limit,
        SHIPTRACK_DAEMON__SHUTDOWN_GRACE="10s",
    )
    samples: list[tuple[float, int, float]] = []  # (seconds into the walk, shipments done, RSS MiB)
    result: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(cfg, handle_signals=False).run)
        FreezeOnStart().started()  # as the real process does once its daemon runs (a test's daemon does not)
        engine = daemon.engine
        result["rss_before_mib"] = rss_mib()
        async with ApiClient(cfg.daemon.socket) as client:
            started_run = await client.sync(force=True)
        started = time.perf_counter()
        while engine.current is None:  # noqa: ASYNC110 - a benchmark may poll
            await anyio.sleep(0.01)
        status_proc = start_status_client(cfg.daemon.socket, status_requests, cap_s * 0.9 / status_requests)
        done = 0
        while True:
            current = engine.current
            done = current.done if current is not None else done
            samples.append((time.perf_counter() - started, done, rss_mib()))
            if current is None or done >= cap_shipments or time.perf_counter() - started >= cap_s:
                break
            await anyio.sleep(0.25)
        elapsed = time.perf_counter() - started
        engine.request_stop("benchmark cap reached")
        out, _ = await anyio.to_thread.run_sync(status_proc.communicate)
        status = json.loads(out)
        with anyio.fail_after(30):
            await engine.wait_idle()
        idle_proc = start_status_client(cfg.daemon.socket, 100, 0.01)  # the same daemon, no run in progress
        out, _ = await anyio.to_thread.run_sync(idle_proc.communicate)
        idle_status = json.loads(out)
        daemon.stop()
    result.update(
        run_id=started_run.run_id,
        samples=samples,
        done=done,
        elapsed=elapsed,
        status=status,
        idle_status=idle_status,
        peak_rss_mib=peak_rss_mib(),
    )
    return result


def rss_at(samples: list[tuple[float, int, float]], fraction: float) -> tuple[float, int, float]:
    """The first sample at or past `fraction` of the walk's shipments."""
    total = samples[-1][1]
    return next(s for s in samples if s[1] >= fraction * total)


def status_row(label: str, latencies: list[float]) -> list[Any]:
    if not latencies:
        return [label, 0, float("nan"), float("nan"), float("nan"), float("nan")]
    return [
        label,
        len(latencies),
        percentile(latencies, 0.5),
        percentile(latencies, 0.95),
        percentile(latencies, 0.99),
        max(latencies),
    ]


def during_run(status: dict[str, Any]) -> list[float]:
    """Latencies of the answers that showed a run in progress."""
    return [ms for ms, done in zip(status["latencies_ms"], status["done"], strict=True) if done is not None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100k rows, a 20 s walk")
    parser.add_argument("--build", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        quiet_logs()
        build(Path(args.build[0]), int(args.build[1]))
        return
    quiet_logs()
    n = 100_000 if args.quick else 1_000_000
    cap_shipments, cap_s = (50_000, 20.0) if args.quick else (200_000, 60.0)
    limited_s = 10.0 if args.quick else 20.0
    header(f"bench_million: {n:,} shipments in the store")
    with tempfile.TemporaryDirectory(prefix="st-", dir="/tmp") as tmp:
        state_dir = Path(tmp)
        db = state_dir / "shiptrackd.db"
        build_s = build_in_child(db, n)
        size_mib = db.stat().st_size / 2**20
        print(f"\n## 1. bulk insert: {n:,} rows in {build_s:.1f} s ({n / build_s:,.0f} rows/s), {size_mib:.0f} MiB")

        print("\n## 2. queries on the idle store")
        qrows = anyio.run(time_queries, db, backend="asyncio")
        print(table(["query", "runs", "p50 ms", "max ms", "result"], qrows))

        with sandbox_process() as sb:
            res = anyio.run(walk, state_dir, sb.base_url, cap_shipments, cap_s, 500, backend="asyncio")
            seen = sb.stats()
            sb.configure(latency_s="20ms")
            limited = anyio.run(
                partial(walk, state_dir, sb.base_url, 10**9, limited_s, 200, rate_limit="50/s"), backend="asyncio"
            )

    print(f"\n## 3. force sync walk, default concurrency 8 (cap {cap_shipments:,} shipments or {cap_s:.0f} s),")
    print("##    sandbox out of process with no latency and no rate limit: the sync takes all the CPU it can")
    samples = res["samples"]
    done, elapsed = res["done"], res["elapsed"]
    rows = [["before the sync (daemon up, store open)", "-", "-", round(res["rss_before_mib"], 1)]]
    for fraction in (0.1, 0.5, 1.0):
        t, d, rss = rss_at(samples, fraction)
        rows.append([f"{fraction:.0%} of the walk", round(t, 1), d, round(rss, 1)])
    peak = max(res["peak_rss_mib"], *(rss for _, _, rss in samples))
    rows.append(["peak RSS (max of the samples and VmHWM)", "-", "-", round(peak, 1)])
    print(table(["RSS sample", "s into walk", "shipments done", "RSS MiB"], rows))
    print(
        f"walked {done:,} shipments in {elapsed:.1f} s ({done / elapsed:,.0f}/s); sandbox saw {seen['total']:,}"
        f" requests, statuses {seen['by_status']}"
    )
    rss10, rss100 = rss_at(samples, 0.1)[2], rss_at(samples, 1.0)[2]
    growth = rss100 - rss10
    flat = growth <= max(16.0, 0.10 * rss10)

    print("\n## 4. GET /v1/status over the socket (separate client process, keep-alive, paced)")
    saturated = during_run(res["status"])
    realistic = during_run(limited["status"])
    srows = [
        status_row("during the walk above (CPU-saturating sync)", saturated),
        status_row("during a force sync at rate_limit 50/s, 20 ms latency", realistic),
        status_row("daemon idle (no run), same store", res["idle_status"]["latencies_ms"]),
    ]
    print(table(["while", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], srows))
    due_p50 = next(r[2] for r in qrows if r[0].startswith("due(now, limit=100)"))
    print(f"\n# load average at the end: {loadavg()}")
    verdict(flat, f"RSS flat over the walk: {rss10:.1f} -> {rss100:.1f} MiB from 10% to 100% ({growth:+.1f} MiB)")
    verdict(due_p50 < 10, f"due-now query (limit 100) p50 {due_p50:.2f} ms (target: fast, < 10 ms)")
    status_ok = True
    for label, values in (("CPU-saturating sync", saturated), ("rate-limited sync", realistic)):
        p99 = percentile(values, 0.99)
        status_ok &= p99 < 10
        verdict(p99 < 10, f"GET /v1/status p99 {p99:.1f} ms during a {label} (target < 10 ms)")
    verdict(flat and due_p50 < 10 and status_ok, "bench_million overall")


if __name__ == "__main__":
    main()
