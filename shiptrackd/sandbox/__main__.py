"""
`python -m shiptrackd.sandbox`: run the fake ShipEngine API in the foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys

import anyio

from shiptrackd.sandbox.app import Sandbox
from shiptrackd.sandbox.state import parse_duration, parse_rate_limit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shiptrackd.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--api-key", default="TEST_sandbox", help="the accepted API-Key; 'any' accepts all")
    parser.add_argument("--rate-limit", type=parse_rate_limit, default=None, help="e.g. 50/s or 200/min")
    parser.add_argument("--burst", type=float, default=None, help="token bucket size (default: the count)")
    parser.add_argument(
        "--quota-headers", action="store_true", help="send X-RateLimit-Limit/Remaining/Reset (with --rate-limit)"
    )
    parser.add_argument("--latency", type=parse_duration, default=0.0, help="added to every answer, e.g. 20ms")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--seed", type=int, default=0, help="seed for random faults")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="random fault rate, repeatable, e.g. --fault 500=0.05 --fault reset=0.01",
    )
    return parser


async def _main(args: argparse.Namespace) -> None:
    faults = {}
    for item in args.fault:
        kind, _, rate = item.partition("=")
        faults[kind] = float(rate)
    sandbox = Sandbox(
        api_key=None if args.api_key == "any" else args.api_key,
        rate_limit=args.rate_limit,
        burst=args.burst,
        quota_headers=args.quota_headers,
        latency_s=args.latency,
        faults=faults,
        seed=args.seed,
        time_scale=args.time_scale,
    )
    async with anyio.create_task_group() as tg:
        base_url = await tg.start(sandbox.run, args.host, args.port)
        print(f"shiptrackd sandbox listening on {base_url}", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        anyio.run(_main, args, backend="asyncio")
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
