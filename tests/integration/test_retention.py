"""
The retention loop on a real SQLite file: what goes and what stays, batches a sync's writes go
between, space given back to the file system, and the figures `status` shows.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Running

from shiptrackd.clock import FakeClock
from shiptrackd.config import StoreConfig
from shiptrackd.models import NewShipment
from shiptrackd.store import Store
from shiptrackd.store.db import to_db
from shiptrackd.store.retention import cutoffs
from shiptrackd.store.sql import Conn
from shiptrackd.wire.events import LoopChanged

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(any_store: Store) -> Store:
    """What goes and what stays is the same on both backends (a real SQLite file, a real PostgreSQL)."""
    return any_store


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "st.db")
    yield s
    await s.close()


async def seed(store: Store, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert fixture rows (with old timestamps, which the public writes stamp as now) in one transaction."""
    await store.db.write(lambda conn: conn.executemany(sql, rows))


async def count(store: Store, sql: str) -> int:
    return int(await store.db.scalar(sql))


async def column(store: Store, sql: str) -> list[Any]:
    return [r[0] for r in await store.db.fetchall(sql)]


ERROR_SQL = "INSERT INTO sync_errors (occurred_at, kind, message) VALUES (?, 'transient', ?)"
RUN_SQL = "INSERT INTO sync_runs (trigger, started_at, finished_at, outcome) VALUES ('schedule', ?, ?, ?)"
HEALTH_SQL = "INSERT INTO health_reports (at, level, summary, report, evaluated) VALUES (?, 'ok', 's', '{}', ?)"
ALERT_SQL = (
    "INSERT INTO alerts (notification_id, created_at, kind, severity, checks, title, body, channel, channel_key,"
    " status) VALUES (1, ?, 'firing', 'warning', '[]', 't', 'b', 'console', 'k', ?)"
)
EVENT_SQL = "INSERT INTO tracking_events (shipment_id, occurred_at, dedup_key) VALUES (?, ?, ?)"


async def test_a_pass_deletes_only_what_is_older_than_each_age(store: Store) -> None:
    """Old runs, errors, evaluated reports, delivered alerts and long-terminal events go; everything else stays."""
    clock = FakeClock()
    now = clock.now()

    def ago(days: float) -> str | None:
        return to_db(now - timedelta(days=days))

    await seed(store, RUN_SQL, [(ago(200), ago(200), "ok"), (ago(100), ago(100), "failed"), (ago(95), None, "ok")])
    await seed(store, RUN_SQL, [(ago(120), None, "running"), (ago(1), ago(1), "failed")])
    await seed(store, ERROR_SQL, [(ago(31), "old"), (ago(29), "young")])
    await seed(store, HEALTH_SQL, [(ago(8), 1), (ago(8), 0), (ago(6), 1)])
    await seed(store, ALERT_SQL, [(ago(31), "sent"), (ago(31), "failed"), (ago(31), "pending"), (ago(29), "sent")])
    added = await store.shipments.add_many([NewShipment("ups", n) for n in ("1ZOLDDONE", "1ZNEWDONE", "1ZLIVE")], now)
    ids = {a.tracking_number: a.id for a in added.added}
    await seed(store, EVENT_SQL, [(sid, ago(200), f"k{i}") for sid in ids.values() for i in range(3)])
    await seed(
        store,
        "UPDATE shipments SET active = ?, updated_at = ? WHERE id = ?",
        [(0, ago(91), ids["1ZOLDDONE"]), (0, ago(89), ids["1ZNEWDONE"]), (1, ago(200), ids["1ZLIVE"])],
    )

    outbox_sql = (
        "INSERT INTO outbox (message_id, endpoint, shipment_id, event_type, body, created_at, next_attempt_at,"
        " state, finished_at) VALUES (?, 'shop', 'ship_x', 'shipment.added', '{}', ?, ?, ?, ?)"
    )
    await seed(
        store,
        outbox_sql,
        [
            ("msg_old_done", ago(40), ago(40), "delivered", ago(31)),
            ("msg_old_dead", ago(40), ago(40), "dead", ago(31)),
            ("msg_old_waiting", ago(40), ago(40), "pending", None),
            ("msg_young_done", ago(2), ago(2), "delivered", ago(29)),
        ],
    )

    result = await store.retention.run_once(cutoffs(now, StoreConfig()))

    # Finished webhooks older than keep_deliveries go; an undelivered one never does.
    assert sorted(await column(store, "SELECT message_id FROM outbox")) == ["msg_old_waiting", "msg_young_done"]
    # The newest successful run (95 days old) and a run still marked running are kept.
    assert await column(store, "SELECT outcome FROM sync_runs ORDER BY id") == ["ok", "running", "failed"]
    assert await column(store, "SELECT message FROM sync_errors") == ["young"]
    assert await column(store, "SELECT evaluated FROM health_reports ORDER BY id") == [0, 1]  # the unevaluated stays
    assert sorted(await column(store, "SELECT status FROM alerts")) == ["pending", "sent"]
    events = await store.db.fetchall("SELECT shipment_id, count(*) FROM tracking_events GROUP BY 1")
    assert {r[0]: r[1] for r in events} == {ids["1ZNEWDONE"]: 3, ids["1ZLIVE"]: 3}
    assert await store.shipments.get(ids["1ZOLDDONE"]) is not None  # the shipment itself stays
    assert result.deleted == {
        "sync_errors": 1,
        "sync_runs": 2,
        "health_reports": 1,
        "alerts": 2,
        "outbox": 2,
        "terminal_events": 3,
    }


async def test_deletes_go_in_batches_that_let_a_waiting_write_in(store: Store) -> None:
    """With 5,000 old errors in batches of 1,000, a write queued behind the first batch runs before the last."""
    clock = FakeClock()
    old = to_db(clock.now() - timedelta(days=400))
    await seed(store, ERROR_SQL, [(old, f"e{i}") for i in range(5000)])
    seen_by_writer: list[int] = []

    def write(conn: Conn) -> None:
        seen_by_writer.append(conn.execute("SELECT count(*) FROM sync_errors").fetchone()[0])
        conn.execute("INSERT INTO sync_runs (trigger, started_at) VALUES ('schedule', ?)", (to_db(clock.now()),))

    results: list[Any] = []

    async def retention() -> None:
        results.append(await store.retention.run_once(cutoffs(clock.now(), StoreConfig()), batch_rows=1000))

    async with anyio.create_task_group() as tg:
        tg.start_soon(retention)
        await anyio.lowlevel.checkpoint()  # the retention pass takes the writer for its first batch
        tg.start_soon(store.db.write, write)

    assert results[0].deleted["sync_errors"] == 5000
    assert 0 < seen_by_writer[0] < 5000  # the write went in between batches, not after the whole backlog
    assert await count(store, "SELECT count(*) FROM sync_errors") == 0


async def test_a_new_store_gives_freed_space_back_to_the_file_system(sqlite_store: Store) -> None:
    store = sqlite_store  # PostgreSQL's autovacuum does this itself
    """Stores are created with auto_vacuum=incremental, and a pass returns the pages its deletes freed."""
    clock = FakeClock()
    old = to_db(clock.now() - timedelta(days=400))
    await seed(store, ERROR_SQL, [(old, "x" * 400) for _ in range(5000)])
    pages_before = await store.db.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])

    result = await store.retention.run_once(cutoffs(clock.now(), StoreConfig()))
    figures = await store.retention.measure(clock.now())

    pages_after = await store.db.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    assert result.pages_freed > 0 and pages_after < pages_before - 400
    assert figures["auto_vacuum"] == "incremental" and figures["free_bytes"] == 0
    assert figures["tables"]["sync_errors"] == {"rows": 0, "bytes": figures["tables"]["sync_errors"]["bytes"]}


async def test_a_store_from_before_auto_vacuum_is_left_as_it_is(tmp_path: Path) -> None:
    """An existing file keeps auto_vacuum=none (no surprise VACUUM at start); a pass still deletes and reports it."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE legacy (x)")  # a file with a table can no longer change auto_vacuum
    store = await Store.open(path)
    try:
        clock = FakeClock()
        await seed(store, ERROR_SQL, [(to_db(clock.now() - timedelta(days=400)), "x")])
        result = await store.retention.run_once(cutoffs(clock.now(), StoreConfig()))
        figures = await store.retention.measure(clock.now())
    finally:
        await store.close()
    assert result.deleted["sync_errors"] == 1 and result.pages_freed == 0
    assert figures["auto_vacuum"] == "none"


async def test_the_daemon_runs_a_retention_loop_and_status_shows_the_tables(running: Running) -> None:
    """The daemon has a `retention` loop; once it has run, status lists each table's rows and bytes."""
    client = running.client
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": f"1ZRET{i:04}"} for i in range(25)])
    assert (await client.status()).store.tables is None  # not measured yet (the loop is quiet in tests)
    since = (await client.status()).event_seq
    await client.loop_action("retention", "trigger")
    with anyio.fail_after(10):
        async for event in client.events(since=since):
            if isinstance(event, LoopChanged) and event.loop.name == "retention" and event.loop.runs:
                loop = event.loop
                break
    store = (await client.status()).store
    assert store.tables is not None
    assert store.tables["shipments"].rows == 25 and store.tables["shipments"].bytes > 0
    assert set(store.tables) >= {"tracking_events", "sync_runs", "sync_errors", "health_reports", "alerts"}
    assert store.auto_vacuum == "incremental" and store.measured_at is not None
    assert loop.last_outcome.startswith("deleted 0 rows")

    done = await anyio.run_process(
        [sys.executable, "-m", "shiptrackd.ctl", "--socket", str(running.config.daemon.socket), "status"], check=False
    )
    assert done.returncode == 0, done.stderr
    (history,) = [line for line in done.stdout.decode().splitlines() if line.startswith("history")]
    assert "25 shipments (" in history and "free in the file (measured" in history


async def test_postgresql_folds_the_tally_and_measures_its_tables(pg_url: str) -> None:
    """On PostgreSQL the pass folds the tally's deltas (counts unchanged) and measures rows and bytes per table."""
    from pg_fixtures import truncate_all

    truncate_all(pg_url)
    store = await Store.open(pg_url)
    try:
        clock = FakeClock()
        await store.shipments.add_many([NewShipment("ups", f"1Z{i}") for i in range(30)], clock.now())
        await store.shipments.remove((await store.shipments.list(limit=1))[0][0].id)
        deltas = int(await store.db.scalar("SELECT count(*) FROM shipment_tally_delta"))
        assert deltas == 31
        result = await store.retention.run_once(cutoffs(clock.now(), StoreConfig()))
        assert result.pages_freed == 0
        assert int(await store.db.scalar("SELECT count(*) FROM shipment_tally_delta")) == 1
        assert await store.shipments.counts() == {"total": 29, "active": 29}
        await store.db.write(lambda conn: conn.execute("ANALYZE shipments"))
        figures = await store.retention.measure(clock.now())
        assert figures["tables"]["shipments"]["rows"] == 29 and figures["tables"]["shipments"]["bytes"] > 0
        assert set(figures["tables"]) >= {"shipments", "tracking_events", "alerts"}
    finally:
        await store.close()
