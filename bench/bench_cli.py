"""
shiptrackctl start-up and control-API latency (DESIGN.md "Performance targets").

1. Wall time of `shiptrackctl --help` (median of N subprocess runs, before any daemon starts, so a
   busy demo does not share the CPU with it; target < 0.1 s, issue "One contract, one house") and of
   `shiptrackctl status` against a `shiptrackd --demo` daemon started here.
   Measured twice: as this environment runs Python, and with a bytecode cache (an installed
   package has .pyc files; a shell with PYTHONDONTWRITEBYTECODE=1 recompiles httpx every run).
   `python -c pass` is the floor: the interpreter's own start-up.
2. GET /v1/status through ApiClient, p50/p99 over 1,000 sequential requests: with the loops
   paused and idle, then while a forced sync runs. Target: p99 under 10 ms while syncing.

    uv run python bench/bench_cli.py [--runs 20] [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import header, percentile, table, verdict

BIN = Path(sys.executable).parent


def clean_env(**changes: str | None) -> dict[str, str]:
    """This environment without SHIPTRACK_* settings (they would override the demo's), plus *changes*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPTRACK_")}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"shiptrackd --demo exited with {proc.returncode}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
                return
            except OSError:
                time.sleep(0.05)
    raise RuntimeError(f"no daemon on {path} after {timeout_s}s")


def wall_times(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    """Seconds per run of *cmd*, after one untimed warm-up run (which also fills a bytecode cache)."""
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=True)
        times.append(time.perf_counter() - started)
    return times


async def status_latency(sock: Path, requests: int, *, during_sync: bool) -> dict[str, Any]:
    """GET /v1/status latencies (s) through ApiClient; optionally while a forced sync runs."""
    import anyio

    from shiptrackd.api.client import ApiClient
    from shiptrackd.ctl.sync import follow_run

    async with ApiClient(sock) as client:
        for name in ("sync", "force"):  # no scheduled run may start (or stop) in the middle
            await client.loop_action(name, "pause")
        current = (await client.status()).sync
        if current is not None:
            with anyio.fail_after(60):
                await follow_run(client, current.run_id)  # let a scheduled run finish first
        run_id = (await client.sync(force=True)).run_id if during_sync else None
        for _ in range(20):
            await client.status()  # warm the connection
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            await client.status()
            times.append(time.perf_counter() - started)
        still_running = run_id is not None and (await client.run(run_id)).outcome == "running"
        for name in ("sync", "force"):
            await client.loop_action(name, "resume")
    return {"times": times, "overlapped": still_running}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="subprocess runs per command (default 20)")
    parser.add_argument("--requests", type=int, default=1000, help="status requests per phase (default 1000)")
    opts = parser.parse_args()

    import anyio

    header("bench_cli: shiptrackctl start-up and /v1/status latency")
    workdir = Path(tempfile.mkdtemp(prefix="st-bench-cli-"))
    pycache = workdir / "pycache"
    sock = workdir / ".shiptrackd-demo" / "control.sock"
    ctl = [str(BIN / "shiptrackctl"), "--socket", str(sock)]
    as_is = clean_env()
    cached = clean_env(PYTHONDONTWRITEBYTECODE=None, PYTHONPYCACHEPREFIX=str(pycache))
    bytecode_note = "no .pyc (PYTHONDONTWRITEBYTECODE=1)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "as is"
    rows, medians = [], {}

    def time_case(label: str, cmd: list[str]) -> None:
        for env_label, env in ((bytecode_note, as_is), ("with .pyc cache", cached)):
            times = wall_times(cmd, opts.runs, env)
            medians[(label, env_label)] = statistics.median(times)
            rows.append(
                [label, env_label, statistics.median(times) * 1000, min(times) * 1000, percentile(times, 0.9) * 1000]
            )

    time_case("python -c pass (floor)", [sys.executable, "-c", "pass"])
    time_case("shiptrackctl --help", [*ctl, "--help"])  # no daemon yet: nothing else on the CPU
    log = (workdir / "daemon.log").open("wb")
    daemon = subprocess.Popen([str(BIN / "shiptrackd"), "--demo"], cwd=workdir, stdout=log, stderr=log, env=clean_env())
    try:
        wait_for_socket(sock, daemon)
        time_case("shiptrackctl status", [*ctl, "status"])
        print(f"\n## wall time, {opts.runs} runs each (ms)")
        print(table(["command", "python", "median", "min", "p90"], rows))

        lat_rows, p99_sync = [], float("nan")
        for phase, during in (("loops paused, idle", False), ("during a forced sync", True)):
            result = anyio.run(lambda d=during: status_latency(sock, opts.requests, during_sync=d))
            times = result["times"]
            p99 = percentile(times, 0.99) * 1000
            note = (
                ""
                if not during
                else (" (run still going at the end)" if result["overlapped"] else " (run ended early)")
            )
            lat_rows.append([phase + note, len(times), percentile(times, 0.5) * 1000, p99, max(times) * 1000])
            if during:
                p99_sync = p99
        print("\n## GET /v1/status through ApiClient (ms), sequential, one connection")
        print(table(["phase", "requests", "p50", "p99", "max"], lat_rows))
        print()
        help_ms = min(v for (label, _), v in medians.items() if label == "shiptrackctl --help") * 1000
        help_worst = max(v for (label, _), v in medians.items() if label == "shiptrackctl --help") * 1000
        verdict(help_worst < 100, f"shiptrackctl --help median {help_ms:.0f}-{help_worst:.0f} ms (target < 100 ms)")
        verdict(p99_sync < 10, f"/v1/status p99 during a sync {p99_sync:.2f} ms (target < 10 ms)")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
