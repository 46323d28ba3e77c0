"""
`shiptrackctl store migrate [--config PATH]`: bring the configured store's schema up to this version.
`shiptrackctl store copy --to postgresql://…`: move a SQLite store's whole history into PostgreSQL.

The one command that opens the store itself instead of asking a daemon: a schema change is made
before the daemons of a new version start (several daemons on PostgreSQL), or to check that a
store is current. The daemon also migrates at start (one at a time, under a lock), and refuses a
store whose schema is newer than it knows, as this command does.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..wire.names import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from .runner import Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add `store migrate` to shiptrackctl's command tree."""
    text = "the store itself (no daemon needed): migrate its schema, copy it into PostgreSQL"
    p = sub.add_parser("store", help=text, description=text)
    inner = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    how = "apply every schema migration the configured store lacks (what the daemon does at start), then report"
    m = inner.add_parser("migrate", parents=[common], help=how, description=how)
    m.add_argument("--config", metavar="PATH", help="the daemon's configuration file (default: as shiptrackd finds it)")
    m.set_defaults(handler=migrate)
    how = (
        "copy the SQLite store (the configured one, or --from) into a new, empty PostgreSQL database:"
        " an online backup first, so the daemon may keep running, then every table in one transaction"
    )
    c = inner.add_parser("copy", parents=[common], help=how, description=how)
    c.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:port/dbname (no password)")
    c.add_argument("--from", dest="source", metavar="PATH", help="the SQLite file (default: the configured store)")
    c.add_argument("--config", metavar="PATH", help="the daemon's configuration file (default: as shiptrackd finds it)")
    c.add_argument(
        "--password-file", metavar="PATH", help="a file holding the database password (else PGPASSWORD or ~/.pgpass)"
    )
    c.set_defaults(handler=copy)


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


def copy(args: argparse.Namespace) -> int:
    """Snapshot the SQLite store, copy it into the empty database at --to, print what was copied."""
    from pathlib import Path

    from ..config import ConfigError, load
    from ..config.files import FileRefusedError
    from ..config.relations import check_store_url
    from ..config.sources import read_secret_text
    from ..errors import ShiptrackError
    from ..store import configured_target, is_server_url
    from ..store.copy import copy_store
    from ..store.pg import mask_url

    def fail(code: int, message: str, kind: str = "store_error") -> int:
        print(f"shiptrackctl: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": {"code": kind, "message": message}}))
        return code

    url = args.to
    if not is_server_url(url):
        return fail(EXIT_USAGE, "--to must be a postgresql://user@host:port/dbname URL", "usage")
    try:
        check_store_url(url)
    except ConfigError:  # its text names the config key; here it is the option (and never the URL itself)
        return fail(EXIT_USAGE, "--to has a password in it: put it in --password-file or PGPASSWORD", "usage")
    password = ""
    if args.password_file:
        try:
            password = read_secret_text(Path(args.password_file).expanduser()).strip()
        except (OSError, FileRefusedError) as exc:
            return fail(EXIT_FAILURE, f"cannot read --password-file {args.password_file}: {exc}")
    if args.source:
        source = Path(args.source).expanduser().resolve()
    else:
        try:
            config = load(Path(args.config) if args.config else None)
        except ConfigError as exc:
            return fail(EXIT_CONFIG, f"bad configuration: {exc}", "config")
        target = configured_target(config.store.url, config.daemon.state_dir, "shiptrackd.db")
        if isinstance(target, str):
            return fail(EXIT_USAGE, f"the configured store is {mask_url(target)}: name the SQLite file with --from")
        source = target

    def progress(table: str, rows: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"  {table}: {rows} rows", file=sys.stderr)

    try:
        result = copy_store(source, url, password, progress=progress)
    except ShiptrackError as exc:
        return fail(EXIT_FAILURE, exc.message, exc.code)
    doc = {
        "from": result.source,
        "to": result.target,
        "rows": result.rows,
        "snapshot_s": result.snapshot_s,
        "copy_s": result.copy_s,
    }
    if args.json:
        print(json.dumps(doc))
    else:
        main = ", ".join(f"{result.rows.get(t, 0)} {t}" for t in ("shipments", "tracking_events", "sync_runs"))
        print(
            f"copied {result.source} into {result.target}: {main}, {sum(result.rows.values())} rows in"
            f" {len(result.rows)} tables (snapshot {result.snapshot_s:.1f}s, copy {result.copy_s:.1f}s)"
        )
    return EXIT_OK
