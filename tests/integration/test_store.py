"""The store on a real SQLite file: migrations, adds, atomic batches, due selection."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shiptrackd.errors import StoreError
from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.store import FetchFailure, FetchSuccess, RunCounts, Store
from shiptrackd.store.schema import LATEST_VERSION
from shiptrackd.store.sql import Conn

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(any_store: Store) -> Store:
    """The store contract holds on both backends: a real SQLite file and a real PostgreSQL database."""
    return any_store


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "st.db")
    yield s
    await s.close()


async def test_fresh_file_is_migrated_and_recorded(tmp_path: Path) -> None:
    """A new file gets every migration, recorded by version, in WAL mode with foreign keys."""
    s = await Store.open(tmp_path / "new.db")
    await s.close()
    conn = sqlite3.connect(tmp_path / "new.db")
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_existing_file_keeps_its_data_across_reopen(tmp_path: Path) -> None:
    """Reopening an existing store applies nothing twice and loses nothing."""
    s = await Store.open(tmp_path / "x.db")
    await s.shipments.add_many([NewShipment("ups", "1Z1")], NOW)
    await s.close()
    s = await Store.open(tmp_path / "x.db")
    assert (await s.shipments.counts())["total"] == 1
    await s.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer shiptrackd is refused with a clear error instead of being damaged."""
    s = await Store.open(tmp_path / "x.db")
    await s.close()
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this shiptrackd"):
        await Store.open(tmp_path / "x.db")


async def test_duplicates_are_reported_not_merged(store: Store) -> None:
    """Adding a tracked (carrier, number) pair reports the existing id and adds nothing."""
    first = await store.shipments.add_many([NewShipment("ups", "1Z1", "order-1")], NOW)
    again = await store.shipments.add_many([NewShipment("fedex", "1Z1"), NewShipment("ups", "1Z1", "x")], NOW)
    assert len(first.added) == 1
    assert [a.carrier_code for a in again.added] == ["fedex"]
    assert again.duplicates[0].id == first.added[0].id
    shipment = await store.shipments.get(first.added[0].id)
    assert shipment is not None and shipment.reference == "order-1"


async def test_batch_apply_is_atomic_per_shipment(store: Store) -> None:
    """One shipment whose write fails (removed mid-run) rolls back alone; the rest of the batch lands."""
    added = (await store.shipments.add_many([NewShipment("ups", f"1Z{i}") for i in range(3)], NOW)).added
    ids = [a.id for a in added]
    await store.shipments.remove(ids[1])
    run_id = await store.runs.start("manual", NOW)
    event = TrackingEvent(NOW - timedelta(hours=1), "Departed", "IT", "DP")
    info = TrackingInfo("x", "IT", events=(event,))
    later = NOW + timedelta(hours=2)
    result = await store.shipments.apply(
        run_id,
        [
            FetchSuccess(ids[0], info, later, "in transit: every 2h"),
            FetchSuccess(ids[1], info, later, "in transit: every 2h"),
            FetchFailure(ids[2], "transient", "503 from the API", 503, later, "failed 1x"),
        ],
        NOW,
    )
    assert result.updated == 1 and result.failed == 1
    assert [e[0] for e in result.write_errors] == [ids[1]]
    first = await store.shipments.get(ids[0])
    assert first is not None and first.status_code == "IT" and first.next_sync_at is not None
    assert len(await store.shipments.events(ids[0])) == 1
    third = await store.shipments.get(ids[2])
    assert third is not None and third.consecutive_failures == 1 and third.last_error_kind == "transient"
    assert (await store.runs.errors_by_kind(NOW - timedelta(days=1))) == {"transient": 1}


async def test_events_are_deduplicated_across_fetches(store: Store) -> None:
    """Fetching the same history twice stores each scan once and counts the second fetch as unchanged."""
    sid = (await store.shipments.add_many([NewShipment("ups", "1Z1")], NOW)).added[0].id
    events = (TrackingEvent(NOW - timedelta(hours=2), "Picked up", "AC"), TrackingEvent(NOW, "Departed", "IT"))
    info = TrackingInfo("1Z1", "IT", events=events)
    first = await store.shipments.apply(None, [FetchSuccess(sid, info, NOW, "r")], NOW)
    second = await store.shipments.apply(None, [FetchSuccess(sid, info, NOW, "r")], NOW)
    assert (first.updated, second.unchanged) == (1, 1)
    assert len(await store.shipments.events(sid)) == 2


async def test_terminal_result_deactivates(store: Store) -> None:
    """A result with no next check takes the shipment out of the schedule; retrack puts it back."""
    sid = (await store.shipments.add_many([NewShipment("ups", "1Z1")], NOW)).added[0].id
    await store.shipments.apply(None, [FetchSuccess(sid, TrackingInfo("1Z1", "DE"), None, "delivered")], NOW)
    assert await store.shipments.count_due(NOW + timedelta(days=9)) == 0
    assert await store.shipments.retrack(sid, NOW)
    assert await store.shipments.count_due(NOW) == 1


async def test_due_walks_oldest_first_with_a_keyset(store: Store) -> None:
    """Due selection returns the oldest-due first and pages by (next_sync_at, id) without repeats."""
    await store.shipments.add_many([NewShipment("ups", f"1Z{i:03}") for i in range(25)], NOW)
    seen: list[str] = []
    key = None
    while batch := await store.shipments.due(NOW, 10, after=key):
        seen += [s.id for s in batch]
        last = batch[-1]
        assert last.next_sync_at is not None  # a due shipment has its time
        key = (last.next_sync_at, last.id)
    assert len(seen) == len(set(seen)) == 25


async def test_due_query_uses_the_partial_index(sqlite_store: Store) -> None:
    store = sqlite_store
    """'What is due now' is an index range scan, not a table scan."""
    plan = await store.db.fetchall(
        "EXPLAIN QUERY PLAN SELECT id FROM shipments WHERE active = 1 AND next_sync_at <= ?"
        " ORDER BY next_sync_at, id LIMIT 100",
        ("2026-01-01",),
    )
    detail = " ".join(r["detail"] for r in plan)
    assert "shipments_due" in detail and "SCAN shipments" not in detail


async def test_orphaned_runs_are_marked_interrupted(store: Store) -> None:
    """A run left 'running' by a crash is marked interrupted at the next start."""
    run_id = await store.runs.start("schedule", NOW)
    assert await store.runs.interrupt_orphans(NOW) == 1
    run = await store.runs.get(run_id)
    assert run is not None and run.outcome == "interrupted" and run.finished_at == NOW
    await store.runs.finish(run_id, RunCounts(selected=1), "ok", "", NOW)


async def test_full_disk_is_a_clear_error_and_loses_nothing(sqlite_store: Store) -> None:
    store = sqlite_store
    """When SQLite reports the disk full, the write fails with StoreError and earlier data stays intact."""
    await store.shipments.add_many([NewShipment("ups", "1Z-KEEP")], NOW)

    def cap(conn: Conn) -> None:
        size = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {size}")

    await store.db.write(cap)
    with pytest.raises(StoreError, match="full"):
        await store.shipments.add_many([NewShipment("ups", f"1Z{i:05}", "x" * 150) for i in range(5000)], NOW)
    assert (await store.shipments.counts())["total"] == 1
    assert (await store.shipments.list(search="1Z-KEEP"))[0][0].tracking_number == "1Z-KEEP"


async def test_one_large_add_gives_every_shipment_its_own_id(sqlite_store: Store) -> None:
    store = sqlite_store  # about the ids, not the backend (20k rows cost a loaded PostgreSQL 10 s)
    """A single add of 20,000 shipments (one timestamp for all) yields 20,000 distinct ids."""
    added = await store.shipments.add_many([NewShipment("ups", f"1Z{i:06}") for i in range(20_000)], NOW)
    assert len({a.id for a in added.added}) == 20_000


# --- shipment_tally (schema migration 3): the counts behind status, stats and metrics -------------


async def _assert_tally_exact(store: Store) -> None:
    """The tally, and every count read from it, equals what a scan of the shipments themselves gives."""
    tally = await store.db.fetchall("SELECT status_code, active, n FROM shipment_tally WHERE n != 0 ORDER BY 1, 2")
    real = await store.db.fetchall(
        "SELECT coalesce(status_code, ''), active, count(*) FROM shipments GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert [tuple(r) for r in tally] == [tuple(r) for r in real]
    # Same values, same shapes and order as the GROUP BYs these methods ran before the tally.
    row = await store.db.fetchone("SELECT count(*), coalesce(sum(active), 0) FROM shipments")
    assert row is not None
    total, active = row[0], row[1]
    assert await store.shipments.counts() == {"total": total, "active": active}
    assert await store.shipments.count_active() == active
    by_status = await store.db.fetchall(
        "SELECT status_code, count(*) FROM shipments GROUP BY status_code ORDER BY coalesce(status_code, '')"
    )
    assert list((await store.shipments.count_by("status_code")).items()) == [(r[0] or "none", r[1]) for r in by_status]
    active_by = await store.db.fetchall(
        "SELECT status_code, count(*) FROM shipments WHERE active = 1 GROUP BY 1 ORDER BY coalesce(status_code, '')"
    )
    assert list((await store.shipments.count_by_active_status()).items()) == [(r[0] or "none", r[1]) for r in active_by]
    mix = await store.db.fetchall(
        "SELECT coalesce(status_code, 'none'), active, count(*) FROM shipments GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert await store.health.shipment_mix() == [(r[0], bool(r[1]), r[2]) for r in mix]


def _scan(status: str) -> TrackingInfo:
    return TrackingInfo("x", status, events=(TrackingEvent(NOW - timedelta(hours=1), f"scan {status}", status),))


async def test_tally_stays_exact_through_adds_applies_retrack_and_remove(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write path keeps shipment_tally equal to the real counts, a rolled-back fast path included."""
    import shiptrackd.store.apply as shipments_module

    paths: list[str] = []
    batch = shipments_module._apply_batch

    def spy(*args: Any) -> Any:
        try:
            out = batch(*args)
        except sqlite3.Error:
            paths.append("batch rolled back")
            raise
        paths.append("batch")
        return out

    monkeypatch.setattr(shipments_module, "_apply_batch", spy)
    later = NOW + timedelta(hours=2)
    added = await store.shipments.add_many([NewShipment("ups", f"1Z{i:02}") for i in range(12)], NOW)
    ids = [a.id for a in added.added]
    await store.shipments.add_many([NewShipment("ups", "1Z00"), NewShipment("fedex", "1Z00")], NOW)  # 1 dup, 1 new
    await _assert_tally_exact(store)
    assert await store.shipments.counts() == {"total": 13, "active": 13}

    # The batch fast path: first statuses, delivered (terminal, inactive), a failure that gives up.
    await store.shipments.apply(
        None,
        [
            *(FetchSuccess(sid, _scan("IT"), later, "in transit") for sid in ids[:4]),
            *(FetchSuccess(sid, _scan("DE"), None, "delivered") for sid in ids[4:6]),
            FetchFailure(ids[6], "not_found", "404", 404, None, "gave up"),
            FetchFailure(ids[7], "transient", "503", 503, later, "failed 1x"),
        ],
        NOW,
    )
    assert paths == ["batch"]
    await _assert_tally_exact(store)
    assert await store.shipments.count_by("status_code") == {"none": 7, "DE": 2, "IT": 4}
    assert await store.shipments.count_by_active_status() == {"none": 6, "IT": 4}

    # A status change that keeps the shipment active, and an unchanged status (the trigger's WHEN skips it).
    await store.shipments.apply(
        None,
        [FetchSuccess(ids[0], _scan("EX"), later, "exception"), FetchSuccess(ids[1], _scan("IT"), later, "r")],
        NOW,
    )
    assert paths == ["batch", "batch"]
    await _assert_tally_exact(store)

    # The fast path fails after its UPDATEs ran (a failure for a removed shipment): its savepoint rolls
    # back, tally rows included, and the per-shipment fallback writes the rest.
    assert await store.shipments.remove(ids[11])
    result = await store.shipments.apply(
        None,
        [
            FetchSuccess(ids[0], _scan("AT"), later, "attempt"),
            FetchSuccess(ids[2], _scan("DE"), None, "delivered"),
            FetchFailure(ids[11], "transient", "503", 503, later, "failed 1x"),
        ],
        NOW,
    )
    assert paths[-1] == "batch rolled back" and [e[0] for e in result.write_errors] == [ids[11]]
    assert result.changed == [(ids[0], "EX", "AT"), (ids[2], "IT", "DE")]
    await _assert_tally_exact(store)

    # A batch naming one shipment twice skips the fast path: shipment by shipment from the start.
    tried = len(paths)
    await store.shipments.apply(
        None, [FetchSuccess(ids[3], _scan("SP"), later, "pickup"), FetchSuccess(ids[3], _scan("DE"), None, "d")], NOW
    )
    assert len(paths) == tried
    await _assert_tally_exact(store)

    # Terminal back to active: retrack a delivered one and one that gave up with no status yet.
    assert await store.shipments.retrack(ids[4], NOW) and await store.shipments.retrack(ids[6], NOW)
    await _assert_tally_exact(store)
    assert (await store.shipments.count_by_active_status())["DE"] == 1

    # Removals, one of a shipment already gone, then an add of a removed number.
    assert await store.shipments.remove(ids[0]) and await store.shipments.remove(ids[5])
    assert not await store.shipments.remove(ids[0])
    await store.shipments.add_many([NewShipment("ups", "1Z11")], NOW)
    await _assert_tally_exact(store)
    assert await store.shipments.counts() == {"total": 11, "active": 9}


PROVIDER_COLUMNS = (
    "provider",
    "provider_ref",
    "provider_status",
    "provider_sub_status",
    "carrier_source",
    "detected_carrier",
)


async def test_migration_3_fills_the_tally_from_an_existing_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written at schema 2 (no tally), shipments in every state, gets an exact tally on upgrade."""
    from shiptrackd.store.schema import MIGRATIONS

    path = tmp_path / "v2.db"
    with monkeypatch.context() as old_code:  # the shiptrackd before migration 3
        old_code.setattr("shiptrackd.store.db.MIGRATIONS", MIGRATIONS[:2])
        old_code.setattr("shiptrackd.store.db.LATEST_VERSION", 2)
        old = await Store.open(path)
        # Today's code writes the provider columns (migration 5): give its writes somewhere to land, and
        # take them away again below, so the file is a schema-2 store as far as the upgrade can tell.
        with sqlite3.connect(path) as conn:
            for column in PROVIDER_COLUMNS:
                conn.execute(f"ALTER TABLE shipments ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        added = await old.shipments.add_many([NewShipment("ups", f"1Z{i:03}") for i in range(40)], NOW)
        ids = [a.id for a in added.added]

        # Written with SQL of that schema's columns: today's writer knows columns a v2 file lacks (migration 5).
        def old_writes(conn: Conn) -> None:
            conn.executemany("UPDATE shipments SET status_code = 'IT' WHERE id = ?", [(i,) for i in ids[:20]])
            conn.executemany(
                "UPDATE shipments SET status_code = 'DE', active = 0 WHERE id = ?", [(i,) for i in ids[20:30]]
            )
            conn.execute("UPDATE shipments SET active = 0, last_error_kind = 'not_found' WHERE id = ?", (ids[30],))

        await old.db.write(old_writes)
        await old.shipments.remove(ids[39])
        await old.close()
    with sqlite3.connect(path) as conn:
        for column in PROVIDER_COLUMNS:
            conn.execute(f"ALTER TABLE shipments DROP COLUMN {column}")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE '%tally%'").fetchone()[0] == 0
    conn.close()

    s = await Store.open(path)
    try:
        versions = [r[0] for r in await s.db.fetchall("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions[:3] == [1, 2, 3] and versions == list(range(1, LATEST_VERSION + 1))
        assert await s.shipments.counts() == {"total": 39, "active": 28}
        assert await s.shipments.count_by("status_code") == {"none": 9, "DE": 10, "IT": 20}
        await _assert_tally_exact(s)
        # ...and its triggers keep it so from then on.
        await s.shipments.apply(None, [FetchSuccess(ids[0], _scan("DE"), None, "delivered")], NOW)
        await s.shipments.remove(ids[1])
        await _assert_tally_exact(s)
        assert await s.shipments.counts() == {"total": 38, "active": 26}
    finally:
        await s.close()
