"""
The seam between the store areas and a backend (SQLite file or PostgreSQL server).

An area writes plain SQL with `?` placeholders in the dialect both engines share (SQLite 3.35+
and PostgreSQL 15 agree on ON CONFLICT, RETURNING, row values, partial indexes, savepoints and
FILTER), and runs it through `Backend`: `write(fn)` runs `fn(conn)` in one transaction on the
backend's writer, `fetchall` reads. Rows answer by index and by column name on both. What the
engines do not share (integrity checks, vacuum, sizes, backups) is a method of the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """What `write(fn)` hands to fn: sqlite3.Connection, or the PostgreSQL adapter of the same shape."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


class Backend(Protocol):
    """One store backend; `errors` are the exceptions a statement may raise inside `write(fn)`."""

    backend: str  # "sqlite" or "postgresql"
    errors: tuple[type[Exception], ...]

    @property
    def path(self) -> Path | None: ...  # the SQLite file; None on a server

    def describe(self) -> str: ...  # where the store is, fit for a log line (no password)

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, fn: Callable[[Conn], T]) -> T: ...

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]: ...

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any: ...

    async def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any: ...

    async def isolated_read(self, fn: Callable[[Conn], T]) -> T: ...

    def store_wide(self, exc: BaseException) -> bool: ...

    def size_bytes(self) -> int: ...

    async def schema_version(self) -> int: ...

    async def quick_check(self) -> str: ...

    async def vacuum_step(self) -> int: ...

    async def measure_tables(self, tables: tuple[str, ...]) -> dict[str, Any]: ...


__all__ = ["Backend", "Conn", "Cursor"]
