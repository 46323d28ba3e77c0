"""
The SQLite file: one writer, one reader, migrations at open.

Writes run as whole functions on a dedicated writer thread, one transaction per
call: a batch of a hundred shipment updates (each in its own savepoint) costs one
thread hop instead of several hundred awaited statements. Reads go through an
aiosqlite connection of their own, so a long write never queues a status query
behind it (WAL readers see the last committed snapshot).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
from loguru import logger

from ..errors import StoreError, StoreFullError, StoreLockedError
from .schema import LATEST_VERSION, MIGRATIONS
from .sql import Conn

T = TypeVar("T")

_PRAGMAS = ("PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=5000", "PRAGMA foreign_keys=ON")


_STORE_WIDE = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR)


def store_wide(exc: sqlite3.Error) -> bool:
    """True for a failure of the store itself (full, locked, I/O), not of one row's data."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _STORE_WIDE


def store_error(exc: sqlite3.Error, doing: str) -> StoreError:
    """
    The StoreError for a failed SQLite call, naming the cause an operator can act on.

    A full disk and a held lock get their own class and a message that starts with the cause
    ("disk full: database or disk is full"), so a run record or a client error never hides it.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF  # extended codes keep the primary in the low byte
    if primary == sqlite3.SQLITE_FULL:
        return StoreFullError(f"disk full: {exc} (free space in the state directory; {doing} did not happen)")
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreLockedError(f"store locked: {exc} (another process holds the store's write lock; {doing} waited)")
    return StoreError(f"{doing} failed: {exc}")


def to_db(at: datetime | None) -> str | None:
    """An aware datetime as fixed-width UTC text, which sorts as time does: 2026-01-05T09:00:12.000000Z."""
    if at is None:
        return None
    # isoformat, not strftime: the same text at a fifth of the cost (every row has several)
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class Database:
    """The SQLite backend (store/sql.py): owns the two connections; `write(fn)` and `fetchall(sql)` are the ways in."""

    backend = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = anyio.Lock()
        self._writer_thread = anyio.CapacityLimiter(1)

    @property
    def path(self) -> Path:
        return self._path

    def describe(self) -> str:
        return str(self._path)

    def store_wide(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error) and store_wide(exc)

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            await anyio.to_thread.run_sync(self._open_writer, limiter=self._writer_thread)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            self._reader.row_factory = aiosqlite.Row
            for pragma in _PRAGMAS:
                await self._reader.execute(pragma)
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc
        except StoreError:
            await self.close()
            raise

    def _open_writer(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        self._writer = conn
        # Only a file without tables takes auto_vacuum, and only before WAL is switched on; a store
        # from before this line keeps "none" (freed pages are reused; packaging/README.md §8 converts it).
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply every migration newer than the file, each in its own transaction."""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
        )
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
        if current > LATEST_VERSION:
            raise StoreError(
                f"the store at {self.path} has schema version {current}, newer than this shiptrackd "
                f"understands ({LATEST_VERSION}); upgrade shiptrackd or restore a matching backup"
            )
        for version, description, sql in MIGRATIONS:
            if version <= current:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, description, to_db(datetime.now(UTC))),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            logger.info("store migrated to version {} ({})", version, description)

    async def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await anyio.to_thread.run_sync(writer.close, limiter=self._writer_thread)

    async def write(self, fn: Callable[[Conn], T]) -> T:
        """Run `fn(conn)` in one IMMEDIATE transaction on the writer thread; roll back if it raises."""
        if self._writer is None:
            raise StoreError("the store is closed")
        async with self._write_lock:
            try:
                return await anyio.to_thread.run_sync(self._run_write, fn, limiter=self._writer_thread)
            except sqlite3.Error as exc:
                raise store_error(exc, "the store write") from exc

    def _run_write(self, fn: Callable[[Conn], T]) -> T:
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        if self._reader is None:
            raise StoreError("the store is closed")
        try:
            # One hop to the reader thread (execute + fetchall there), not three (execute, fetchall,
            # close): under load each hop waits out an event-loop iteration (bench/README.md).
            return list(await self._reader.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise store_error(exc, "the store read") from exc

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def schema_version(self) -> int:
        return int(await self.scalar("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def isolated_read(self, fn: Callable[[Conn], T]) -> T:
        """fn on a short-lived read-only connection in a worker thread: a long read never queues a status query."""
        path = self.path

        def run() -> T:
            uri = Path(path).absolute().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA busy_timeout=5000")
                return fn(conn)
            finally:
                conn.close()

        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)

    async def quick_check(self) -> str:
        """PRAGMA quick_check on its own connection: "ok", or SQLite's first complaints."""

        def fn(conn: Conn) -> str:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
            return "; ".join(str(r[0]) for r in rows) or "ok"

        return await self.isolated_read(fn)

    async def vacuum_step(self) -> int:
        """Give up to VACUUM_PAGES free pages back to the file system; how many (0 without auto_vacuum)."""

        def step(conn: Conn) -> int:
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                return 0
            before = conn.execute("PRAGMA freelist_count").fetchone()[0]
            conn.execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES})").fetchall()
            return int(before - conn.execute("PRAGMA freelist_count").fetchone()[0])

        return await self.write(step)

    async def measure_tables(self, tables: tuple[str, ...]) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(sqlite_measure, self.path, tables)

    def size_bytes(self) -> int:
        """The database plus its WAL, as it sits on disk."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(f"{self.path}{suffix}").stat().st_size
            except FileNotFoundError:
                pass
        return total


VACUUM_PAGES = 1000  # pages returned to the file system per transaction
_AUTO_VACUUM = {0: "none", 1: "full", 2: "incremental"}


def sqlite_measure(path: Path, tables: tuple[str, ...]) -> dict[str, Any]:
    """Rows and bytes per table (indexes included, from dbstat), free space and the vacuum mode."""
    try:
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
            size: dict[str, int] = {}
            for name, bytes_ in conn.execute("SELECT name, pgsize FROM dbstat WHERE aggregate = TRUE"):
                table = owner.get(name, name)
                size[table] = size.get(table, 0) + bytes_
            figures = {
                t: {"rows": conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0], "bytes": size.get(t, 0)}
                for t in tables  # names from the store's own list, not input
            }
            free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
            mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise store_error(exc, "measuring the store") from exc
    return {"tables": figures, "free_bytes": free_pages * page_size, "auto_vacuum": _AUTO_VACUUM.get(mode, str(mode))}


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements.

    A piece between semicolons is joined with the next until SQLite calls it complete, so a
    trigger's `BEGIN ...; ...; END;` stays one statement. (executescript would do the splitting,
    but it commits first, and each migration must run inside its own transaction.)
    """
    code = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    statements, pending = [], ""
    for piece in code.split(";"):
        if not pending and not piece.strip():
            continue
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\n;"):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending.strip()[:80]!r}")
    return statements
