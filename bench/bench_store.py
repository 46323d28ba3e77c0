"""
Store ingest (DESIGN.md "Performance targets", issue 3): tracking updates applied per second
through ShipmentStore.apply, against raw sqlite3 executemany of the same rows on the same
machine as the limit.

An "update" is one FetchSuccess carrying 5 new events: the store reads the old status, updates
the shipment row and inserts the events (INSERT OR IGNORE, deduplicated), each shipment in its
own savepoint, one transaction per batch, on the writer thread. The raw baseline runs the same
UPDATE and INSERT OR IGNORE statements with executemany, one transaction per batch, on
pre-built tuples, on a copy of the same file with the same pragmas.

Targets: store >= 0.5 x raw, and >= 5,000 updates/s.

    uv run python bench/bench_store.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
from _common import header, quiet_logs, table, tracking_numbers, verdict

EVENTS_PER_UPDATE = 5
BATCHES = (100, 500)

UPDATE_SQL = (
    "UPDATE shipments SET status_code = ?, status_detail_code = ?, status_description = ?,"
    " exception_description = ?, estimated_delivery_at = ?, actual_delivery_at = ?, last_synced_at = ?,"
    " status_changed_at = CASE WHEN ? THEN ? ELSE status_changed_at END, next_sync_at = ?,"
    " schedule_reason = ?, consecutive_failures = 0, last_error = '', last_error_kind = '',"
    " active = ?, updated_at = ? WHERE id = ?"
)
EVENT_SQL = (
    "INSERT OR IGNORE INTO tracking_events (shipment_id, occurred_at, status_code, description, event_code,"
    " location, dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


async def make_template(path: Path, n: int) -> list[str]:
    from shiptrackd.models import NewShipment
    from shiptrackd.store import Store

    store = await Store.open(path)
    try:
        now = datetime.now(UTC)
        ids: list[str] = []
        numbers = tracking_numbers("1ZST", n)
        for start in range(0, n, 5000):
            chunk = [NewShipment("ups", number) for number in numbers[start : start + 5000]]
            result = await store.shipments.add_many(chunk, now)
            ids += [a.id for a in result.added]
    finally:
        await store.close()
    return ids


def make_results(ids: list[str], base: datetime) -> list:
    """One FetchSuccess per shipment, in transit, with 5 events it has not seen yet."""
    from shiptrackd.models import TrackingEvent, TrackingInfo
    from shiptrackd.store import FetchSuccess

    out = []
    for n, shipment_id in enumerate(ids):
        first = base + timedelta(seconds=n)
        events = tuple(
            TrackingEvent(
                occurred_at=first + timedelta(hours=h),
                description=f"Scan {h}: arrived at facility",
                status_code="IT",
                event_code="AR",
                city="MEMPHIS",
                state="TN",
                postal_code="38118",
                country_code="US",
            )
            for h in range(EVENTS_PER_UPDATE)
        )
        info = TrackingInfo(
            tracking_number=f"1ZST{n:09d}",
            status_code="IT",
            status_description="In Transit",
            status_detail_code="HUB_SCAN_IN",
            carrier_code="ups",
            estimated_delivery_at=base + timedelta(days=3),
            events=events,
        )
        out.append(FetchSuccess(shipment_id, info, base + timedelta(hours=2), "in transit: every 2h"))
    return out


def raw_rows(results: list, stamp: str) -> tuple[list[tuple], list[list[tuple]]]:
    """The store's exact statements' parameters, built ahead (the raw case measures SQLite only)."""
    from shiptrackd.store import to_db

    updates, events = [], []
    for r in results:
        info = r.info
        updates.append(
            (
                info.status_code,
                info.status_detail_code,
                info.status_description,
                info.exception_description,
                to_db(info.estimated_delivery_at),
                to_db(info.actual_delivery_at),
                stamp,
                True,
                stamp,
                to_db(r.next_sync_at),
                r.reason,
                1,
                stamp,
                r.shipment_id,
            )
        )
        events.append(
            [
                (
                    r.shipment_id,
                    to_db(e.occurred_at),
                    e.status_code,
                    e.description,
                    e.event_code,
                    ", ".join(p for p in (e.city, e.state, e.postal_code, e.country_code) if p),
                    e.dedup_key,
                )
                for e in info.events
            ]
        )
    return updates, events


async def store_ingest(path: Path, results: list, batch: int, now: datetime) -> tuple[float, int, int]:
    from shiptrackd.store import Store

    store = await Store.open(path)
    updated = unchanged = 0
    try:
        started = time.perf_counter()
        for start in range(0, len(results), batch):
            applied = await store.shipments.apply(None, results[start : start + batch], now)
            updated += applied.updated
            unchanged += applied.unchanged
            assert not applied.write_errors, applied.write_errors[:3]
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    return elapsed, updated, unchanged


def raw_ingest(path: Path, updates: list[tuple], events: list[list[tuple]], batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"):
            conn.execute(pragma)
        started = time.perf_counter()
        for start in range(0, len(updates), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(UPDATE_SQL, updates[start : start + batch])
            conn.executemany(EVENT_SQL, [row for rows in events[start : start + batch] for row in rows])
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


def copy_db(src: Path, dst: Path) -> None:
    """The template file as a fresh copy (the template was closed, so it has no -wal to carry)."""
    shutil.copy(src, dst)


def count_events(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM tracking_events").fetchone()[0]
    finally:
        conn.close()


async def main_async(n: int) -> None:
    from shiptrackd.store import to_db

    with tempfile.TemporaryDirectory(prefix="st-bench-") as tmp:
        tmpdir = Path(tmp)
        template = tmpdir / "template.db"
        ids = await make_template(template, n)
        now = datetime.now(UTC)
        results = make_results(ids, now - timedelta(days=1))
        updates, events = raw_rows(results, to_db(now))
        rows = []
        figures: dict[tuple[str, int], float] = {}
        for batch in BATCHES:
            for kind in ("raw", "store"):
                path = tmpdir / f"{kind}-{batch}.db"
                copy_db(template, path)
                if kind == "raw":
                    elapsed = raw_ingest(path, updates, events, batch)
                    note = ""
                else:
                    elapsed, updated, unchanged = await store_ingest(path, results, batch, now)
                    note = f"updated={updated}"
                stored = count_events(path)
                assert stored == n * EVENTS_PER_UPDATE, (kind, batch, stored)
                rate = n / elapsed
                figures[(kind, batch)] = rate
                rows.append([kind, batch, n, round(elapsed, 3), rate, rate * EVENTS_PER_UPDATE, note])
            # Steady state: the same answers again, every event already stored (INSERT OR IGNORE skips).
            path = tmpdir / f"store-{batch}.db"
            elapsed, updated, unchanged = await store_ingest(path, results, batch, now)
            rows.append(["store, repeat", batch, n, round(elapsed, 3), n / elapsed, 0.0, f"unchanged={unchanged}"])
            path = tmpdir / f"raw-{batch}.db"
            elapsed = raw_ingest(path, updates, events, batch)
            rows.append(["raw, repeat", batch, n, round(elapsed, 3), n / elapsed, 0.0, ""])

    print(
        f"\n## {n} updates of {EVENTS_PER_UPDATE} new events each, one transaction per batch (WAL, synchronous=NORMAL)"
    )
    print(table(["path", "batch", "updates", "seconds", "updates/s", "events/s", "note"], rows))
    print()
    summary = []
    ok = True
    for batch in BATCHES:
        ratio = figures[("store", batch)] / figures[("raw", batch)]
        passed = ratio >= 0.5 and figures[("store", batch)] >= 5000
        ok &= passed
        summary.append(
            [batch, figures[("store", batch)], figures[("raw", batch)], round(ratio, 3), "yes" if passed else "NO"]
        )
    print(table(["batch", "store updates/s", "raw updates/s", "store / raw", "meets target"], summary))
    worst = min(figures[("store", b)] / figures[("raw", b)] for b in BATCHES)
    slowest = min(figures[("store", b)] for b in BATCHES)
    verdict(ok, f"store ingest >= {worst:.2f} x raw (target >= 0.5) and >= {slowest:,.0f} updates/s (target >= 5,000)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="5,000 updates instead of 20,000")
    args = parser.parse_args()
    quiet_logs()
    header("bench_store: ShipmentStore.apply vs raw sqlite3 executemany")
    anyio.run(main_async, 5000 if args.quick else 20000, backend="asyncio")


if __name__ == "__main__":
    main()
