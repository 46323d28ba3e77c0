"""
kill -9 between the commit and the 2xx (issue 10): the provider delivers the push again, and the
redelivery to the restarted daemon changes nothing but the push count. A real daemon subprocess,
its real SQLite file, a real signed push over loopback.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import SANDBOX_KEY
from test_lifecycle import daemon_env, daemon_process, poll

from shiptrackd.api.client import ApiClient
from shiptrackd.config import load
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox, lifecycle
from shiptrackd.sandbox.push import iso_now, signed_headers

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _read(db: Path, number: str) -> tuple[str, int, int] | None:
    return _row(db, number)


def _row(db: Path, number: str) -> tuple[str, int, int] | None:
    """(status, push_count, events) read straight from the file, as a second process sees the commit."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row: tuple[str, int, int] | None = conn.execute(
            "SELECT status_code, push_count, (SELECT count(*) FROM tracking_events e WHERE e.shipment_id = s.id)"
            " FROM shipments s WHERE tracking_number = ?",
            (number,),
        ).fetchone()
        return row


async def test_kill_9_after_the_commit_then_the_redelivery_is_idempotent(short_tmp: Path, tmp_path: Path) -> None:
    """The push commits, the daemon dies before answering; the same bytes again after a restart: same state."""
    number = "1ZLCNORMAL0006"
    async with Sandbox(api_key=SANDBOX_KEY, time_scale=0).serve() as sandbox:
        port = _free_port()
        env = daemon_env(
            short_tmp,
            sandbox.base_url,
            SHIPTRACK_WEBHOOKS__LISTEN=f"127.0.0.1:{port}",
            SHIPTRACK_WEBHOOKS__JWKS_URL=f"{sandbox.base_url}/jwks",
        )
        env.pop("SHIPTRACK_PROVIDER__RATE_LIMIT", None)
        first_seen = sandbox.now() - timedelta(hours=30)
        body = lifecycle.tracking_body("ups", number, first_seen_at=first_seen, now=sandbox.now())
        data = {k: body[k] for k in ("tracking_number", "status_code", "status_detail_code", "events")}
        resource = f"{sandbox.base_url}/v1/tracking?carrier_code=ups&tracking_number={number}"
        raw = json.dumps({"resource_url": resource, "resource_type": "API_TRACK", "data": data}).encode()
        headers = signed_headers(sandbox.push.key, sandbox.push.kid, iso_now(datetime.now(UTC)), raw)
        request = (
            f"POST /hooks/shipengine HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(raw)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode() + raw
        db = short_tmp / "shiptrackd.db"

        async with daemon_process(env, tmp_path / "first.log") as daemon:
            await daemon.wait_ready()
            async with ApiClient(daemon.socket) as client:
                await client.loop_action("push", "pause")  # no tracking/start: the push alone writes
                await client.add_shipments([{"carrier_code": "ups", "tracking_number": number}])
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(request)  # and never read the answer
                await poll(lambda: _read(db, number), lambda row: row is not None and row[1] >= 1)
                daemon.process.send_signal(signal.SIGKILL)
                await daemon.wait()
        committed = _row(db, number)
        assert committed is not None and committed[0] == "IT" and committed[1] == 1 and committed[2] > 1

        # The restart in this process (a second subprocess start costs seconds): same file, same port.
        config = load(None, env={k: v for k, v in env.items() if k.startswith("SHIPTRACK_")})
        async with anyio.create_task_group() as tg:
            restarted = await tg.start(Daemon(config, handle_signals=False).run)
            async with httpx.AsyncClient() as http:
                again = await http.post(f"http://127.0.0.1:{port}/hooks/shipengine", content=raw, headers=headers)
            assert again.status_code == 200 and again.json()["outcome"] == "accepted", again.text
            restarted.stop()
        assert _row(db, number) == (committed[0], 2, committed[2])  # counted again, nothing else moved
