"""
`shiptrackctl store migrate [--config PATH]`: bring the configured store's schema up to this version.

The one command that opens the store itself instead of asking a daemon: a schema change is made
before the daemons of a new version start (several daemons on PostgreSQL), or to check that a
store is current. The daemon also migrates at start (one at a time, under a lock), and refuses a
store whose schema is newer than it knows, as this command does.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..wire.names import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from .runner import Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add `store migrate` to shiptrackctl's command tree."""
    text = "the store itself (no daemon needed): migrate its schema"
    p = sub.add_parser("store", help=text, description=text)
    inner = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    how = "apply every schema migration the configured store lacks (what the daemon does at start), then report"
    m = inner.add_parser("migrate", parents=[common], help=how, description=how)
    m.add_argument("--config", metavar="PATH", help="the daemon's configuration file (default: as shiptrackd finds it)")
    m.set_defaults(handler=migrate)


def migrate(args: argparse.Namespace) -> int:
    """Open the store from the configuration (which migrates it) and print where and which version."""
    from pathlib import Path

    import anyio

    from ..config import ConfigError, load
    from ..errors import StoreError
    from ..store import Store, configured_target
    from ..store.schema import LATEST_VERSION

    try:
        config = load(Path(args.config) if args.config else None)
    except ConfigError as exc:
        print(f"shiptrackctl: bad configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    target = configured_target(config.store.url, config.daemon.state_dir, "shiptrackd.db")

    async def run() -> dict[str, object]:
        store = await Store.open(target, password=config.store.password.get())
        try:
            return {"store": store.describe(), "backend": store.backend, "version": await store.db.schema_version()}
        finally:
            await store.close()

    try:
        doc = anyio.run(run)
    except StoreError as exc:
        print(f"shiptrackctl: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
        return EXIT_FAILURE
    doc["latest"] = LATEST_VERSION
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"store {doc['store']} ({doc['backend']}): schema version {doc['version']}, current")
    return EXIT_OK
