"""
The push receiver's throughput and latency (issue 10): verified pushes per second against a real
daemon over loopback, signature check included, and the p99 time from request to 2xx, idle and
while a force sync runs.

- the daemon: `python -m shiptrackd` in a subprocess (its own process, one event loop: "one core"),
  [webhooks] listen on loopback, its JWKS and tracking API served by the sandbox in this process;
- the sandbox: 20 ms latency, no rate limit; the daemon polls it during phase 2;
- the pushes: ShipEngine `API_TRACK` bodies signed here (RSA-SHA256, 2048-bit key, the one the
  sandbox's /jwks publishes) before the clock starts; each push carries one more scan than the
  last for its shipment, so every push is a real write (new events, often a new status);
- `--concurrency` senders on keep-alive connections; latency is request sent -> 2xx read.

Phase 1: pushes alone. Phase 2: the same number of pushes while a force sync of `--poll-shipments`
shipments runs (8 in flight at 20 ms). The daemon's CPU seconds (from /proc) give pushes per
CPU-second.

    uv run python bench/bench_push.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
from _common import header, percentile, process_cpu_s, table, tracking_numbers, verdict

from shiptrackd.api.client import ApiClient, DaemonUnavailableError
from shiptrackd.sandbox import Sandbox, lifecycle
from shiptrackd.sandbox.push import KEY_ID, iso_now, process_key, signed_headers

SANDBOX_KEY = "TEST_bench_push"
STEP = timedelta(hours=9)  # simulated time between one shipment's pushes: a scan or two each time
PUSH_KEYS = ("tracking_number", "status_code", "status_detail_code", "carrier_status_description", "events")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pushes_for(numbers: list[str], steps: int, base_url: str, start: datetime) -> list[tuple[bytes, dict[str, str]]]:
    """Signed pushes, stage by stage across all shipments (so concurrent ones are for different parcels)."""
    key = process_key("published")
    out = []
    for k in range(1, steps + 1):
        stamp = iso_now(datetime.now(UTC))
        for number in numbers:
            body = lifecycle.tracking_body("ups", number, first_seen_at=start, now=start + STEP * k)
            data = {name: body.get(name) for name in PUSH_KEYS}
            resource = f"{base_url}/v1/tracking?carrier_code=ups&tracking_number={number}"
            raw = json.dumps({"resource_url": resource, "resource_type": "API_TRACK", "data": data}).encode()
            out.append((raw, signed_headers(key, KEY_ID, stamp, raw)))
    return out


async def send_all(
    url: str, pushes: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[list[float], dict[int, int], float]:
    """POST every push with *concurrency* senders; (latencies in s, answers by status, wall seconds)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(pushes)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def sender() -> None:
            for raw, headers in queue:
                sent = time.perf_counter()
                response = await http.post(url, content=raw, headers=headers)
                latencies.append(time.perf_counter() - sent)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(sender)
        return latencies, statuses, time.perf_counter() - started


async def wait_ready(socket: Path, process: subprocess.Popen[bytes]) -> None:
    async with ApiClient(socket, timeout_s=2) as client:
        with anyio.fail_after(60):
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"shiptrackd exited {process.returncode}")
                try:
                    if (await client.status()).state == "running":
                        return
                except DaemonUnavailableError:
                    pass
                await anyio.sleep(0.1)


async def run(args: argparse.Namespace) -> None:
    header("bench_push: verified pushes per second and time to 2xx, against a real daemon over loopback")
    state = Path(tempfile.mkdtemp(prefix="bp-", dir="/tmp"))
    start = datetime.now(UTC) - timedelta(days=3)
    numbers_a = tracking_numbers("PA", args.shipments)
    numbers_b = tracking_numbers("PB", args.shipments)
    polled = tracking_numbers("PL", args.poll_shipments)
    sandbox = Sandbox(api_key=SANDBOX_KEY, latency_s=0.02, time_scale=0)
    # The pushed parcels were first seen at `start` and the sandbox's time stands at their first scan, so
    # the force sync's polls of them answer an older history than the pushes carry (no push is stale).
    sandbox.resume_story(
        {"now": iso_now(start + STEP / 2), "first_seen": {f"ups\0{n}": iso_now(start) for n in numbers_a + numbers_b}}
    )
    async with sandbox.serve():
        port = free_port()
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(state / "no-config"),
            "SHIPTRACK_DAEMON__STATE_DIR": str(state),
            "SHIPTRACK_DAEMON__SOCKET": str(state / "ctl.sock"),
            "SHIPTRACK_DAEMON__LOG_LEVEL": "WARNING",
            "SHIPTRACK_PROVIDER__BASE_URL": sandbox.base_url,
            "SHIPTRACK_PROVIDER__API_KEY": SANDBOX_KEY,
            "SHIPTRACK_PROVIDER__RATE_LIMIT": "none",
            "SHIPTRACK_SYNC__SCHEDULE": "0 0 1 1 *",
            "SHIPTRACK_SYNC__FORCE_SCHEDULE": "0 0 1 1 *",
            "SHIPTRACK_HEALTH__SCHEDULE": "0 0 1 1 *",
            "SHIPTRACK_STORE__RETENTION_SCHEDULE": "0 0 1 1 *",
            "SHIPTRACK_WEBHOOKS__LISTEN": f"127.0.0.1:{port}",
            "SHIPTRACK_WEBHOOKS__JWKS_URL": f"{sandbox.base_url}/jwks",
        }
        log = open(state / "daemon.log", "wb")  # noqa: ASYNC230  (handed to the child, before any measuring)
        process = subprocess.Popen(  # noqa: ASYNC220  (started once, before anything is measured)
            [sys.executable, "-m", "shiptrackd"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            await wait_ready(state / "ctl.sock", process)
            async with ApiClient(state / "ctl.sock", timeout_s=60) as client:
                await client.loop_action("push", "pause")  # no tracking/start: the pushes alone are measured
                for numbers in (numbers_a, numbers_b, polled):
                    for i in range(0, len(numbers), 1000):
                        await client.add_shipments(
                            [{"carrier_code": "ups", "tracking_number": n} for n in numbers[i : i + 1000]]
                        )
                signing = time.perf_counter()
                phase_a = pushes_for(numbers_a, args.steps, sandbox.base_url, start)
                phase_b = pushes_for(numbers_b, args.steps, sandbox.base_url, start)
                signed_s = time.perf_counter() - signing
                count = len(phase_a) + len(phase_b)
                print(f"\n{count} pushes signed in {signed_s:.1f} s (the sender's cost, not measured below)")
                url = f"http://127.0.0.1:{port}/hooks/shipengine"
                rows = []
                results = {}
                for name, pushes, sync in (("idle", phase_a, False), ("during a force sync", phase_b, True)):
                    run_id = None
                    if sync:
                        run_id = (await client.sync(force=True)).run_id
                        await anyio.sleep(0.5)  # the run is under way
                    cpu_before = process_cpu_s(process.pid)
                    latencies, statuses, wall = await send_all(url, pushes, args.concurrency)
                    cpu = process_cpu_s(process.pid) - cpu_before
                    still = ""
                    if run_id is not None:
                        run_now = await client.run(run_id)
                        done = run_now.progress.done if run_now.progress else run_now.updated
                        still = f"sync {run_now.outcome}, {done} done"
                    ms = [x * 1000 for x in latencies]
                    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
                    results[name] = (len(pushes) / wall, percentile(ms, 0.99), ok == len(pushes))
                    rows.append(
                        [name, len(pushes), ok, round(len(pushes) / wall), round(len(pushes) / cpu) if cpu else "-",
                         round(percentile(ms, 0.5), 1), round(percentile(ms, 0.99), 1), round(max(ms), 1), still]
                    )  # fmt: skip
                hdr = ["phase", "pushes", "2xx", "pushes/s", "pushes/CPU-s (daemon)", "p50 ms", "p99 ms", "max ms", ""]
                print(
                    f"\n## {args.shipments} shipments per phase x {args.steps} pushes each, {args.concurrency} senders"
                )
                print(table(hdr, rows))
                status = await client.webhooks()
                print(f"daemon's count: {status.totals}")
        finally:
            process.terminate()
            process.wait(30)
            log.close()
    rate, p99, all_ok = results["during a force sync"]
    verdict(
        all_ok and rate >= 300 and p99 <= 50,
        f"during a sync: {rate:.0f} verified pushes/s, p99 {p99:.1f} ms (target >= 300/s, <= 50 ms)",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer pushes")
    parser.add_argument("--shipments", type=int, default=None, help="shipments per phase (default 400, quick 100)")
    parser.add_argument("--steps", type=int, default=5, help="pushes per shipment")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--poll-shipments", type=int, default=3000)
    args = parser.parse_args()
    args.shipments = args.shipments or (100 if args.quick else 400)
    anyio.run(run, args, backend="asyncio")


if __name__ == "__main__":
    main()
