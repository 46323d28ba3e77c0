"""
Stopping the daemon in the middle of a sync, as a real subprocess against the sandbox over
HTTP: SIGTERM finishes in-flight calls and closes the run as interrupted; kill -9 leaves every
shipment fully updated or untouched, and the next start marks the orphaned run interrupted.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from test_lifecycle import DaemonProcess, daemon_env, daemon_process, integrity, poll

from shiptrackd.api.client import ApiClient
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio


def query(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def classify_shipments(db: Path) -> dict[str, list[str]]:
    """Every shipment is either fully updated (status, events, schedule) or untouched; anything else is torn."""
    rows = query(
        db,
        "SELECT s.*, (SELECT count(*) FROM tracking_events e WHERE e.shipment_id = s.id) AS n_events FROM shipments s",
    )
    out: dict[str, list[str]] = {"updated": [], "untouched": [], "torn": []}
    for r in rows:
        updated = (
            r["status_code"] is not None
            and r["last_synced_at"] is not None
            and r["n_events"] > 0
            and r["schedule_reason"] not in ("new", "")
            and r["next_sync_at"] > r["created_at"]
        )
        untouched = (
            r["status_code"] is None
            and r["last_synced_at"] is None
            and r["n_events"] == 0
            and r["schedule_reason"] == "new"
            and r["next_sync_at"] == r["created_at"]
            and r["consecutive_failures"] == 0
        )
        out["updated" if updated else "untouched" if untouched else "torn"].append(r["id"])
    return out


async def start_run_and_wait_for_progress(daemon: DaemonProcess, count: int, min_done: int) -> int:
    """Add shipments, start a sync, and return its id once at least *min_done* results are written."""
    async with ApiClient(daemon.socket) as client:
        await client.add_shipments(
            [{"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT{i:04}"} for i in range(count)]
        )
        run_id = (await client.sync()).run_id
        with anyio.fail_after(10):
            while True:
                status = await client.status()
                sync = status.sync
                assert sync is not None, "the run ended before the test could interrupt it"
                if sync.done >= min_done:
                    return run_id
                await anyio.sleep(0.02)


async def test_sigterm_mid_run_finishes_in_flight_calls_and_marks_the_run_interrupted(
    short_tmp: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    """SIGTERM mid-sync: exit 0 within the grace period, in-flight answers kept, run interrupted, socket gone."""
    sandbox.configure(latency_s=0.2)
    env = daemon_env(
        short_tmp,
        sandbox.base_url,
        SHIPTRACK_PROVIDER__CONCURRENCY="2",
        SHIPTRACK_SYNC__BATCH_SIZE="2",
    )
    async with daemon_process(env, tmp_path / "log") as daemon:
        await daemon.wait_ready()
        run_id = await start_run_and_wait_for_progress(daemon, count=30, min_done=2)
        started = time.monotonic()
        assert await daemon.stop(signal.SIGTERM) == 0
        took = time.monotonic() - started
    assert took < 5.0  # shutdown_grace
    assert not daemon.socket.exists()
    db = short_tmp / "shiptrackd.db"
    assert integrity(db) == "ok"
    run = query(db, "SELECT * FROM sync_runs WHERE id = ?", run_id)[0]
    assert run["outcome"] == "interrupted" and "stopping" in run["stop_reason"]
    assert run["finished_at"] is not None
    assert run["skipped"] > 0 and run["updated"] >= 2
    # `selected` counts the batches taken from the store before the stop; the rest were never read.
    assert run["updated"] + run["failed"] + run["skipped"] == run["selected"] <= 30
    shipments = classify_shipments(db)
    assert shipments["torn"] == []
    # Every call that reached the sandbox was allowed to finish and its answer was written.
    assert len(shipments["updated"]) == run["updated"] == sandbox.stats.total
    assert "shiptrackd stopped" in daemon.output()


async def test_kill_9_mid_run_leaves_whole_shipments_and_the_restart_closes_the_orphaned_run(
    short_tmp: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    """After kill -9 mid-sync each shipment is fully updated or untouched; the next start marks the run interrupted."""
    sandbox.configure(latency_s=0.05)
    env = daemon_env(
        short_tmp,
        sandbox.base_url,
        SHIPTRACK_PROVIDER__CONCURRENCY="4",
        SHIPTRACK_SYNC__BATCH_SIZE="3",
    )
    db = short_tmp / "shiptrackd.db"
    async with daemon_process(env, tmp_path / "first.log") as daemon:
        await daemon.wait_ready()
        run_id = await start_run_and_wait_for_progress(daemon, count=120, min_done=6)
        assert await daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert daemon.socket.exists()  # kill -9 leaves the socket file behind

    assert integrity(db) == "ok"
    orphan = query(db, "SELECT * FROM sync_runs WHERE id = ?", run_id)[0]
    assert orphan["outcome"] == "running" and orphan["finished_at"] is None
    shipments = classify_shipments(db)
    assert shipments["torn"] == []
    assert len(shipments["updated"]) >= 6 and shipments["untouched"]

    async with daemon_process(env, tmp_path / "second.log") as restarted:
        status = await restarted.wait_ready()  # the stale socket file was replaced
        assert status.store.shipments == 120
        async with ApiClient(restarted.socket) as client:
            run = await client.run(run_id)
        assert run.outcome == "interrupted" and run.finished_at is not None
        assert run.stop_reason == "the daemon stopped during the run"
        assert await restarted.stop() == 0
    assert "marked 1 sync run(s) left running" in restarted.output()
    assert integrity(db) == "ok"
    assert classify_shipments(db) == shipments


async def test_sigint_with_calls_outlasting_the_grace_period_still_stops_in_time(
    short_tmp: Path, tmp_path: Path, sandbox: Sandbox
) -> None:
    """When in-flight calls outlast shutdown_grace they are cancelled: exit 0 soon after the grace, nothing torn."""
    sandbox.configure(latency_s=3.0)
    env = daemon_env(
        short_tmp,
        sandbox.base_url,
        SHIPTRACK_PROVIDER__TIMEOUT="10s",
        SHIPTRACK_DAEMON__SHUTDOWN_GRACE="0.5s",
    )
    async with daemon_process(env, tmp_path / "log") as daemon:
        await daemon.wait_ready()
        async with ApiClient(daemon.socket) as client:
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
            run_id = (await client.sync()).run_id
        await poll(anyio.lowlevel.checkpoint, lambda _: sandbox.stats.in_flight >= 1)  # the call is on the wire
        started = time.monotonic()
        assert await daemon.stop(signal.SIGINT) == 0
        took = time.monotonic() - started
    assert 0.5 <= took < 2.5  # the grace was given, then the call was abandoned (the sandbox would take 3 s)
    db = short_tmp / "shiptrackd.db"
    assert integrity(db) == "ok"
    run = query(db, "SELECT * FROM sync_runs WHERE id = ?", run_id)[0]
    assert run["outcome"] == "interrupted" and run["finished_at"] is not None
    assert run["updated"] == 0 and run["skipped"] == 1
    assert classify_shipments(db)["untouched"] and classify_shipments(db)["torn"] == []
    assert not daemon.socket.exists()
