"""
The push receiver's throughput and latency (issue 10): verified pushes per second against a real
daemon over loopback, signature check included, and the p99 time from request to 2xx, idle and
while a force sync runs.

- the daemon: `python -m shiptrackd` in a subprocess (its own process, one event loop: "one core"),
  [webhooks] listen on loopback, its JWKS and tracking API served by the sandbox in this process;
- the sandbox: 20 ms latency, no rate limit; the daemon polls it during the sync phases;
- the pushes: ShipEngine `API_TRACK` bodies signed here (RSA-SHA256, 2048-bit key, the one the
  sandbox's /jwks publishes) and laid out as HTTP requests before the clock starts; each push
  carries one more scan than the last for its shipment, so every push is a real write;
- the senders: a child process of their own (so the sandbox answering the sync's polls does not
  slow them), raw HTTP/1.1 on keep-alive connections; `WARM_UP` pushes first, not measured (the
  first one fetches the JWKS).

Four phases, each on shipments of its own: saturated (`--concurrency` senders, each sending its
next push when the last is answered: the most the receiver takes) and offered (`--rate` pushes/s
on up to `--connections` connections, latency counted from when each push was due), idle and
then during a force sync of `--poll-shipments` shipments (8 in flight at 20 ms, no rate limit:
it takes all the CPU it can). The daemon's CPU seconds (from /proc) give pushes per CPU-second,
and the event loop's thread is split from the others (the store's writer thread).

    uv run python bench/bench_push.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from _common import header, percentile, process_cpu_s, table, tracking_numbers, verdict

from shiptrackd.api.client import ApiClient, DaemonUnavailableError
from shiptrackd.sandbox import Sandbox, lifecycle
from shiptrackd.sandbox.push import KEY_ID, iso_now, process_key, signed_headers

SANDBOX_KEY = "TEST_bench_push"
STEP = timedelta(hours=9)  # simulated time between one shipment's pushes: a scan or two each time
WARM_UP = 32  # pushes sent before the first phase, not measured
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


def http_request(port: int, raw: bytes, headers: dict[str, str]) -> bytes:
    """One push as the bytes of an HTTP/1.1 request (built before the clock starts, like the signatures)."""
    lines = ["POST /hooks/shipengine HTTP/1.1", f"host: 127.0.0.1:{port}", f"content-length: {len(raw)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one pre-built request on a keep-alive connection; its status once the whole answer is read."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
    await reader.readexactly(length)
    return int(head[9:12])


async def _send(port: int, requests: list[bytes], concurrency: int, rate: float) -> dict[str, Any]:
    """
    Closed loop (rate 0): *concurrency* senders, each sending its next push when the last is answered.
    Open loop (rate > 0): push i is due at start + i/rate, on any free one of *concurrency* connections;
    its latency counts from when it was due, so a backlog is measured, not hidden.
    """
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for conn in conns:
        free.put_nowait(conn)

    async def one(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes, due: float) -> None:
        status = await _post(*conn, request)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        free.put_nowait(conn)

    started = time.perf_counter()
    tasks = []
    for i, request in enumerate(requests):
        due = started + i / rate if rate else time.perf_counter()
        if rate and due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        conn = await free.get()
        tasks.append(asyncio.create_task(one(conn, request, due if rate else time.perf_counter())))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    for _, writer in conns:
        writer.close()
    return {"latencies": latencies, "statuses": statuses, "wall": wall}


def sender_main(path: str, port: int, concurrency: int, rate: float) -> None:
    """The senders' own process (`--sender`): the sandbox serving the sync's polls does not slow them."""
    with open(path, "rb") as f:
        requests = pickle.load(f)
    print(json.dumps(asyncio.run(_send(port, requests, concurrency, rate))))


async def send_all(port: int, requests: list[bytes], concurrency: int, rate: float, work: Path) -> dict[str, Any]:
    path = work / "requests.pickle"
    path.write_bytes(pickle.dumps(requests))
    cmd = [sys.executable, __file__, "--sender", str(path), "--port", str(port), "--concurrency", str(concurrency)]
    done = await anyio.run_process([*cmd, "--rate", str(rate)], stderr=None)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def thread_cpu_s(pid: int, tid: int) -> float:
    """User + system CPU seconds one thread of another process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


PHASES = (  # (name, during a force sync, offered rate: 0 = closed loop, as fast as answered)
    ("idle, saturated", False, 0),
    ("idle, {rate}/s offered", False, 1),
    ("sync, saturated", True, 0),
    ("sync, {rate}/s offered", True, 1),
)


async def run(args: argparse.Namespace) -> None:
    header("bench_push: verified pushes per second and time to 2xx, against a real daemon over loopback")
    state = Path(tempfile.mkdtemp(prefix="bp-", dir="/tmp"))
    start = datetime.now(UTC) - timedelta(days=3)
    pushed = [tracking_numbers(f"P{i}", args.shipments) for i in range(len(PHASES))]
    warm = tracking_numbers("PW", WARM_UP)
    polled = tracking_numbers("PL", args.poll_shipments)
    sandbox = Sandbox(api_key=SANDBOX_KEY, latency_s=0.02, time_scale=0)
    # The pushed parcels were first seen at `start` and the sandbox's time stands at their first scan, so
    # the force sync's polls of them answer an older history than the pushes carry (no push is stale).
    first_seen = {f"ups\0{n}": iso_now(start) for numbers in [*pushed, warm] for n in numbers}
    sandbox.resume_story({"now": iso_now(start + STEP / 2), "first_seen": first_seen})
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
                for numbers in [*pushed, warm, polled]:
                    for i in range(0, len(numbers), 1000):
                        await client.add_shipments(
                            [{"carrier_code": "ups", "tracking_number": n} for n in numbers[i : i + 1000]]
                        )
                signing = time.perf_counter()
                phases = [pushes_for(numbers, args.steps, sandbox.base_url, start) for numbers in pushed]
                signed_s = time.perf_counter() - signing
                count = sum(len(p) for p in phases)
                print(f"\n{count} pushes signed in {signed_s:.1f} s (the sender's cost, not measured below)")
                # The first pushes fetch the JWKS and warm the daemon's imports and caches: not measured.
                warm_up = [http_request(port, *p) for p in pushes_for(warm, 1, sandbox.base_url, start)]
                await send_all(port, warm_up, 4, 0, state)
                rows = []
                results = {}
                run_id = None
                for (label, sync, open_loop), pushes in zip(PHASES, phases, strict=True):
                    name = label.format(rate=args.rate)
                    if sync and run_id is None:
                        run_id = (await client.sync(force=True)).run_id
                        await anyio.sleep(0.5)  # the run is under way
                    requests = [http_request(port, raw, headers) for raw, headers in pushes]
                    connections = args.connections if open_loop else args.concurrency
                    cpu_before = process_cpu_s(process.pid), thread_cpu_s(process.pid, process.pid)
                    sent = await send_all(port, requests, connections, args.rate if open_loop else 0, state)
                    cpu = process_cpu_s(process.pid) - cpu_before[0]
                    loop_cpu = thread_cpu_s(process.pid, process.pid) - cpu_before[1]
                    statuses = {int(k): v for k, v in sent["statuses"].items()}
                    still = ""
                    if run_id is not None:
                        run_now = await client.run(run_id)
                        done = run_now.progress.done if run_now.progress else run_now.updated
                        still = f"sync {run_now.outcome}, {done} done"
                    ms = [x * 1000 for x in sent["latencies"]]
                    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
                    rate = len(pushes) / sent["wall"]
                    results[name] = (rate, percentile(ms, 0.99), ok == len(pushes) and run_now_running(still, sync))
                    rows.append(
                        [name, len(pushes), ok, round(rate), round(len(pushes) / cpu) if cpu else "-",
                         round(1000 * loop_cpu / len(pushes), 2), round(1000 * (cpu - loop_cpu) / len(pushes), 2),
                         round(percentile(ms, 0.5), 1), round(percentile(ms, 0.99), 1), round(max(ms), 1), still]
                    )  # fmt: skip
                hdr = ["phase", "pushes", "2xx", "pushes/s", "pushes/CPU-s", "loop ms/push", "other ms/push",
                       "p50 ms", "p99 ms", "max ms", ""]  # fmt: skip
                print(
                    f"\n## {args.shipments} shipments per phase x {args.steps} pushes each; saturated: "
                    f"{args.concurrency} senders, closed loop; offered: {args.rate}/s on up to {args.connections} "
                    "connections, latency from when each push was due"
                )
                print(table(hdr, rows))
                status = await client.webhooks()
                print(f"daemon's count: {status.totals}")
        finally:
            process.terminate()
            process.wait(30)
            log.close()
            shutil.rmtree(state, ignore_errors=True)  # the daemon's store and log: 10-20 MB a run
    rate, _, rate_ok = results[PHASES[2][0].format(rate=args.rate)]
    _, p99, p99_ok = results[PHASES[3][0].format(rate=args.rate)]
    verdict(
        rate_ok and p99_ok and rate >= 300 and p99 <= 50,
        f"during a sync: {rate:.0f} verified pushes/s saturated, p99 {p99:.1f} ms at {args.rate}/s offered "
        "(target >= 300/s, <= 50 ms)",
    )


def run_now_running(still: str, sync: bool) -> bool:
    """A phase meant to run during the sync counts only if the sync was still running at its end."""
    return not sync or still.startswith("sync running")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer pushes")
    parser.add_argument("--shipments", type=int, default=None, help="shipments per phase (default 400, quick 100)")
    parser.add_argument("--steps", type=int, default=5, help="pushes per shipment")
    parser.add_argument("--concurrency", type=int, default=16, help="senders in the saturated phases")
    parser.add_argument("--rate", type=int, default=300, help="pushes/s offered in the open-loop phases")
    parser.add_argument("--connections", type=int, default=64, help="connections in the open-loop phases")
    parser.add_argument("--poll-shipments", type=int, default=None, help="the force sync's size (6000, quick 4000)")
    parser.add_argument("--sender", help=argparse.SUPPRESS)  # internal: run the senders (a child process)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sender:
        sender_main(args.sender, args.port, args.concurrency, args.rate)
        return
    args.shipments = args.shipments or (100 if args.quick else 400)
    args.poll_shipments = args.poll_shipments or (4000 if args.quick else 6000)
    anyio.run(run, args, backend="asyncio")


if __name__ == "__main__":
    main()
