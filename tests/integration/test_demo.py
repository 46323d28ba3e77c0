"""
`shiptrackd --demo` run twice in one folder: a second one while the first runs refuses before the
store, and a restarted one continues the sandbox's story instead of rewinding it (issue 9 item 14).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from shiptrackd.api.client import ApiClient
from shiptrackd.config import load
from shiptrackd.demo import DEMO_17TRACK_KEY, DEMO_KEY, STORY_FILE, demo_environment
from shiptrackd.errors import DaemonUnavailableError
from shiptrackd.sandbox import Sandbox
from shiptrackd.sandbox.seventeen import PREFIX as SEVENTEEN_PREFIX
from shiptrackd.statedir import prepare_paths
from shiptrackd.units import parse_rfc3339

pytestmark = pytest.mark.anyio

SHIPTRACKD = [sys.executable, "-m", "shiptrackd", "--demo"]


async def _track(client: httpx.AsyncClient, number: str) -> dict[str, Any]:
    response = await client.get(
        "/v1/tracking", params={"carrier_code": "ups", "tracking_number": number}, headers={"API-Key": DEMO_KEY}
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def test_a_resumed_sandbox_story_continues_where_it_stopped() -> None:
    """A sandbox resumed from story() keeps its simulated time and each parcel's first sight."""
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    first = Sandbox(api_key=DEMO_KEY, time_scale=0, start_at=start)
    async with first.serve() as sb, httpx.AsyncClient(base_url=sb.base_url) as client:
        assert (await _track(client, "1ZLCNORMAL0001"))["status_code"] == "NY"  # first sight
        sb.advance(hours=48)
        before = await _track(client, "1ZLCNORMAL0001")
        story = json.loads(json.dumps(sb.story()))  # as it goes through the file
    assert before["status_code"] not in ("NY", "AC")

    second = Sandbox(api_key=DEMO_KEY, time_scale=0)  # starts at the real now: behind the saved story
    second.resume_story(story)
    async with second.serve() as sb, httpx.AsyncClient(base_url=sb.base_url) as client:
        assert sb.now() == parse_rfc3339(story["now"])
        after = await _track(client, "1ZLCNORMAL0001")
    assert after == before


async def test_a_resumed_17track_registration_tells_the_same_history() -> None:
    """A 17TRACK registration resumed from story() answers as before, to the second of every event."""
    start = datetime(2026, 1, 5, 9, 0, 0, 999_000, tzinfo=UTC)  # rounded down, every event moved a second
    number = "9400LCNORMAL0000000001"

    async def track(sb: Sandbox, path: str) -> dict[str, Any]:
        headers = {"17token": DEMO_17TRACK_KEY}
        async with httpx.AsyncClient(base_url=sb.base_url + SEVENTEEN_PREFIX, headers=headers) as client:
            response = await client.post(path, json=[{"number": number, "carrier": 21051}])
        body: dict[str, Any] = response.raise_for_status().json()
        return body

    first = Sandbox(time_scale=0, start_at=start)
    first.seventeen.configure(api_key=DEMO_17TRACK_KEY)
    async with first.serve() as sb:
        assert (await track(sb, "/register"))["data"]["accepted"]
        sb.advance(hours=30)
        before = await track(sb, "/gettrackinfo")
        story = json.loads(json.dumps(sb.story()))

    second = Sandbox(time_scale=0)
    second.seventeen.configure(api_key=DEMO_17TRACK_KEY)
    second.resume_story(story)
    async with second.serve() as sb:
        after = await track(sb, "/gettrackinfo")
    assert len(before["data"]["accepted"][0]["track_info"]["tracking"]["providers"][0]["events"]) > 2
    assert after == before


def test_a_malformed_story_changes_nothing() -> None:
    """resume_story refuses a malformed story with ValueError and keeps the sandbox as it was."""
    sandbox = Sandbox(time_scale=0, start_at=datetime(2026, 1, 5, tzinfo=UTC))
    for bad in ({}, {"now": "yesterday", "first_seen": {}}, {"now": "2026-02-01T00:00:00Z", "first_seen": [1]}):
        with pytest.raises(ValueError, match="not a sandbox story"):
            sandbox.resume_story(bad)
    assert sandbox.now() == datetime(2026, 1, 5, tzinfo=UTC)


async def test_demo_environment_saves_and_resumes_the_story(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """demo_environment writes the story beside the demo's store, and the next one starts from it."""
    monkeypatch.chdir(short_tmp)
    config = load(demo=True)
    prepare_paths(config)  # as `shiptrackd --demo` does before the sandbox starts

    async def sandbox_now(base_url: str) -> datetime:
        async with httpx.AsyncClient(base_url=base_url) as client:
            return parse_rfc3339((await client.get("/_sandbox/config")).json()["now"])

    async with demo_environment(config) as (demo_config, _aim):
        first_now = await sandbox_now(demo_config.provider.base_url)
    saved = json.loads((config.daemon.state_dir / STORY_FILE).read_text())
    assert parse_rfc3339(saved["now"]) >= first_now
    assert os.stat(config.daemon.state_dir / STORY_FILE).st_mode & 0o077 == 0

    async with demo_environment(config) as (demo_config, _aim):
        assert await sandbox_now(demo_config.provider.base_url) >= parse_rfc3339(saved["now"])


# --- as a newcomer runs it ------------------------------------------------------------------------


async def _start(cwd: Path, log: Path) -> Any:
    with log.open("ab") as out:
        return await anyio.open_process(SHIPTRACKD, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


@asynccontextmanager
async def _demo(cwd: Path, log: Path) -> AsyncIterator[tuple[Any, ApiClient]]:
    """`shiptrackd --demo` in *cwd* and a client on its socket; stopped with SIGTERM (exit 0) on the way out."""
    process = await _start(cwd, log)
    try:
        async with ApiClient(cwd / ".shiptrackd-demo" / "control.sock", timeout_s=5) as client:
            yield process, client
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()


async def _wait_for(client: ApiClient, process: Any, log: Path, done: Any, timeout_s: float = 30.0) -> Any:
    """Poll the daemon until done(client) gives something truthy; fail at once if the process died."""
    with anyio.fail_after(timeout_s):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"demo exited {process.returncode}:\n{await anyio.Path(log).read_text()}")
            try:
                if value := await done(client):
                    return value
            except DaemonUnavailableError:
                pass
            await anyio.sleep(0.1)


async def _statuses(client: ApiClient) -> dict[str, str | None]:
    page = await client.shipments(limit=100)
    return {s.tracking_number: s.status_code for s in page.shipments}


async def _moved(client: ApiClient) -> set[str]:
    """Parcels the carrier has scanned: anything past NY (not yet in system)."""
    return {n for n, status in (await _statuses(client)).items() if status not in (None, "NY")}


async def _enough_moved(client: ApiClient) -> bool:
    return len(await _moved(client)) >= 10


async def _finished_run(client: ApiClient, since: int = 0) -> int | None:
    for run in (await client.runs(limit=5)).runs:
        if run.id > since and run.outcome != "running":
            return run.id
    return None


@pytest.mark.timeout(200)
async def test_a_second_demo_refuses_and_a_restarted_one_continues(short_tmp: Path) -> None:
    """A second --demo in the folder exits 1 naming the first's pid without seeding; a restart continues the story."""
    log = short_tmp / "first.log"
    async with _demo(short_tmp, log) as (first, client):
        # Simulated time runs an hour a second: within a few syncs most parcels have moved on.
        await _wait_for(client, first, log, _enough_moved, timeout_s=90)

        second_log = short_tmp / "second.log"
        second = await _start(short_tmp, second_log)
        with anyio.fail_after(30):
            assert await second.wait() == 1
        message = second_log.read_text()
        assert f"pid {first.pid}" in message
        assert "sample shipments" not in message and "Traceback" not in message

        assert (await client.status()).state == "running"
        moved = await _moved(client)

    log = short_tmp / "again.log"
    async with _demo(short_tmp, log) as (again, client):
        last = await _wait_for(client, again, log, _finished_run)
        await client.sync(force=True)  # ask the sandbox about every parcel again
        await _wait_for(client, again, log, lambda c: _finished_run(c, since=last))
        shipments = (await client.shipments(limit=100)).shipments
        after = {s.tracking_number: s.status_code for s in shipments}
    assert "the story continues" in log.read_text()
    # ShipEngine is never asked to push 17TRACK's parcels: it would push them as it first saw them, NY.
    assert [s.tracking_number for s in shipments if s.provider == "17track" and (s.subscribed_at or s.push_count)] == []
    rewound = sorted(n for n in moved if after[n] == "NY")
    assert rewound == []  # before: 43 of 50 went back to NY


async def test_the_demo_runs_two_providers_side_by_side(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--demo's two accounts: ShipEngine the default, 17TRACK for USPS; the carrier-less sample is detected."""
    from shiptrackd.daemon import Daemon
    from shiptrackd.demo import DETECT_SAMPLE

    monkeypatch.chdir(short_tmp)
    monkeypatch.setenv("SHIPTRACK_SYNC__SCHEDULE", "0 0 1 1 *")  # only the targeted sync below: fast
    config = load(demo=True)
    prepare_paths(config)
    async with demo_environment(config) as (demo_config, _):
        names = [(p.name, p.kind, p.carriers, p.default) for p in demo_config.providers]
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(demo_config, handle_signals=False).run)
            async with ApiClient(demo_config.daemon.socket) as client:
                (pending,) = (await client.shipments(search=DETECT_SAMPLE.tracking_number)).shipments
                one_usps = (await client.shipments(carrier="usps", limit=1)).shipments[0]
                await client.sync(shipments=[pending.id, one_usps.id])
                await daemon.engine.wait_idle()
                detected = await client.shipment(pending.id)
                usps = await client.shipment(one_usps.id)
            daemon.stop()
    assert names == [("shipengine", "shipengine", (), True), ("17track", "17track", ("usps",), False)]
    assert (pending.carrier_code, pending.carrier_source, pending.provider) == ("", "pending", "17track")
    assert (detected.carrier_code, detected.carrier_source, detected.provider) == ("ups", "detected", "17track")
    assert (usps.provider, usps.provider_ref) == ("17track", "21051")  # registered at 17TRACK under its USPS id
