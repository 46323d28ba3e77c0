"""
A full disk or a locked store, produced for real: the cause is recorded and reported, never
hidden as a cancellation or as "daemon unavailable".

SQLITE_FULL comes from `PRAGMA max_page_count` on the daemon's own writer connection: the
same error a full file system gives, without root or a tmpfs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from conftest import Running, daemon_config

from shiptrackd.clock import FakeClock
from shiptrackd.errors import StoreFullError, StoreLockedError
from shiptrackd.events import EventBus
from shiptrackd.models import NewShipment
from shiptrackd.providers import ShipEngineProvider
from shiptrackd.sandbox import Sandbox
from shiptrackd.store import Store
from shiptrackd.store.db import store_error
from shiptrackd.store.sql import Conn
from shiptrackd.sync.engine import SyncEngine
from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_SCRIPT = Path(sys.executable).with_name("shiptrackctl")
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shiptrackd.ctl"]


async def cap_pages(store: Store, extra: int = 0) -> None:
    """Let the store's file grow by at most *extra* pages from now on (a disk that is nearly full)."""

    def fn(conn: Conn) -> None:
        size = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {size + extra}")

    await store.db.write(fn)


def numbers(count: int, prefix: str = "1ZFULL") -> list[str]:
    return [f"{prefix}{i:06}" for i in range(count)]


async def test_a_full_disk_fails_the_whole_batch_with_its_cause(tmp_path: Path) -> None:
    """apply() on a full disk raises StoreFullError ("disk full: ...") instead of failing each shipment alone."""
    from shiptrackd.models import TrackingEvent, TrackingInfo
    from shiptrackd.store import FetchSuccess

    store = await Store.open(tmp_path / "st.db")
    try:
        added = await store.shipments.add_many([NewShipment("ups", n) for n in numbers(200)], NOW)
        await cap_pages(store)
        events = tuple(TrackingEvent(NOW, "scan " + "x" * 200, "IT", f"E{i}") for i in range(5))
        results = [
            FetchSuccess(a.id, TrackingInfo(a.tracking_number, "IT", events=events), NOW, "in_transit")
            for a in added.added
        ]
        with pytest.raises(StoreFullError, match=r"^disk full: database or disk is full"):
            await store.shipments.apply(None, results, NOW)
        assert (await store.shipments.count_by("status_code")) == {"none": 200}
    finally:
        await store.close()


def test_a_held_write_lock_is_reported_as_a_locked_store(tmp_path: Path) -> None:
    """SQLITE_BUSY from a real second writer becomes StoreLockedError naming the lock, not a generic failure."""
    path = tmp_path / "lock.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            other.execute("BEGIN IMMEDIATE")
        error = store_error(caught.value, "the store write")
        assert isinstance(error, StoreLockedError)
        assert error.message.startswith("store locked: database is locked")
        assert error.http_status != 503  # 503 reads as "daemon unavailable" to clients
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        other.close()


async def test_a_run_broken_by_a_full_disk_is_recorded_as_failed_with_the_cause(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """A sync whose writes hit a full disk ends 'failed' with "disk full: ..." in its record, not 'interrupted'."""
    config = daemon_config(tmp_path, sandbox.base_url)
    store = await Store.open(tmp_path / "shiptrackd.db")
    stats = ApiStats()
    provider = ShipEngineProvider(config.provider, observer=stats.observe)
    clock = FakeClock()
    engine = SyncEngine(store, ProviderThrottle(provider, config.provider, stats), clock, EventBus(), config)
    try:
        await store.shipments.add_many([NewShipment("ups", n) for n in numbers(300, "1ZINTRANSIT")], clock.now())
        await cap_pages(store, extra=2)  # room for the run's own row, not for 300 shipments' events
        with pytest.raises(StoreFullError, match="^disk full"):  # the loop's last_error names it too
            await engine.run_once("manual")
        (run,) = await store.runs.recent(1)
        assert run.outcome == "failed"
        assert run.stop_reason.startswith("disk full: database or disk is full")
    finally:
        await provider.aclose()
        await store.close()


async def test_import_on_a_full_disk_exits_1_with_the_daemons_message_and_adds_nothing(
    running: Running, tmp_path: Path
) -> None:
    """`shipments import` on a full disk exits 1 (not 69) saying "disk full", and no part of the file lands."""
    rows = numbers(1500, "1ZIMPORT")
    # Room for about the first 1,000 rows, measured on a scratch store: the old 1,000-row chunks fitted one.
    scratch = await Store.open(tmp_path / "scratch.db")
    try:
        before = await scratch.db.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await scratch.shipments.add_many([NewShipment("ups", n) for n in rows[:1000]], NOW)
        room = await scratch.db.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0]) - before
    finally:
        await scratch.close()
    assert running.daemon.store is not None
    await cap_pages(running.daemon.store, extra=room + room // 10)
    path = tmp_path / "ship.jsonl"
    path.write_text("\n".join(json.dumps({"carrier_code": "ups", "tracking_number": n}) for n in rows) + "\n")

    with anyio.fail_after(30):
        done = await anyio.run_process(
            [*CTL, "--socket", str(running.config.daemon.socket), "shipments", "import", str(path)],
            check=False,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "disk full" in err
    assert "systemctl status" not in err  # not dressed up as "daemon unavailable"
    assert (await running.client.status()).store.shipments == 0
