"""
Logs for people on call, captured from loguru on a real daemon and a real store: outages at
ERROR, one audit line per change, no aiosqlite flood at DEBUG, run figures as JSON fields, and
status changes summarised per batch.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Running, daemon_config

from shiptrackd.api.client import ApiClient
from shiptrackd.clock import FakeClock
from shiptrackd.daemon import Daemon
from shiptrackd.events import EventBus
from shiptrackd.log import setup_logging
from shiptrackd.models import NewShipment
from shiptrackd.providers import ShipEngineProvider
from shiptrackd.sandbox import Sandbox
from shiptrackd.store import Store
from shiptrackd.sync.engine import SyncEngine
from shiptrackd.sync.throttle import ApiStats, ProviderThrottle

pytestmark = pytest.mark.anyio


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log record of the test as one JSON object per line; logging goes back to stderr afterwards."""
    out = io.StringIO()
    setup_logging("DEBUG", "json", stream=out)
    yield out
    setup_logging()


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
async def bad_key(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Running]:
    """A daemon whose API key the provider rejects: api_connectivity is critical, and alerts fire at once."""
    config = daemon_config(
        short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__API_KEY="TEST_wrong_key", SHIPTRACK_ALERTS__FOR_REPORTS="1"
    )
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            yield Running(daemon, client, sandbox, config)
        daemon.stop()


async def test_critical_health_and_critical_alerts_are_logged_at_error(bad_key: Running, logs: io.StringIO) -> None:
    """A critical report and the critical alert it fires are ERROR records, so `journalctl -p err` shows them."""
    await bad_key.client.alert_evaluate(wait_s=10)
    got = records(logs)
    health = [r for r in got if r["msg"].startswith("health critical")]
    alerts = [r for r in got if r["msg"].startswith("ALERT ")]
    assert health and {r["level"] for r in health} == {"ERROR"} and health[0]["health"] == "critical"
    assert alerts and {r["level"] for r in alerts} == {"ERROR"}


async def test_each_mutating_call_logs_one_audit_line_saying_what_changed(
    running: Running, logs: io.StringIO, tmp_path: Path
) -> None:
    """Pausing a loop, adding and removing a silence and a shipment, and a backup each log one INFO audit line."""
    client = running.client
    await client.loop_action("sync", "pause")
    silence = await client.add_silence("stale_shipments", duration="2h", comment="maintenance")
    await client.remove_silence(silence.id)
    added = await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZAUDIT1"}])
    await client.remove_shipment(added.added[0].id)
    await client.backup(str(tmp_path / "audit.db"))
    await client.status()  # reads are not audited

    audit = [r for r in records(logs) if "audit" in r]
    assert [r["audit"] for r in audit] == [
        "loop pause",
        "silence added",
        "silence removed",
        "shipments added",
        "shipment removed",
        "backup written",
    ]
    assert {r["level"] for r in audit} == {"INFO"}
    assert audit[0]["loop"] == "sync" and audit[0]["msg"] == "audit: loop pause loop=sync peer=unix"
    assert audit[1]["check"] == "stale_shipments" and audit[3]["added"] == 1
    assert audit[5]["path"] == str(tmp_path / "audit.db")
    assert all(r["peer"] == "unix" for r in audit)  # hypercorn gives no SO_PEERCRED: said, not guessed


async def test_debug_is_not_flooded_by_aiosqlite(tmp_path: Path, logs: io.StringIO) -> None:
    """At DEBUG, store reads log nothing from aiosqlite (it would log two lines per statement)."""
    store = await Store.open(tmp_path / "st.db")
    try:
        for _ in range(20):
            await store.shipments.counts()
    finally:
        await store.close()
    assert not [r for r in records(logs) if r["logger"] == "aiosqlite"]


async def test_status_changes_are_one_line_per_batch_and_run_figures_are_fields(
    tmp_path: Path, sandbox: Sandbox, logs: io.StringIO
) -> None:
    """30 changes in one batch are one INFO summary by transition (each at DEBUG); 'sync done' carries its counts."""
    config = daemon_config(tmp_path, sandbox.base_url)
    store = await Store.open(tmp_path / "shiptrackd.db")
    stats = ApiStats()
    provider = ShipEngineProvider(config.provider, observer=stats.observe)
    clock = FakeClock()
    engine = SyncEngine(store, ProviderThrottle(provider, config.provider, stats), clock, EventBus(), config)
    try:
        numbers = [f"1ZDELIVERED{i:03}" for i in range(20)] + [f"1ZEXCEPTION{i:03}" for i in range(10)]
        await store.shipments.add_many([NewShipment("ups", n) for n in numbers], clock.now())
        await store.db.write(lambda conn: conn.execute("UPDATE shipments SET status_code = 'IT'"))
        run = await engine.run_once("manual")
    finally:
        await provider.aclose()
        await store.close()

    got = records(logs)
    summaries = [r for r in got if r["msg"].startswith("status changes:")]
    assert [(r["level"], r["msg"]) for r in summaries] == [("INFO", "status changes: 30 (IT->DE 20, IT->EX 10)")]
    assert summaries[0]["status_changes"] == {"IT->DE": 20, "IT->EX": 10}
    per_shipment = [r for r in got if r["msg"].startswith("status ship_")]
    assert len(per_shipment) == 30 and {r["level"] for r in per_shipment} == {"DEBUG"}
    (done,) = [r for r in got if r["msg"].startswith("sync done")]
    assert (done["run_id"], done["selected"], done["updated"], done["failed"]) == (run["id"], 30, 30, 0)
    assert done["outcome"] == "ok" and done["trigger"] == "manual" and done["elapsed_s"] >= 0


async def test_a_reload_logs_one_audit_line_naming_what_changed(
    short_tmp: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reload, however asked for (here POST /v1/reload), is one INFO audit line with the sections it changed."""
    before = daemon_config(short_tmp, sandbox.base_url)
    after = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__API_KEY="TEST_rotated_key")
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(before, load_config=lambda: after, handle_signals=False).run)
        async with ApiClient(before.daemon.socket) as client:
            await client.reload()
        daemon.stop()
    # A reload re-applies the configured logging, which writes to stderr.
    err = capsys.readouterr().err
    audit = [line for line in err.splitlines() if "audit: config reloaded" in line]
    assert len(audit) == 1 and " INFO " in audit[0]
    assert "changed=provider" in audit[0]
    assert "TEST_rotated_key" not in err  # the new key is a secret, even in the audit line
