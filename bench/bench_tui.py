"""
The console at scale (issue 5): a daemon with 100,000 shipments in its store.

1. Time to open the shipments screen: from pressing 2 until the first rows are drawn.
2. Time to scroll to the end: End, until the last row is loaded and drawn (the list walks the
   API's keyset cursor a page at a time, keeping only a window of pages in memory).
3. The console's CPU while a force sync streams events for ~10 s: process CPU time / wall time.

The sandbox and the daemon run in child processes, so the CPU figure is the console's alone
(its Textual app runs headless here, which still lays out and renders every frame).

    uv run python bench/bench_tui.py [--shipments 100000] [--stream-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import REPO, SANDBOX_KEY, header, loadavg, sandbox_process, table

NEVER = "0 0 1 1 *"


async def seed(state_dir: Path, count: int) -> float:
    """Put *count* shipments straight into the store (the daemon is not running yet)."""
    from shiptrackd.daemon import STORE_FILE
    from shiptrackd.models import NewShipment
    from shiptrackd.store import Store

    started = time.perf_counter()
    store = await Store.open(state_dir / STORE_FILE)
    try:
        now = datetime.now(UTC)
        carriers = ("ups", "fedex", "usps", "stamps_com")
        # Ids are creation-ms + 32 random bits: one `now` per 500 keeps a collision unlikely
        # (a single add_many of 100k with one `now` collides more often than not).
        for k, start in enumerate(range(0, count, 500)):
            batch = [
                NewShipment(carriers[i % 4], f"1Z4W7A89{i:010d}", f"ORDER-{i}")
                for i in range(start, min(start + 500, count))
            ]
            await store.shipments.add_many(batch, now + timedelta(milliseconds=k))
    finally:
        await store.close()
    return time.perf_counter() - started


def start_daemon(state_dir: Path, base_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(state_dir / "no-config"),
        "SHIPTRACK_DAEMON__STATE_DIR": str(state_dir),
        "SHIPTRACK_DAEMON__SOCKET": str(state_dir / "ctl.sock"),
        "SHIPTRACK_DAEMON__LOG_LEVEL": "WARNING",
        "SHIPTRACK_PROVIDER__BASE_URL": base_url,
        "SHIPTRACK_PROVIDER__API_KEY": SANDBOX_KEY,
        "SHIPTRACK_PROVIDER__RATE_LIMIT": "none",
        "SHIPTRACK_SYNC__SCHEDULE": NEVER,
        "SHIPTRACK_SYNC__FORCE_SCHEDULE": NEVER,
        "SHIPTRACK_HEALTH__SCHEDULE": NEVER,
    }
    return subprocess.Popen([sys.executable, "-m", "shiptrackd"], cwd=REPO, env=env)


async def wait_for_socket(path: Path, timeout_s: float = 60.0) -> None:
    from shiptrackd.api.client import ApiClient, DaemonUnavailableError

    deadline = time.monotonic() + timeout_s
    async with ApiClient(path) as client:
        while True:
            try:
                await client.status()
                return
            except DaemonUnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


def note(text: str) -> None:
    """Progress on the real stderr (Textual captures sys.stderr while the app runs)."""
    sys.__stderr__.write(f"# {time.strftime('%H:%M:%S')} {text}\n")
    sys.__stderr__.flush()


async def until(pilot: Any, ready: Any, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError("the console did not get there in time")
        await pilot.pause(0.005)


async def measure(socket: Path, count: int, stream_s: float, size: tuple[int, int]) -> list[tuple[str, Any]]:
    from shiptrackd.api.client import ApiClient
    from tui.app import ShiptrackApp
    from tui.widgets.shipment_list import ShipmentList

    results: list[tuple[str, Any]] = []
    app = ShiptrackApp(lambda: ApiClient(socket), refresh_s=3600.0)
    async with app.run_test(size=size) as pilot:
        note("console started")
        await until(pilot, lambda: app.state.connected)
        note("connected")
        await pilot.pause(0.5)

        # 1. open the shipments screen
        t0 = time.perf_counter()
        await pilot.press("2")
        await until(pilot, lambda: bool(app.screen.query(ShipmentList)))
        listing = app.screen.query_one(ShipmentList)
        await until(pilot, lambda: listing.model.row(0) is not None)
        await pilot.pause()  # the frame with the rows
        results.append(("open shipments screen (first rows drawn)", f"{(time.perf_counter() - t0) * 1000:.0f} ms"))
        results.append(("  rows in the list / pages held", f"{listing.model.row_count:,} / {len(listing.model.pages)}"))

        note("shipments screen open")
        # 2. End until the last row is drawn
        t0 = time.perf_counter()
        await pilot.press("end")
        await until(
            pilot,
            lambda: (
                listing.model.complete
                and listing.cursor_row == listing.model.row_count - 1
                and listing.current is not None
            ),
        )
        await pilot.pause()
        end_s = time.perf_counter() - t0
        results.append(("End: scroll to the last row (drawn)", f"{end_s:.2f} s"))
        results.append(
            ("  pages walked / held at the end", f"{len(listing.model.cursors) - 1} / {len(listing.model.pages)}")
        )
        assert listing.model.total == count, (listing.model.total, count)

        # PageUp from the end: pages already walked, some dropped from the window and re-read.
        # Pilot settles after every key; an unbound key shows what that alone costs.
        t0 = time.perf_counter()
        for _ in range(20):
            await pilot.press("x")
        results.append(("  (Pilot's own cost of one unbound key)", f"{(time.perf_counter() - t0) * 1000 / 20:.1f} ms"))
        t0 = time.perf_counter()
        for _ in range(50):
            await pilot.press("pageup")
        await until(pilot, lambda: listing.current is not None and not listing.loading)
        await pilot.pause()
        results.append(("50 x PageUp from the end", f"{(time.perf_counter() - t0) * 1000 / 50:.1f} ms per key"))
        # The list's own cost of drawing a screenful (what each scroll step repaints), without Pilot.
        t0 = time.perf_counter()
        for _ in range(20):
            for y in range(listing.size.height):
                listing.render_line(y)
        per_screen_ms = (time.perf_counter() - t0) * 1000 / 20
        results.append((f"  list render_line x {listing.size.height} (one screenful)", f"{per_screen_ms:.1f} ms"))
        t0 = time.perf_counter()
        await pilot.press("home")
        await until(pilot, lambda: listing.current is not None and not listing.loading)
        await pilot.pause()
        results.append(("Home: back to the first row", f"{(time.perf_counter() - t0) * 1000:.0f} ms"))

        note("scrolled")
        # 3. CPU while a sync streams events
        await pilot.press("1")
        await pilot.pause(0.5)
        note("dashboard")
        async with ApiClient(socket) as client:
            await client.sync(force=True)
        note("force sync started")
        await pilot.pause(1.0)  # the run is under way
        note("measuring")
        events_before = app.state.events_seen
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await pilot.pause(stream_s)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        events = app.state.events_seen - events_before
        note("measured")
        sync = app.state.sync or {}
        results.append((f"console CPU while a sync streams ({wall:.1f} s)", f"{cpu / wall * 100:.1f} % of one core"))
        results.append(("  events received (per second)", f"{events:,} ({events / wall:,.0f}/s)"))
        results.append(
            ("  sync progress at the end", f"{sync.get('done', '?'):,} done of {sync.get('selected', '?'):,} selected")
        )
        async with ApiClient(socket) as client:
            await client.loop_action("sync", "pause")  # nothing more to start while we shut down
    note("console closed")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--stream-s", type=float, default=10.0)
    parser.add_argument("--size", default="120x40", help="terminal size WIDTHxHEIGHT")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    header(f"shiptrack-tui at {args.shipments:,} shipments, {size[0]}x{size[1]}")
    state_dir = Path(tempfile.mkdtemp(prefix="bt-", dir="/tmp"))
    daemon = None
    try:
        seed_s = asyncio.run(seed(state_dir, args.shipments))
        with sandbox_process("--latency", "5ms", "--time-scale", "0") as sandbox:
            note(f"store seeded in {seed_s:.1f} s")
            daemon = start_daemon(state_dir, sandbox.base_url)
            socket = state_dir / "ctl.sock"
            asyncio.run(wait_for_socket(socket))
            note("daemon answers")
            results = asyncio.run(measure(socket, args.shipments, args.stream_s, size))  # type: ignore[arg-type]
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        shutil.rmtree(state_dir, ignore_errors=True)
    print(f"# store seeded directly in {seed_s:.1f} s; load average after: {loadavg()}")
    print(table(["measure", "result"], results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
