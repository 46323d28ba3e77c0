"""
Outbound webhooks end to end (issue 11): a real daemon, the sandbox, and real receivers on 127.0.0.1
that verify every request with the `standardwebhooks` reference library.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup
from conftest import quiet_daemon_env
from webhook_receivers import RESET, Received, Receiver, outbound_toml

from shiptrackd.api.client import ApiClient
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.store.rows import OutboxRow
from shiptrackd.wire.answers import RunDetail

pytestmark = pytest.mark.anyio

FAST = ["0s", "50ms", "50ms", "50ms"]


def write_config(state_dir: Path, text: str) -> Path:
    path = state_dir / "shiptrackd.toml"
    path.write_text(text)
    return path


async def start(tg: TaskGroup, state_dir: Path, base_url: str, toml: str, **env: str) -> Daemon:
    config = load(write_config(state_dir, toml), quiet_daemon_env(state_dir, base_url, **env))
    daemon: Daemon = await tg.start(Daemon(config, handle_signals=False).run)
    return daemon


async def run_sync(client: ApiClient) -> RunDetail:
    started = await client.sync(force=True)
    with anyio.fail_after(10):
        while True:
            run = await client.run(started.run_id)
            if run.outcome != "running":
                return run
            await anyio.sleep(0.02)


async def wait_rows(daemon: Daemon, state: str, count: int, timeout_s: float = 10.0) -> list[OutboxRow]:
    assert daemon.store is not None
    with anyio.fail_after(timeout_s):
        while True:
            rows = await daemon.store.outbox.list(state=state)
            if len(rows) >= count:
                return rows
            await anyio.sleep(0.02)


async def test_changes_arrive_signed_in_the_documented_shape(short_tmp: Path, sandbox: Sandbox) -> None:
    """shipment.added, then status_changed and delivered: each verified by the reference library, ids stable."""
    async with Receiver().serve() as rx, anyio.create_task_group() as tg:
        toml = outbound_toml("shop", rx.url, retry_schedule=FAST)
        daemon = await start(tg, short_tmp, sandbox.base_url, toml)
        async with ApiClient(daemon.config.daemon.socket) as client:
            added = await client.add_shipments(
                [{"carrier_code": "ups", "tracking_number": "1ZDELIVERED0001", "reference": "order-7"}]
            )
            sid = added.added[0].id
            [first] = await rx.wait_for(1)
            assert first.payload["type"] == "shipment.added"
            assert first.payload["data"]["shipment_id"] == sid and first.payload["data"]["status"] is None
            sandbox.advance(days=10)
            await run_sync(client)
            got = await rx.wait_for(3)
        daemon.stop()
    types = [r.payload["type"] for r in got]
    assert types == ["shipment.added", "shipment.status_changed", "shipment.delivered"]
    changed = got[1].payload
    assert set(changed) == {"type", "timestamp", "data"} and changed["timestamp"].endswith("Z")
    data = changed["data"]
    assert set(data) == {
        "shipment_id",
        "carrier_code",
        "tracking_number",
        "reference",
        "previous_status",
        "status",
        "status_detail",
        "estimated_delivery_at",
        "latest_event",
    }
    assert (data["previous_status"], data["status"], data["reference"]) == (None, "DE", "order-7")
    assert data["latest_event"]["status"] == "DE"
    for r in got:
        assert r.headers["webhook-id"].startswith("msg_")
        assert r.headers["webhook-signature"].startswith("v1,")
        assert r.headers["content-type"] == "application/json"
    assert len({r.headers["webhook-id"] for r in got}) == 3


async def test_failures_retry_with_the_same_id_and_keep_order_per_shipment(short_tmp: Path, sandbox: Sandbox) -> None:
    """A 500, a reset and a redirect are failures; the later change waits for the earlier; every attempt is recorded."""
    answers = iter([500, RESET, 302])

    def answer(r: Received) -> tuple[int, dict[str, str]]:
        return (next(answers, 200), {"location": "http://127.0.0.1:1/elsewhere"})

    async with Receiver(answer=answer).serve() as rx, anyio.create_task_group() as tg:
        toml = outbound_toml("shop", rx.url, retry_schedule=["0s", "20ms", "20ms", "20ms", "20ms"])
        daemon = await start(tg, short_tmp, sandbox.base_url, toml)
        async with ApiClient(daemon.config.daemon.socket) as client:
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZDELIVERED0002"}])
            sandbox.advance(days=10)
            await run_sync(client)
            got = await rx.wait_for(3)
            assert daemon.store is not None
            rows = await wait_rows(daemon, "delivered", 3)
            first = await daemon.store.outbox.get(min(r.id for r in rows))
        daemon.stop()
    assert [r.payload["type"] for r in got] == ["shipment.added", "shipment.status_changed", "shipment.delivered"]
    ids = [r.headers["webhook-id"] for r in rx.requests]
    assert ids[:4] == [ids[0]] * 4  # the first message, retried three times under one id
    assert first is not None
    assert first.attempt_log is not None and first.body is not None
    assert [a.outcome for a in first.attempt_log] == ["failed", "failed", "failed", "delivered"]
    assert [a.http_status for a in first.attempt_log] == [500, None, 302, 200]
    assert "redirect" in first.attempt_log[2].error


async def test_gone_disables_the_endpoint_and_the_health_check_says_so(short_tmp: Path, sandbox: Sandbox) -> None:
    """A 410 disables the endpoint at once; nothing more is sent; `deliveries` turns critical naming it."""
    async with Receiver(answer=lambda r: (410, {})).serve() as rx, anyio.create_task_group() as tg:
        daemon = await start(tg, short_tmp, sandbox.base_url, outbound_toml("shop", rx.url, retry_schedule=FAST))
        async with ApiClient(daemon.config.daemon.socket) as client:
            await client.add_shipments(
                [{"carrier_code": "ups", "tracking_number": f"1ZINTRANSIT{i:04}"} for i in range(3)]
            )
            await rx.wait_for(1, delivered=False)
            with anyio.fail_after(10):
                while True:
                    if daemon.dispatcher and daemon.dispatcher.disabled():
                        break
                    await anyio.sleep(0.02)
            report = await client.health(fresh=True)
        daemon.stop()
    [check] = [c for c in report.checks if c.name == "deliveries"]
    assert check.level == "critical" and "shop disabled" in check.message and "410" in check.message
    assert len(rx.requests) <= 3  # at most what was already in flight, then silence


async def test_retry_after_is_honoured(short_tmp: Path, sandbox: Sandbox) -> None:
    """A 429 with Retry-After: 1 is not retried sooner than a second later, though the schedule says 50 ms."""
    answers = iter([(429, {"retry-after": "1"})])
    async with Receiver(answer=lambda r: next(answers, (200, {}))).serve() as rx, anyio.create_task_group() as tg:
        daemon = await start(tg, short_tmp, sandbox.base_url, outbound_toml("shop", rx.url, retry_schedule=FAST))
        async with ApiClient(daemon.config.daemon.socket) as client:
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
            await rx.wait_for(1)
        daemon.stop()
    times = [r.at for r in rx.requests]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95


async def test_a_dead_receiver_ends_dead_and_critical(short_tmp: Path, sandbox: Sandbox) -> None:
    """Nobody listening: every attempt fails, the row is dead after the schedule, the check is critical."""
    async with Receiver().serve() as rx:
        url = rx.url  # a port that was just free; nothing listens once the receiver closes
    async with anyio.create_task_group() as tg:
        daemon = await start(tg, short_tmp, sandbox.base_url, outbound_toml("shop", url, retry_schedule=["0s", "10ms"]))
        async with ApiClient(daemon.config.daemon.socket) as client:
            await client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZINTRANSIT0001"}])
            [dead] = await wait_rows(daemon, "dead", 1)
            report = await client.health(fresh=True)
        daemon.stop()
    assert dead.attempts == 2 and dead.last_error and dead.finished_at is not None
    [check] = [c for c in report.checks if c.name == "deliveries"]
    assert check.level == "critical" and "went dead" in check.message
