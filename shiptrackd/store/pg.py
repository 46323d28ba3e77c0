"""
The PostgreSQL backend: the same `write(fn)` / `fetchall(sql)` seam as the SQLite file (store/sql.py).

psycopg 3 (README: why). Writes run as whole functions on a dedicated writer thread over one
synchronous connection, one transaction per call, exactly as on SQLite, so every store area runs
unchanged on both; a deadlock or serialization failure (another daemon's transaction) is retried
a few times. Reads go through a small async pool, so a status query never waits for a write.
The area SQL's `?` placeholders become `%s`; rows answer by index and by column name.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import psycopg
from loguru import logger
from psycopg.adapt import Loader
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool

from ..errors import StoreError
from .schema import LATEST_VERSION
from .schema_pg import PG_MIGRATIONS
from .sql import Conn, Cursor

T = TypeVar("T")

_MIGRATION_LOCK = 0x5348_4950_0001  # pg_advisory_xact_lock key: one daemon migrates, the others wait
_RETRY_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock detected: the whole fn again
_STORE_WIDE_CLASSES = ("08", "53", "57", "58", "XX")  # connection, resources, operator, system, internal
WRITE_ATTEMPTS = 4


def mask_url(url: str) -> str:
    """The URL without a password, fit for a log line or a status reply."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparseable URL)"
    host, port, db = params.get("host", "localhost"), params.get("port", "5432"), params.get("dbname", "")
    user = params.get("user")
    return f"postgresql://{f'{user}@' if user else ''}{host}:{port}/{db}"


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The areas' `?` placeholders as psycopg's `%s` (a literal % doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    index = {name: i for i, name in enumerate(names)}

    class Row(tuple[Any, ...]):
        """A tuple that also answers row["column"] and dict(row), like sqlite3.Row."""

        __slots__ = ()

        def keys(self) -> list[str]:
            return list(names)

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, index[key])
            return tuple.__getitem__(self, key)

    return Row


def row_factory(cursor: Any) -> RowMaker[Any]:
    names = tuple(c.name for c in cursor.description or ())
    return _row_class(names)


class _WholeNumericLoader(Loader):
    """sum() over bigint is numeric in PostgreSQL: a whole one comes back an int (as SQLite gives), else a float."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def _configure(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("numeric", _WholeNumericLoader)


class PgConn:
    """A psycopg connection in the shape of sqlite3.Connection that the area functions expect."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self._conn.execute(translate(sql), tuple(parameters) if parameters else None)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        cursor = self._conn.cursor()
        cursor.executemany(translate(sql), [tuple(p) for p in parameters])
        return cursor


def pg_store_wide(exc: BaseException) -> bool:
    """True for a failure of the server or the connection, not of one row's data."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, psycopg.Error) and state[:2] in _STORE_WIDE_CLASSES


class PgDatabase:
    """The PostgreSQL backend (store/sql.py); *password* comes from a file or credential, never the URL."""

    backend = "postgresql"
    # sqlite3.Error too: the areas raise sqlite3.IntegrityError for a row removed under them.
    errors: tuple[type[Exception], ...] = (psycopg.Error, sqlite3.Error)

    def __init__(self, url: str, password: str = "", *, pool_size: int = 4) -> None:
        self.url = url
        self._password = password
        self._pool_size = pool_size
        self._writer: psycopg.Connection[Any] | None = None
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._write_lock = anyio.Lock()
        self._writer_thread = anyio.CapacityLimiter(1)

    @property
    def path(self) -> Path | None:
        return None

    def describe(self) -> str:
        return mask_url(self.url)

    def store_wide(self, exc: BaseException) -> bool:
        return pg_store_wide(exc)

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": row_factory, "connect_timeout": 10}
        if self._password:
            kwargs["password"] = self._password
        return kwargs

    async def connect_async(self) -> psycopg.AsyncConnection[Any]:
        """A new async connection of its own (the shared rate budget, leader locks), autocommit, with
        TCP keepalives so a dead host's session (and the advisory locks it held) goes within ~25 s."""
        kwargs = {**self._kwargs(), "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5}
        conn = await psycopg.AsyncConnection.connect(self.url, **kwargs, keepalives_count=3)
        _configure(conn)
        return conn

    def connect(self) -> psycopg.Connection[Any]:
        """A new synchronous connection of this store's (blocking: call it in a thread)."""
        try:
            conn = psycopg.connect(self.url, **self._kwargs())
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the store at {self.describe()}: {_first_line(exc)}") from None
        _configure(conn)
        return conn

    async def open(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._open_writer, limiter=self._writer_thread)

            async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
                _configure(conn)

            self._pool = AsyncConnectionPool(
                self.url,
                kwargs=self._kwargs(),
                min_size=1,
                max_size=self._pool_size,
                open=False,
                configure=configure,
                name="shiptrackd-readers",
            )
            await self._pool.open(wait=True, timeout=15)
        except BaseException:
            await self.close()
            raise

    def _open_writer(self) -> None:
        self._writer = self.connect()
        try:
            migrate(self._writer, self.describe())
        except psycopg.Error as exc:
            raise StoreError(f"migrating the store at {self.describe()} failed: {_first_line(exc)}") from None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await anyio.to_thread.run_sync(writer.close, limiter=self._writer_thread)

    async def write(self, fn: Callable[[Conn], T]) -> T:
        """Run `fn(conn)` in one transaction on the writer thread; roll back if it raises."""
        if self._writer is None:
            raise StoreError("the store is closed")
        async with self._write_lock:
            try:
                return await anyio.to_thread.run_sync(self._run_write, fn, limiter=self._writer_thread)
            except psycopg.Error as exc:
                raise StoreError(f"the store write failed: {_first_line(exc)}") from exc

    def _run_write(self, fn: Callable[[Conn], T]) -> T:
        conn = self._writer
        assert conn is not None
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            conn.execute("BEGIN")
            try:
                result = fn(PgConn(conn))
                conn.execute("COMMIT")
                return result
            except psycopg.Error as exc:
                _rollback(conn)
                if exc.sqlstate in _RETRY_SQLSTATES and attempt < WRITE_ATTEMPTS:
                    continue
                raise
            except BaseException:
                _rollback(conn)
                raise
        raise AssertionError("unreachable")

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        if self._pool is None:
            raise StoreError("the store is closed")
        values = tuple(params)
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(translate(sql), values or None)
                return await cursor.fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"the store read failed: {_first_line(exc)}") from exc

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def isolated_read(self, fn: Callable[[Conn], T]) -> T:
        """fn on a connection of its own in a worker thread (a long count never holds a pooled reader)."""

        def run() -> T:
            conn = self.connect()
            try:
                return fn(PgConn(conn))
            finally:
                conn.close()

        try:
            return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        except psycopg.Error as exc:
            raise StoreError(f"the store read failed: {_first_line(exc)}") from exc

    async def schema_version(self) -> int:
        return int(await self.scalar("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def quick_check(self) -> str:
        """PostgreSQL checks its own pages; "ok" when a connection of its own can read the catalogue."""
        return await self.isolated_read(lambda conn: "ok" if conn.execute("SELECT 1").fetchone() else "no answer")

    async def vacuum_step(self) -> int:
        """Autovacuum gives space back; here only the shipment tally's deltas are folded (no pages freed)."""
        await self.write(compact_tally)
        return 0

    async def measure_tables(self, tables: tuple[str, ...]) -> dict[str, Any]:
        sql = (
            "SELECT relname, coalesce(n_live_tup, 0), pg_total_relation_size(relid) FROM pg_stat_user_tables"
            " WHERE relname = ANY(?)"
        )
        rows = await self.fetchall(sql, (list(tables),))
        found = {r[0]: {"rows": int(r[1]), "bytes": int(r[2])} for r in rows}
        figures = {t: found.get(t, {"rows": 0, "bytes": 0}) for t in tables}
        return {"tables": figures, "free_bytes": 0, "auto_vacuum": "postgresql autovacuum"}

    def size_bytes(self) -> int:
        return 0  # the server's disk, not this machine's: `status` shows the table figures instead

    async def database_size(self) -> int:
        return int(await self.scalar("SELECT pg_database_size(current_database())"))


def compact_tally(conn: Conn) -> None:
    """Fold shipment_tally_delta into one row per (status, active); concurrent inserts are kept (snapshot)."""
    conn.execute(
        "WITH gone AS (DELETE FROM shipment_tally_delta RETURNING status_code, active, n)"
        " INSERT INTO shipment_tally_delta (status_code, active, n)"
        " SELECT status_code, active, sum(n) FROM gone GROUP BY 1, 2 HAVING sum(n) != 0"
    )


def migrate(conn: psycopg.Connection[Any], where: str) -> None:
    """Apply every migration newer than the database, each in its own transaction, one daemon at a time."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    for version, description, sql in PG_MIGRATIONS:
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
            current = int(row[0]) if row else 0
            if current > LATEST_VERSION:
                raise StoreError(
                    f"the store at {where} has schema version {current}, newer than this shiptrackd "
                    f"understands ({LATEST_VERSION}); upgrade shiptrackd or restore a matching backup"
                )
            if version <= current:
                conn.execute("COMMIT")
                continue
            conn.execute(sql.encode())  # a script: several statements, no parameters
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                (version, description, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        logger.info("store migrated to version {} ({})", version, description)


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE and not conn.closed:
        conn.execute("ROLLBACK")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def table_names(conn: Conn) -> Sequence[str]:
    """Every table of the store but the migration record (the tests truncate them between tests)."""
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename != 'schema_migrations'"
    ).fetchall()
    return [r[0] for r in rows]


__all__ = ["PgConn", "PgDatabase", "mask_url", "migrate", "pg_store_wide", "table_names", "translate"]
