"""
Retention (issue 9, item 18): how fast a backlog of old history goes, and how long a sync's
write waits behind it.

A store holds a backlog older than every [store] keep_*: ERRORS sync errors and TERMINAL
long-terminal shipments with EVENTS events each. While a retention pass deletes it, a
"sync writer" commits a small batch (the size of one sync flush: 100 shipment updates) every
10 ms, and each wait for the writer is timed. The same backlog deleted by one DELETE per
table (what the inline prunes did) is the comparison.

Target: a sync write never waits more than 100 ms behind retention (one 1,000-row batch is
a few ms; the whole backlog in one transaction is seconds).

    uv run python bench/bench_retention.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from _common import header, percentile, quiet_logs, table, verdict

WRITE_EVERY_S = 0.010
WAIT_TARGET_MS = 100.0


def seed(path: Path, errors: int, terminal: int, events: int, old: str, now: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO sync_errors (occurred_at, kind, message) VALUES (?, 'transient', ?)",
            ((old, f"HTTP 503 from the API, attempt {i % 3}") for i in range(errors)),
        )
        conn.executemany(
            "INSERT INTO shipments (id, carrier_code, tracking_number, active, created_at, updated_at,"
            " status_code) VALUES (?, 'ups', ?, 0, ?, ?, 'DE')",
            ((f"ship_old{i:08}", f"1ZOLD{i:08}", old, old) for i in range(terminal)),
        )
        conn.executemany(
            "INSERT INTO tracking_events (shipment_id, occurred_at, description, dedup_key) VALUES (?, ?, ?, ?)",
            ((f"ship_old{i:08}", old, "Arrived at facility", f"k{j}") for i in range(terminal) for j in range(events)),
        )
        conn.executemany(
            "INSERT INTO shipments (id, carrier_code, tracking_number, created_at, updated_at, next_sync_at)"
            " VALUES (?, 'ups', ?, ?, ?, ?)",
            ((f"ship_live{i:06}", f"1ZLIVE{i:06}", now, now, now) for i in range(100)),
        )
    conn.close()


async def measure(path: Path, batched: bool) -> dict[str, Any]:
    from shiptrackd.config import StoreConfig
    from shiptrackd.store import Store
    from shiptrackd.store.db import to_db
    from shiptrackd.store.retention import cutoffs

    store = await Store.open(path)
    waits: list[float] = []
    done = anyio.Event()
    now = datetime.now(UTC)
    stamp = to_db(now)

    def sync_batch(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "UPDATE shipments SET last_synced_at = ?, updated_at = ? WHERE id = ?",
            [(stamp, stamp, f"ship_live{i:06}") for i in range(100)],
        )

    async def writer() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await store.db.write(sync_batch)
            waits.append((time.perf_counter() - started) * 1000)
            await anyio.sleep(WRITE_EVERY_S)

    def one_shot(conn: sqlite3.Connection) -> int:
        cut = cutoffs(now, StoreConfig())
        n = conn.execute("DELETE FROM sync_errors WHERE occurred_at < ?", (to_db(cut.errors_before),)).rowcount
        return int(
            n
            + conn.execute(
                "DELETE FROM tracking_events WHERE shipment_id IN"
                " (SELECT id FROM shipments WHERE active = 0 AND updated_at < ?)",
                (to_db(cut.terminal_before),),
            ).rowcount
        )

    try:
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await anyio.sleep(0.05)
            if batched:
                result = await store.retention.run_once(cutoffs(now, StoreConfig()))
                deleted, pages = result.total, result.pages_freed
            else:
                deleted, pages = await store.db.write(one_shot), 0
            elapsed = time.perf_counter() - started - 0.05
            done.set()
    finally:
        await store.close()
    return {"deleted": deleted, "elapsed_s": elapsed, "pages": pages, "waits": waits}


async def main(quick: bool) -> None:
    quiet_logs()
    errors, terminal, events = (50_000, 5_000, 10) if quick else (200_000, 20_000, 10)
    header(f"bench_retention: {errors:,} old sync errors + {terminal:,} terminal shipments x {events} events")
    tmp = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    try:
        from shiptrackd.store import Store

        template = tmp / "template.db"
        await (await Store.open(template)).close()  # a store built by the real migrations
        now = datetime.now(UTC)
        old = (now - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        seed(template, errors, terminal, events, old, now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        rows = []
        results = {}
        for name, batched in (("one DELETE per table", False), ("retention pass (batches)", True)):
            copy = tmp / f"{batched}.db"
            shutil.copy(template, copy)
            r = await measure(copy, batched)
            results[name] = r
            w = r["waits"]
            rows.append(
                [
                    name,
                    r["deleted"],
                    f"{r['elapsed_s']:.2f}",
                    f"{r['deleted'] / r['elapsed_s']:,.0f}",
                    len(w),
                    f"{percentile(w, 0.5):.1f}",
                    f"{percentile(w, 0.99):.1f}",
                    f"{max(w):.1f}",
                    r["pages"],
                ]
            )
        print(
            table(
                ["how", "rows", "s", "rows/s", "sync writes", "wait p50 ms", "p99 ms", "max ms", "pages freed"],
                rows,
            )
        )
        from shiptrackd.store.retention import measure_tables

        started = time.perf_counter()
        figures = measure_tables(template)
        rows_total = sum(t["rows"] for t in figures["tables"].values())
        size_mb = template.stat().st_size / 1e6
        print(
            f"measure (rows and bytes per table, status figures): {time.perf_counter() - started:.2f} s"
            f" for {rows_total:,} rows in {size_mb:.0f} MB"
        )
        worst = max(results["retention pass (batches)"]["waits"])
        verdict(worst < WAIT_TARGET_MS, f"a sync write waited at most {worst:.1f} ms behind retention")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    anyio.run(main, parser.parse_args().quick, backend="asyncio")
