"""
The sync engine against the sandbox over loopback: every fault class ends in its documented
outcome, with the run's counts, the sync_errors audit trail and the shipments all agreeing.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import daemon_config

from shiptrackd.clock import FakeClock
from shiptrackd.config import Config
from shiptrackd.events import EventBus
from shiptrackd.models import NewShipment
from shiptrackd.providers import ShipEngineProvider
from shiptrackd.sandbox import Sandbox
from shiptrackd.store import Store
from shiptrackd.store.rows import Shipment
from shiptrackd.sync.engine import SyncEngine
from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

pytestmark = pytest.mark.anyio


@dataclass
class Rig:
    engine: SyncEngine
    store: Store
    clock: FakeClock
    config: Config
    db_path: Path

    async def add(self, *numbers: str, carrier: str = "ups") -> dict[str, str]:
        """Add shipments; returns tracking number -> shipment id."""
        items = [NewShipment(carrier, n, "") for n in numbers]
        result = await self.store.shipments.add_many(items, self.clock.now())
        return {a.tracking_number: a.id for a in result.added}

    async def shipment(self, shipment_id: str) -> Shipment:
        """The stored shipment, which must exist."""
        row = await self.store.shipments.get(shipment_id)
        assert row is not None, shipment_id
        return row

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        """Read the real SQLite file with a connection of our own, as an operator would."""
        with sqlite3.connect(self.db_path) as conn:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, params).fetchall()


@asynccontextmanager
async def make_rig(state_dir: Path, base_url: str, **env: str) -> AsyncIterator[Rig]:
    """A SyncEngine wired like the daemon's: real store file, real provider over HTTP, a fake clock."""
    config = daemon_config(state_dir, base_url, **env)
    store = await Store.open(state_dir / "shiptrackd.db")
    stats = ApiStats()
    provider = ShipEngineProvider(config.provider, observer=stats.observe)
    clock = FakeClock()
    engine = SyncEngine(store, ProviderThrottle(provider, config.provider, stats), clock, EventBus(), config)
    try:
        yield Rig(engine, store, clock, config, state_dir / "shiptrackd.db")
    finally:
        await provider.aclose()
        await store.close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_each_fault_class_ends_in_its_documented_outcome(tmp_path: Path, sandbox: Sandbox) -> None:
    """404, 5xx, flaky, reset, hang, bad JSON and bad schema each mark only their shipment, as documented."""
    async with make_rig(tmp_path, sandbox.base_url, SHIPTRACK_PROVIDER__TIMEOUT="0.3s") as rig:
        ids = await rig.add(
            "1ZINTRANSIT01",
            "1ZNOTFOUND01",
            "1ZFAIL50001",
            "1ZFLAKY0001",
            "1ZRESET0001",
            "1ZHANG0001",
            "1ZBADJSON01",
            "1ZBADSCHEMA1",
        )
        run = await rig.engine.run_once("manual")

        # 3 attempts each (stamina's testing cap) for 500, reset and hang; flaky succeeds on its 3rd.
        assert sandbox.stats.requests_for("1ZFAIL50001") == 3
        assert sandbox.stats.requests_for("1ZRESET0001") == 3
        assert sandbox.stats.requests_for("1ZHANG0001") == 3
        assert sandbox.stats.requests_for("1ZFLAKY0001") == 3
        for once in ("1ZINTRANSIT01", "1ZNOTFOUND01", "1ZBADJSON01", "1ZBADSCHEMA1"):
            assert sandbox.stats.requests_for(once) == 1, once

        assert run["outcome"] == "partial"
        assert (run["selected"], run["updated"], run["unchanged"], run["failed"], run["skipped"]) == (8, 2, 0, 6, 0)
        assert run["api_calls"] == sandbox.stats.total == 16
        assert run["retries"] == 8  # two extra attempts for each of 500, flaky, reset and hang
        assert run["rate_limited"] == 0

        by_id = {s.id: s for s in await rig.store.shipments.get_many(list(ids.values()))}
        expected_kinds = {
            "1ZNOTFOUND01": "not_found",
            "1ZFAIL50001": "transient",
            "1ZRESET0001": "transient",
            "1ZHANG0001": "transient",
            "1ZBADJSON01": "invalid_response",
            "1ZBADSCHEMA1": "invalid_response",
        }
        for number, kind in expected_kinds.items():
            shipment = by_id[ids[number]]
            assert shipment.last_error_kind == kind, number
            assert shipment.consecutive_failures == 1, number
            assert shipment.status_code is None and shipment.last_synced_at is None, number
            assert shipment.active and shipment.next_sync_at is not None, number
            assert shipment.next_sync_at > shipment.created_at, number
            assert await rig.store.shipments.events(ids[number]) == [], number
        assert "not found" in by_id[ids["1ZNOTFOUND01"]].schedule_reason
        assert "timed out" in by_id[ids["1ZHANG0001"]].last_error
        assert "HTTP 500" in by_id[ids["1ZFAIL50001"]].last_error
        assert "body" in by_id[ids["1ZBADJSON01"]].last_error  # names what was wrong with it
        assert "status_code" in by_id[ids["1ZBADSCHEMA1"]].last_error
        assert "'ZZ'" in by_id[ids["1ZBADSCHEMA1"]].last_error
        for number in ("1ZINTRANSIT01", "1ZFLAKY0001"):
            shipment = by_id[ids[number]]
            assert shipment.status_code and shipment.consecutive_failures == 0, number
            assert shipment.last_error_kind == "", number
            assert await rig.store.shipments.events(ids[number]), number

        errors = rig.rows("SELECT shipment_id, kind, http_status FROM sync_errors WHERE run_id = ?", run["id"])
        assert sorted((e["shipment_id"], e["kind"]) for e in errors) == sorted(
            (ids[n], k) for n, k in expected_kinds.items()
        )
        statuses = {e["shipment_id"]: e["http_status"] for e in errors}
        assert statuses[ids["1ZNOTFOUND01"]] == 404 and statuses[ids["1ZFAIL50001"]] == 500
        assert statuses[ids["1ZRESET0001"]] is None and statuses[ids["1ZBADSCHEMA1"]] == 200


async def test_failed_shipments_back_off_and_are_not_due_at_once(tmp_path: Path, sandbox: Sandbox) -> None:
    """A failed shipment is scheduled later (per-shipment back-off), so the next regular run does not retry it."""
    async with make_rig(tmp_path, sandbox.base_url) as rig:
        ids = await rig.add("1ZFAIL50002", "1ZNOTFOUND02")
        await rig.engine.run_once("manual")
        again = await rig.engine.run_once("schedule")
        assert again["selected"] == 0 and again["api_calls"] == 0
        await rig.clock.advance(minutes=16)  # past the first failure back-off (15m), not the NY one (1h)
        third = await rig.engine.run_once("schedule")
        assert third["selected"] == 1 and third["failed"] == 1
        shipment = await rig.shipment(ids["1ZFAIL50002"])
        assert shipment.consecutive_failures == 2 and "30m" in shipment.schedule_reason


async def test_bad_key_stops_the_run_with_one_audit_row(tmp_path: Path, sandbox: Sandbox) -> None:
    """A 401 fails the run after at most `concurrency` calls, records one unauthorized error and skips the rest."""
    async with make_rig(tmp_path, sandbox.base_url, SHIPTRACK_PROVIDER__CONCURRENCY="3") as rig:
        await rig.add(*(f"1ZINTRANSIT{i:03}" for i in range(25)))
        sandbox.configure(api_key="TEST_rotated")
        run = await rig.engine.run_once("manual")
        assert run["outcome"] == "failed" and "rejected the key (401)" in run["stop_reason"]
        assert 1 <= run["api_calls"] <= 3 and sandbox.stats.total == run["api_calls"]
        assert run["skipped"] > 0 and run["updated"] == 0
        errors = rig.rows("SELECT kind, shipment_id, http_status FROM sync_errors WHERE run_id = ?", run["id"])
        assert [(e["kind"], e["shipment_id"], e["http_status"]) for e in errors] == [("unauthorized", None, 401)]
        assert rig.engine.auth_failed_at is not None
        untouched = rig.rows("SELECT count(*) FROM shipments WHERE status_code IS NULL AND consecutive_failures = 0")
        assert untouched[0][0] == 25


async def test_unreachable_api_opens_the_circuit_and_keeps_cached_statuses(tmp_path: Path, sandbox: Sandbox) -> None:
    """Connection refused several calls in a row aborts the run early and leaves every cached status as it was."""
    async with make_rig(tmp_path, sandbox.base_url) as rig:
        await rig.add(*(f"1ZINTRANSIT{i:03}" for i in range(30)))
        first = await rig.engine.run_once("manual")
        assert first["updated"] == 30
        before = {r["id"]: (r["status_code"], r["status_description"]) for r in rig.rows("SELECT * FROM shipments")}
        events_before = rig.rows("SELECT count(*) FROM tracking_events")[0][0]

    async with make_rig(
        tmp_path, closed_port_url(), SHIPTRACK_PROVIDER__CONCURRENCY="2", SHIPTRACK_PROVIDER__CIRCUIT_BREAKER="4"
    ) as rig:
        run = await rig.engine.run_once("force")
        assert run["outcome"] == "aborted"
        assert "circuit open" in run["stop_reason"]
        assert run["selected"] == 30 and run["skipped"] > 0 and run["updated"] == 0
        assert run["failed"] + run["skipped"] == 30
        assert run["api_calls"] < 30  # stopped early, not one attempt per shipment
        after = {r["id"]: (r["status_code"], r["status_description"]) for r in rig.rows("SELECT * FROM shipments")}
        assert after == before
        assert rig.rows("SELECT count(*) FROM tracking_events")[0][0] == events_before
        kinds = {r["kind"] for r in rig.rows("SELECT kind FROM sync_errors WHERE run_id = ?", run["id"])}
        assert kinds == {"unreachable"}
