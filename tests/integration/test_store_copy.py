"""
`shiptrackctl store copy --to postgresql://…` (issue 13 item 6): a running daemon's SQLite store,
populated by a real sync, health reports and alerts, copied into a fresh PostgreSQL database;
every copied table compared row by row; a second copy into the now-full database refused; a URL
with a password refused without printing it; the copied ids' sequences moved past them.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Running
from pg_fixtures import PgServer

from shiptrackd.ctl.main import main
from shiptrackd.store import Store
from shiptrackd.store.copy import LEFT_BEHIND

pytestmark = pytest.mark.anyio
_SCRIPT = Path(sys.executable).with_name("shiptrackctl")
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shiptrackd.ctl"]
PASSWORD = "s3cret-Pw-never-shown"


async def ctl(state_dir: Path, *argv: str) -> tuple[int, str, str]:
    """shiptrackctl with the daemon's state directory as its configuration (no --from: the configured store)."""
    env = {**os.environ, "SHIPTRACK_DAEMON__STATE_DIR": str(state_dir)}
    with anyio.fail_after(60):
        done = await anyio.run_process([*CTL, *argv], check=False, env=env)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def table_rows(store: Store, table: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await store.db.fetchall(f'SELECT * FROM "{table}" ORDER BY 1')]


async def test_copy_a_running_store_into_postgresql(
    running: Running,
    pg_server: PgServer,
    short_tmp: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every table of the running daemon's store arrives whole; a full target and a password in the URL are refused."""
    client, daemon = running.client, running.daemon
    assert daemon.engine is not None and daemon.store is not None
    numbers = [f"1ZINTRANSIT{i:04}" for i in range(40)] + [f"1ZDELIVERED{i:04}" for i in range(20)]
    await client.add_shipments([{"carrier_code": "ups", "tracking_number": n} for n in numbers])
    await client.sync()
    await daemon.engine.wait_idle()
    await client.health(fresh=True)
    await client.alert_test()
    await client.loop_action("retention", "pause")  # a loop's state row

    url = pg_server.create()
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    code, out, err = await ctl(short_tmp, "store", "copy", "--to", url, "--password-file", str(password_file), "--json")
    assert code == 0, err
    assert PASSWORD not in out + err
    doc = json.loads(out)
    assert doc["from"] == str(short_tmp / "shiptrackd.db") and doc["to"] == url
    assert doc["rows"]["shipments"] == 60 and doc["rows"]["tracking_events"] > 60 and doc["rows"]["alerts"] >= 1

    source: Store = daemon.store
    target = await Store.open(url)
    try:
        assert set(doc["rows"]) & set(LEFT_BEHIND) == set()
        for table, copied in doc["rows"].items():
            mine = await table_rows(source, table)
            assert len(mine) == copied, table
            assert await table_rows(target, table) == mine, table  # the same rows, column for column
        ids = [r["id"] for r in await source.db.fetchall("SELECT id FROM shipments ORDER BY id LIMIT 5")]
        by_id = {s.id: s for s in await target.shipments.get_many(ids)}  # get_many has no order
        assert by_id == {s.id: s for s in await source.shipments.get_many(ids)}
        assert await target.shipments.counts() == await source.shipments.counts()  # the tally, rebuilt
        assert await target.cluster.members() == []  # the old daemon's membership stays behind
        # The identity sequences start past the copied ids: a new run gets a fresh one.
        last = max(r[0] for r in await table_rows(source, "sync_runs"))
        assert await target.runs.start("manual", datetime.now(UTC)) == last + 1
    finally:
        await target.close()

    # The refusals run in this process (in a thread: the command has an event loop of its own).
    monkeypatch.setenv("SHIPTRACK_DAEMON__STATE_DIR", str(short_tmp))
    capsys.readouterr()
    assert await anyio.to_thread.run_sync(main, ["store", "copy", "--to", url]) == 1
    out, err = capsys.readouterr()
    assert "not empty" in err and out == "", err

    with_password = url.replace("postgres@", f"postgres:{PASSWORD}@")
    assert await anyio.to_thread.run_sync(main, ["store", "copy", "--to", with_password]) == 2
    out, err = capsys.readouterr()
    assert "--password-file" in err and PASSWORD not in out + err
