"""
`shiptrackctl backup` and POST /v1/backup against a real daemon: a consistent, checked, private
copy taken while a sync writes.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Running, daemon_config

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.wire.events import SyncProgressEvent

pytestmark = pytest.mark.anyio
_SCRIPT = Path(sys.executable).with_name("shiptrackctl")
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shiptrackd.ctl"]
SHIPMENTS = 400


@pytest.fixture
async def paced(short_tmp: Path, sandbox: Sandbox) -> AsyncIterator[Running]:
    """A daemon whose syncs are paced at 200/s, so a run of 400 shipments lasts about two seconds."""
    config = daemon_config(short_tmp, sandbox.base_url, SHIPTRACK_PROVIDER__RATE_LIMIT="200/s")
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        async with ApiClient(config.daemon.socket) as client:
            yield Running(daemon, client, sandbox, config)
        daemon.stop()


def rows(path: Path, sql: str) -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_backup_during_a_running_sync_is_a_valid_private_copy(paced: Running, tmp_path: Path) -> None:
    """A backup taken mid-sync passes quick_check, holds every shipment and the running run's row, and is 0600."""
    client = paced.client
    added = await client.add_shipments(
        [{"carrier_code": "ups", "tracking_number": f"1ZBACKUP{i:05}"} for i in range(SHIPMENTS)]
    )
    assert len(added.added) == SHIPMENTS
    since = (await client.status()).event_seq
    run_id = (await client.sync()).run_id
    with anyio.fail_after(10):  # wait until the run has written its first batch
        async for event in client.events(since=since):
            if isinstance(event, SyncProgressEvent) and event.done > 0:
                break

    target = tmp_path / "copy.db"
    result = await client.backup(str(target))
    still_running = (await client.status()).sync

    assert still_running is not None and still_running.run_id == run_id  # the copy was taken mid-run
    assert result.quick_check == "ok" and result.path == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert rows(target, "PRAGMA quick_check") == [("ok",)]
    assert rows(target, "SELECT count(*) FROM shipments") == [(SHIPMENTS,)]
    assert rows(target, "SELECT id, outcome FROM sync_runs") == [(run_id, "running")]
    updated = rows(target, "SELECT count(*) FROM shipments WHERE status_code IS NOT NULL")[0][0]
    assert result.rows["shipments"] == SHIPMENTS and 0 < updated <= SHIPMENTS
    assert os.listdir(tmp_path) == ["copy.db"]  # no temp file or journal left behind


async def test_backup_refuses_relative_paths_and_existing_files(running: Running, tmp_path: Path) -> None:
    """A relative path is a 400; an existing file is a 409 unless force, which replaces it."""
    with pytest.raises(ApiError) as relative:
        await running.client.backup("copy.db")
    assert relative.value.http_status == 400 and "absolute" in relative.value.message
    target = tmp_path / "exists.db"
    target.write_text("precious")
    with pytest.raises(ApiError) as exists:
        await running.client.backup(str(target))
    assert exists.value.http_status == 409 and target.read_text() == "precious"
    await running.client.backup(str(target), force=True)
    assert rows(target, "PRAGMA quick_check") == [("ok",)]


async def test_shiptrackctl_backup_reports_the_copy_and_refuses_to_overwrite(running: Running, tmp_path: Path) -> None:
    """`shiptrackctl backup PATH` exits 0 with a summary; again without --force it exits 1 naming the file."""
    sock = str(running.config.daemon.socket)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    target = tmp_path / "ctl.db"
    with anyio.fail_after(30):
        first = await anyio.run_process([*CTL, "--socket", sock, "backup", str(target)], check=False, env=env)
        again = await anyio.run_process([*CTL, "--socket", sock, "backup", str(target)], check=False, env=env)
    assert first.returncode == 0, first.stderr
    assert f"backup written to {target}" in first.stdout.decode() and "quick_check ok" in first.stdout.decode()
    assert again.returncode == 1 and "already exists" in again.stderr.decode()
