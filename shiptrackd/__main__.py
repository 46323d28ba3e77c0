"""
`shiptrackd`: flags -> configuration -> Daemon(...).run() on anyio's asyncio backend.

Exit codes: 0 clean stop, 78 bad configuration, 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .wire.names import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from .config import Config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="shiptrackd",
        description="Keep parcel tracking current: sync, health checks and alerts, steered over a Unix socket.",
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file (default: $SHIPTRACK_CONFIG, or none)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run against a built-in sandbox carrier API with sample shipments: no key, no network",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print the effective settings (secrets masked), exit 0 or 78",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"shiptrackd {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from . import config as config_mod
    from .errors import ConfigError

    def load() -> config_mod.Config:
        return config_mod.load(args.config, demo=args.demo)

    from .statedir import StateDirLock, StateDirLockedError, check_paths, prepare_paths

    # Every configuration error is found here, before the socket, the store or the sandbox.
    try:
        config = load()
        check_paths(config)
        channels = "" if config.alerts.config is None else _describe_apprise_config(config)
    except ConfigError as exc:
        print(f"shiptrackd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(config_mod.render(config) + channels)
        return EXIT_OK

    # What the unit's UMask=0077 does, for a daemon started by hand: state, store, logs private.
    os.umask(0o077)
    lock = StateDirLock(config.daemon.state_dir)
    try:
        prepare_paths(config)
        lock.acquire()  # before --demo seeds the store, and before the Daemon opens it
    except ConfigError as exc:
        print(f"shiptrackd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StateDirLockedError as exc:
        # Exit 1, not 78: the configuration is valid, the directory is busy (e.g. an old
        # process still shutting down); systemd's restart then succeeds once it is gone.
        print(f"shiptrackd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    with lock:
        return _run(args, config, load)


def _run(args: argparse.Namespace, config: Config, load: Callable[[], Config]) -> int:
    """Run the daemon (or the demo) until it stops; the exit code."""
    import anyio
    from loguru import logger

    from .daemon import Daemon
    from .errors import ConfigError, ShiptrackError
    from .log import register_secret, setup_logging

    setup_logging(config.daemon.log_level, config.daemon.log_format)
    alerts = config.alerts
    for secret in (
        config.provider.api_key,
        config.provider.webhook_secret,
        *alerts.urls,
        alerts.heartbeat_url,
        alerts.heartbeat_fail_url,
    ):
        register_secret(secret.get())

    async def run() -> None:
        if args.demo:
            from .demo import demo_environment

            async with demo_environment(config) as (demo_config, aim):
                await Daemon(demo_config, load_config=lambda: aim(load())).run(task_status=FreezeOnStart())
        else:
            await Daemon(config, load_config=load).run(task_status=FreezeOnStart())

    try:
        anyio.run(run, backend="asyncio")
    except ConfigError as exc:
        logger.error("configuration error: {}", exc)
        return EXIT_CONFIG
    except ShiptrackError as exc:
        logger.error("{}", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception:
        logger.opt(exception=True).critical("shiptrackd crashed")
        return EXIT_FAILURE
    return EXIT_OK


class FreezeOnStart:
    """
    Once the daemon runs, what it built at startup (modules, configuration, apps) moves out of the
    garbage collector's sight (`gc.freeze`): it lives as long as the process, and every full
    collection scanned it again, stopping the event loop for up to ~110 ms (bench_push's p99).
    Only the real process does this: a test's in-process daemon leaves the test's heap alone.
    """

    def started(self, value: object = None) -> None:
        import gc

        gc.freeze()


def _describe_apprise_config(config: Config) -> str:
    """Load `[alerts] config` as the daemon will (Apprise's loader, notices' tags checked); its channels as comments."""
    from .alerts.delivery import load_apprise_config

    path = config.alerts.config
    assert path is not None
    channels = load_apprise_config(path, notices=config.notices)
    lines = [f"\n# channels from {path} (Apprise config; untagged, warning or critical get alerts):"]
    lines += [f"#   {c.name}" + ("" if c.for_alerts else "   (notices only)") for c in channels]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
