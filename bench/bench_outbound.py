"""
bench_outbound: signed webhook deliveries (issue 11).

1. throughput: N outbox rows already committed, then the dispatcher (its own aiohttp pool, the
   standardwebhooks signature on every request) drains them to a receiver in another process on
   loopback; deliveries per second and the daemon process's CPU per delivery.
2. lag: the store's writer commits status changes in batches of 100 as fast as it can (what a
   force sync's writer does) while the dispatcher runs; the receiver answers after 10 ms and
   records when each change arrived; lag = arrival - the commit time in the payload.
3. loss (not timed): a real `shiptrackd` subprocess, N changes, a receiver failing 30% of requests
   and resetting 5% of connections, the daemon killed with -9 three times; every change must
   arrive (signature verified) at least once, in order per shipment; duplicates counted.

    uv run python bench/bench_outbound.py [--rows 5000] [--changes 10000] [--loss 10000] [--only throughput,lag,loss]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import REPO, quiet_logs

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# --- a receiver in its own process (its CPU is not the daemon's) ------------------------------

RECEIVER = r"""
import asyncio, json, sys, time
from datetime import datetime
delay = float(sys.argv[1]); out = sys.argv[2]
seen = []
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            h = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            body = await reader.readexactly(int(h.get("content-length", "0")))
            now = time.time()
            ts = json.loads(body)["timestamp"]
            seen.append((h["webhook-id"], now, datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()))
            if delay:
                await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    import signal
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    json.dump(seen, open(out, "w"))
asyncio.run(main())
"""


class ReceiverProcess:
    def __init__(self, delay_s: float) -> None:
        self.out = Path(tempfile.mkstemp(suffix=".json")[1])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, str(delay_s), str(self.out)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def finish(self) -> list[tuple[str, float, float]]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        seen = [tuple(x) for x in json.loads(self.out.read_text())]
        self.out.unlink()
        return seen  # type: ignore[return-value]


def _config(state: Path, url: str, concurrency: int) -> Any:
    from shiptrackd.config import load

    path = state / "bench.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{state}"\nsocket = "{state}/c.sock"\n'
        f"[outbound_dispatch]\nconcurrency = {concurrency}\n"
        f'[[outbound]]\nname = "bench"\nurl = "{url}"\nsecret = "{SECRET}"\n'
    )
    return load(path, {})


async def until(done: Any, timeout_s: float = 600.0) -> None:
    """Poll *done()* with a deadline (a benchmark's wait, never a fixed sleep)."""
    import anyio

    with anyio.fail_after(timeout_s):
        while True:
            if done():
                return
            await anyio.sleep(0.01)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _drain(rows: int, concurrency: int) -> dict[str, Any]:
    import anyio

    from shiptrackd.clock import SystemClock
    from shiptrackd.models import NewShipment
    from shiptrackd.outbound.dispatcher import Dispatcher
    from shiptrackd.store import Store

    rx = ReceiverProcess(0.0)
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), f"http://127.0.0.1:{rx.port}/h", concurrency)
        store = await Store.open(Path(tmp) / "s.db")
        dispatcher = Dispatcher(store, SystemClock(), config)
        now = datetime.now(UTC)
        for start in range(0, rows, 1000):
            items = [NewShipment("ups", f"1ZBENCH{i:08}") for i in range(start, min(rows, start + 1000))]
            await store.shipments.add_many(items, now)
        cpu0, t0 = time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            await until(lambda: dispatcher.delivered >= rows)
            tg.cancel_scope.cancel()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await store.close()
    seen = rx.finish()
    return {
        "rows": rows,
        "concurrency": concurrency,
        "s": elapsed,
        "per_s": rows / elapsed,
        "cpu_ms": 1000 * cpu / rows,
        "received": len(seen),
    }


async def _lag(changes: int, delay_s: float, rate: float) -> dict[str, Any]:
    import anyio

    from shiptrackd.clock import SystemClock
    from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
    from shiptrackd.outbound.dispatcher import Dispatcher
    from shiptrackd.store import FetchSuccess, Store

    rx = ReceiverProcess(delay_s)
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), f"http://127.0.0.1:{rx.port}/h", 32)
        config = config.__class__(
            **{
                **config.__dict__,
                "outbound": (
                    config.outbound[0].__class__(
                        **{**config.outbound[0].__dict__, "events": ("shipment.status_changed",)}
                    ),
                ),
            }
        )
        store = await Store.open(Path(tmp) / "s.db")
        dispatcher = Dispatcher(store, SystemClock(), config)
        added = await store.shipments.add_many(
            [NewShipment("ups", f"1ZLAG{i:08}") for i in range(changes)], datetime.now(UTC)
        )
        ids = [a.id for a in added.added]
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            for start in range(0, changes, 100):
                if rate:  # a sync's pace: batch k commits no sooner than k * 100 / rate after the start
                    await anyio.sleep(max(0.0, t0 + start / rate - time.perf_counter()))
                now = datetime.now(UTC)
                event = TrackingEvent(now, "In transit", "IT", "IT")
                info = TrackingInfo("x", "IT", events=(event,))
                await store.shipments.apply(
                    None, [FetchSuccess(i, info, now, "bench") for i in ids[start : start + 100]], now
                )
            committed = time.perf_counter() - t0
            await until(lambda: dispatcher.delivered >= changes)
            tg.cancel_scope.cancel()
        total = time.perf_counter() - t0
        await store.close()
    seen = rx.finish()
    lags = [arrived - committed_at for _id, arrived, committed_at in seen]
    return {
        "changes": changes,
        "commit_s": committed,
        "total_s": total,
        "p50": pct(lags, 0.5),
        "p99": pct(lags, 0.99),
        "max": max(lags),
        "received": len(seen),
    }


# --- the loss test ----------------------------------------------------------------------------


async def _loss(changes: int, kills: int) -> dict[str, Any]:
    import anyio
    from standardwebhooks import Webhook, WebhookVerificationError

    from shiptrackd.api.client import ApiClient, DaemonUnavailableError

    got: list[tuple[str, str, str]] = []  # (webhook-id, shipment, type) of verified 2xx answers
    stats = {"requests": 0, "failed": 0, "reset": 0, "bad_signature": 0}
    hook = Webhook(SECRET)
    rng = random.Random(11)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                h = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(h.get("content-length", "0")))
                stats["requests"] += 1
                roll = rng.random()
                if roll < 0.05:
                    stats["reset"] += 1
                    writer.transport.abort()
                    return
                status = 500 if roll < 0.35 else 200
                if status == 200:
                    try:
                        payload = hook.verify(body, h)
                    except WebhookVerificationError:
                        stats["bad_signature"] += 1
                        status = 401
                    else:
                        got.append((h["webhook-id"], payload["data"]["shipment_id"], payload["type"]))
                else:
                    stats["failed"] += 1
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="stb-", dir="/tmp"))
    config = tmp / "c.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp}"\nsocket = "{tmp}/c.sock"\n[provider]\napi_key = "x"\n'
        '[sync]\nschedule = "0 0 1 1 *"\nforce_schedule = "0 0 1 1 *"\n[health]\nschedule = "0 0 1 1 *"\n'
        f'[[outbound]]\nname = "bench"\nurl = "http://127.0.0.1:{port}/h"\nsecret = "{SECRET}"\n'
        'events = ["shipment.added", "shipment.removed"]\n'
        'retry_schedule = ["0s", "20ms", "50ms", "100ms", "200ms", "400ms", "800ms",'
        ' "1s", "1s", "1s", "1s", "1s", "1s", "1s"]\n'
    )
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp)}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "shiptrackd", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready() -> None:
        with anyio.fail_after(30):
            while True:
                try:
                    async with ApiClient(tmp / "c.sock") as c:
                        if (await c.status()).state == "running":
                            return
                except DaemonUnavailableError:
                    pass
                await anyio.sleep(0.1)

    proc = start()
    await ready()
    # Each shipment: added, then removed half of them (two events in order per shipment).
    async with ApiClient(tmp / "c.sock", timeout_s=120) as client:
        ids: list[str] = []
        for first in range(0, changes // 2, 1000):
            batch = [
                {"carrier_code": "ups", "tracking_number": f"1ZLOSS{i:08}"}
                for i in range(first, min(changes // 2, first + 1000))
            ]
            ids += [a.id for a in (await client.add_shipments(batch)).added]
        for sid in ids:
            await client.remove_shipment(sid)
    expected = 2 * len(ids)
    for _ in range(kills):
        target = len({g[0] for g in got}) + expected // (kills + 2)
        await until(lambda t=target: len({g[0] for g in got}) >= min(t, expected - 1), 300)  # type: ignore[misc]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start()
        await ready()
    await until(lambda: len({g[0] for g in got}) >= expected, 600)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    server.close()
    ids_seen = {g[0] for g in got}
    order: dict[str, list[str]] = {}
    for _id, sid, kind in got:
        if kind not in order.setdefault(sid, []):
            order[sid].append(kind)
    in_order = all(kinds == ["shipment.added", "shipment.removed"] for kinds in order.values())
    return {
        "changes": expected,
        "delivered_unique": len(ids_seen),
        "deliveries": len(got),
        "duplicates": len(got) - len(ids_seen),
        "in_order": in_order,
        "kills": kills,
        **stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=10000)
    parser.add_argument("--loss", type=int, default=10000)
    parser.add_argument("--only", default="throughput,lag,loss")
    args = parser.parse_args()
    quiet_logs("ERROR")
    only = set(args.only.split(","))
    print(
        "# bench_outbound:",
        datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        f"{os.cpu_count()} cores",
        "load average",
        " ".join(f"{x:.2f}" for x in os.getloadavg()),
    )
    if "throughput" in only:
        print(f"\n## 1. throughput: {args.rows} committed rows drained to a receiver on loopback (answers at once)")
        print("| in flight | deliveries/s | CPU per delivery (daemon process) |")
        print("|---|---|---|")
        for concurrency in (8, 32, 64):
            r = asyncio.run(_drain(args.rows, concurrency))
            print(f"| {concurrency} | {r['per_s']:.0f} | {r['cpu_ms']:.2f} ms |")
    if "lag" in only:
        print(f"\n## 2. lag: {args.changes} status changes committed in batches of 100, receiver answers in 10 ms")
        print("| changes committed at | committed in | all delivered after | lag p50 | lag p99 | max |")
        print("|---|---|---|---|---|---|")
        for rate in (100.0, 250.0, 0.0):
            r = asyncio.run(_lag(args.changes, 0.010, rate))
            label = f"{rate:g}/s" if rate else "the writer's full speed"
            print(
                f"| {label} | {r['commit_s']:.1f} s | {r['total_s']:.1f} s"
                f" | {r['p50'] * 1000:.0f} ms | {r['p99'] * 1000:.0f} ms | {r['max'] * 1000:.0f} ms |"
            )
    if "loss" in only:
        print(f"\n## 3. loss: {args.loss} changes, 30% answered 500, 5% reset, kill -9 three times")
        r = asyncio.run(_loss(args.loss, 3))
        print(json.dumps(r))
    print("# load average at the end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
