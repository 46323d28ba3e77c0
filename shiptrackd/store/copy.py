"""
Moving in (issue 13 item 6): copy a SQLite store, running or not, into an empty PostgreSQL database.

1. An online backup of the SQLite file (store/backup.py: SQLite's backup API, one read snapshot, so
   the daemon goes on syncing meanwhile) into a private temporary directory, migrated there to this
   version's schema (only the copy is touched, never the daemon's file).
2. The PostgreSQL database migrated, then every table of the snapshot copied into it with COPY in
   ONE transaction: the target ends with the whole snapshot or, on any failure, nothing. A target
   holding any row is refused (the check runs inside that transaction, under a lock).
3. What only describes the old daemon's runtime stays behind: its membership, the rate bucket, the
   store probe, shipment leases (the new daemons claim afresh); the shipment tally is rebuilt by the
   PostgreSQL triggers, then folded. Identity sequences are moved past the copied ids.

Blocking: `shiptrackctl store copy` runs it directly; nothing here prints or logs the password.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConflictError, StoreError
from .backup import backup

# Tables that describe the source daemon's runtime, or that the target derives for itself.
LEFT_BEHIND = ("schema_migrations", "cluster_members", "rate_budget", "store_probe", "shipment_tally")
CLEARED = {"shipments": {"lease_owner": "''", "lease_until": "NULL"}}  # columns copied as these SQL values
_COPY_LOCK = 0x5348_4950_0002  # pg_advisory_xact_lock key: two copies into one target queue, the second is refused


@dataclass(frozen=True)
class CopyResult:
    source: str
    target: str  # without a password
    rows: dict[str, int] = field(default_factory=dict)
    snapshot_s: float = 0.0
    copy_s: float = 0.0


def _tables_in_order(src: sqlite3.Connection) -> list[str]:
    """The snapshot's tables to copy, parents before the tables whose foreign keys name them."""
    names = [
        r[0]
        for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        if r[0] not in LEFT_BEHIND
    ]
    parents = {n: {r[2] for r in src.execute("SELECT * FROM pragma_foreign_key_list(?)", (n,))} for n in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = sorted(n for n in names if n not in ordered and parents[n] <= {*ordered, n})
        if not ready:
            raise StoreError(f"the store's foreign keys form a cycle: {sorted(set(names) - set(ordered))}")
        ordered += ready
    return ordered


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in src.execute("SELECT * FROM pragma_table_info(?)", (table,))]


def snapshot(source: Path, into: Path) -> Path:
    """An online backup of *source* in the directory *into*, migrated to this version's schema."""
    import anyio

    from . import Store

    copy = into / "snapshot.db"
    backup(source, copy)

    async def migrate() -> None:
        store = await Store.open(copy)  # refuses a schema newer than this shiptrackd, like the daemon
        await store.close()

    anyio.run(migrate)
    return copy


def copy_into(snapshot_path: Path, conn: Any, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """
    Copy every table of the snapshot into the migrated, empty database behind *conn* (a psycopg
    connection in autocommit mode), in one transaction; returns the rows copied per table.
    """
    from .pg import PgConn, compact_tally, table_names

    src = sqlite3.connect(f"file:{snapshot_path}?mode=ro", uri=True)
    rows: dict[str, int] = {}
    try:
        tables = _tables_in_order(src)
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_COPY_LOCK,))
            target = set(table_names(PgConn(conn)))
            missing = [t for t in tables if t not in target]
            if missing:
                raise StoreError(f"the PostgreSQL database has no table for {', '.join(missing)}")
            for name in sorted(target):  # the names come from the catalogue, not from input
                if conn.execute(f'SELECT EXISTS (SELECT 1 FROM "{name}")').fetchone()[0]:
                    raise ConflictError(
                        f"the target database is not empty (table {name} has rows): copy only into a new database"
                    )
            for table in tables:
                rows[table] = _copy_table(src, conn, table)
                if progress is not None:
                    progress(table, rows[table])
            _advance_identities(conn, tables)
            compact_tally(PgConn(conn))
            conn.execute("COMMIT")
        except BaseException:
            if not conn.closed:
                conn.execute("ROLLBACK")
            raise
    finally:
        src.close()
    return rows


def _copy_table(src: sqlite3.Connection, conn: Any, table: str) -> int:
    columns = _columns(src, table)
    cleared = CLEARED.get(table, {})
    select = ", ".join(cleared.get(c, f'"{c}"') for c in columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    n = 0
    with conn.cursor().copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
        for row in src.execute(f'SELECT {select} FROM "{table}"'):  # streamed, never all in memory
            copy.write_row(row)
            n += 1
    return n


def _advance_identities(conn: Any, tables: list[str]) -> None:
    """Identity columns got explicit ids: their sequences must start past them."""
    found = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in found:
        if table in tables:
            conn.execute(
                f'SELECT setval(pg_get_serial_sequence(%s, %s), max("{column}")) FROM "{table}" HAVING count(*) > 0',
                (f'"{table}"', column),
            )


def copy_store(
    source: Path,
    url: str,
    password: str = "",
    *,
    progress: Callable[[str, int], None] | None = None,
) -> CopyResult:
    """The whole move: snapshot *source* (online), migrate the database at *url*, copy into it."""
    from .pg import PgDatabase, migrate

    if not source.is_file():
        raise StoreError(f"no SQLite store at {source}")
    db = PgDatabase(url, password)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shiptrackd-copy-") as scratch:  # mode 0700
        snap = snapshot(source, Path(scratch))
        taken = time.monotonic()
        conn = db.connect()
        try:
            migrate(conn, db.describe())
            rows = copy_into(snap, conn, progress)
        except Exception as exc:
            import psycopg

            if isinstance(exc, psycopg.Error):
                raise StoreError(f"copying into {db.describe()} failed: {str(exc).strip().splitlines()[0]}") from None
            raise
        finally:
            conn.close()
    done = time.monotonic()
    return CopyResult(str(source), db.describe(), rows, round(taken - started, 3), round(done - taken, 3))


__all__ = ["CLEARED", "LEFT_BEHIND", "CopyResult", "copy_into", "copy_store", "snapshot"]
