"""
Two providers in one daemon, each at its own limit (issue 12 benchmarks): each reaches >= 0.97 of
its own limit at the same time, and a 429 storm on one does not slow the other.

A real Daemon (in this process) with two [[providers]] accounts: ShipEngine at 20/s against one
sandbox process whose own limit is exactly 20/s (bucket 20), and 17TRACK at 3/s (40 numbers a
request) against a second sandbox process whose 17TRACK limit is exactly 3/s. Two sandboxes,
so each one's arrival times give that account's achieved rate and its 429s alone.

Phase 1: one sync of T x 40 ShipEngine parcels and T x 120 17TRACK parcels (new: registered
then fetched, 2 requests per 40), about 2T seconds for each account at its limit. Phase 2: the
ShipEngine sandbox answers a share of requests 429 with Retry-After (the storm) while a force
sync runs again; the 17TRACK account's rate is measured against phase 1's.

    uv run python bench/bench_two_providers.py [--quick] [--storm 0.3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _common import (
    NEVER,
    SANDBOX_KEY,
    header,
    loadavg,
    quiet_logs,
    sandbox_process,
    table,
    tracking_numbers,
    verdict,
)

KEY17 = "TEST_bench_two_17track"
SE_RATE, T17_RATE, T17_BATCH = 20, 3, 40
STORM_DEADLINE_S = 60.0  # the storm phase stops here even if t17 has not done its work (a starved account)


def write_config(path: Path, state: Path, se_url: str, t17_url: str) -> None:
    path.write_text(
        f"""
[daemon]
state_dir = "{state}"
socket = "{state / "ctl.sock"}"
log_level = "WARNING"

[sync]
schedule = "{NEVER}"
force_schedule = "{NEVER}"
batch_size = 500

[health]
schedule = "{NEVER}"

[store]
retention_schedule = "{NEVER}"

[[providers]]
name = "se"
kind = "shipengine"
api_key = "{SANDBOX_KEY}"
base_url = "{se_url}"
rate_limit = "{SE_RATE}/s"
concurrency = 8
timeout = "10s"
default = true

[[providers]]
name = "t17"
kind = "17track"
api_key = "{KEY17}"
base_url = "{t17_url}/track/v2.2"
rate_limit = "{T17_RATE}/s"
concurrency = 4
timeout = "10s"
carriers = ["usps"]
""",
        encoding="utf-8",
    )


async def phase(daemon: Any, se: Any, t17: Any, trigger: str, stop_after_t17: int = 0) -> dict[str, Any]:
    """One sync run; each sandbox's requests, 429s and achieved rate, and the run's time.

    With `stop_after_t17`, the run is stopped once the 17TRACK sandbox has seen that many
    requests: the storm phase measures t17, and se's paused remainder would only add minutes.
    """
    se.reset()
    t17.reset()
    load = loadavg()
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        done: dict[str, Any] = {}

        async def run() -> None:
            done["run"] = await daemon.engine.run_once(trigger)
            tg.cancel_scope.cancel()

        tg.start_soon(run)
        if stop_after_t17:
            seen, give_up = 0, time.monotonic() + STORM_DEADLINE_S
            while seen < stop_after_t17 and time.monotonic() < give_up:  # another process's counter: polled
                await anyio.sleep(0.2)
                seen = int((await anyio.to_thread.run_sync(t17.stats))["total"])
            daemon.engine.request_stop("benchmark: t17's work is measured")
        await anyio.sleep_forever()
    elapsed = time.monotonic() - started
    se_seen, t17_seen = se.stats(), t17.stats()
    return {"run": done.get("run"), "elapsed": elapsed, "se": se_seen, "t17": t17_seen, "load": load}


def row(label: str, account: str, limit: int, seen: dict[str, Any], elapsed: float, load: str) -> list[Any]:
    achieved = float(seen["achieved_rate"])
    return [
        label,
        account,
        f"{limit}/s",
        int(seen["total"]),
        int(seen["by_status"].get("429", 0)),
        round(achieved, 3),
        round(achieved / limit, 3),
        f"{elapsed:.1f}s",
        load,
    ]


async def main(seconds: int, storm: float) -> None:
    from shiptrackd.config import load
    from shiptrackd.daemon import Daemon

    quiet_logs()
    header(f"two providers in one daemon: ShipEngine at {SE_RATE}/s and 17TRACK at {T17_RATE}/s")
    n_se, n_17 = SE_RATE * 2 * seconds, T17_RATE * T17_BATCH * seconds
    with (
        sandbox_process("--rate-limit", f"{SE_RATE}/s") as se,
        sandbox_process() as t17,
        tempfile.TemporaryDirectory(prefix="st-bench-") as tmp,
    ):
        t17._call("POST", "/_sandbox/17track/config", {"api_key": KEY17, "rate_limit": f"{T17_RATE}/s"})
        t17._call("POST", "/_sandbox/17track/config", {"quota_total": 10 * n_17})
        state = Path(tmp)
        path = state / "shiptrackd.toml"
        write_config(path, state, se.base_url, t17.base_url)
        config = load(path, env={"XDG_CONFIG_HOME": str(state / "no-config")})
        results = []
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, handle_signals=False).run)
            se_numbers = tracking_numbers("1Z", n_se)
            t17_numbers = tracking_numbers("9400", n_17)
            records: list[Any] = []
            for i in range(max(n_se, n_17)):  # interleaved, so each store batch holds both accounts' parcels
                if i < n_se:
                    records.append({"carrier_code": "ups", "tracking_number": se_numbers[i]})
                if i < n_17:
                    records.append({"carrier_code": "usps", "tracking_number": t17_numbers[i]})
            await daemon.service.add_shipments(records)
            results.append(("both at their limits", await phase(daemon, se, t17, "manual")))
            se.configure(faults={"429": storm})
            storm_phase = await phase(daemon, se, t17, "force", stop_after_t17=n_17 // T17_BATCH)
            results.append((f"429 storm on se ({storm:.0%})", storm_phase))
            daemon.stop()
    rows = []
    for label, got in results:
        rows.append(row(label, "se (ShipEngine)", SE_RATE, got["se"], got["elapsed"], got["load"]))
        rows.append(row(label, "t17 (17TRACK)", T17_RATE, got["t17"], got["elapsed"], got["load"]))
    print(table(["phase", "account", "limit", "requests", "429s", "req/s", "of limit", "run", "load"], rows))
    both, stormy = results[0][1], results[1][1]
    se1 = float(both["se"]["achieved_rate"]) / SE_RATE
    t1 = float(both["t17"]["achieved_rate"]) / T17_RATE
    t2 = float(stormy["t17"]["achieved_rate"]) / T17_RATE
    self_429 = int(both["se"]["by_status"].get("429", 0)) + int(both["t17"]["by_status"].get("429", 0))
    verdict(
        se1 >= 0.97 and t1 >= 0.97 and self_429 == 0,
        f"each at >= 0.97 of its own limit at the same time: se {se1:.3f}, t17 {t1:.3f} ({self_429} x 429)",
    )
    verdict(
        t2 >= 0.97 and t2 >= 0.97 * t1 and int(stormy["t17"]["by_status"].get("429", 0)) == 0,
        f"a 429 storm on se does not slow t17: {t2:.3f} of its limit during the storm vs {t1:.3f} before"
        f" (se answered {int(stormy['se']['by_status'].get('429', 0))} x 429)",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 5 s of work per account per phase, not 10")
    parser.add_argument("--storm", type=float, default=0.3, help="share of se's requests answered 429 in phase 2")
    args = parser.parse_args()
    anyio.run(main, 5 if args.quick else 10, args.storm)
