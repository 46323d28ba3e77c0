"""
A real PostgreSQL for the tests: one uniquely named database per test session, dropped at the end.

The server is the one every development and CI machine runs (127.0.0.1:5432, trust auth);
SHIPTRACKD_TEST_PG names another admin URL. Without a server the PostgreSQL tests SKIP, with one
line saying why, so `uv run pytest` passes on a bare machine; SHIPTRACKD_REQUIRE_PG=1 (.ci/run)
turns that skip into a failure. Tests share the database and truncate its tables between them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

    from shiptrackd.store import Store

ADMIN_URL = os.environ.get("SHIPTRACKD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("SHIPTRACKD_REQUIRE_PG", "") not in ("", "0")


def _admin() -> Any:
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)


def with_dbname(url: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    host, port, user = params.get("host", "127.0.0.1"), params.get("port", "5432"), params.get("user", "postgres")
    return f"postgresql://{user}@{host}:{port}/{dbname}" if make_conninfo("", **params) else url


def unreachable_reason() -> str | None:
    try:
        import psycopg

        with _admin():
            return None
    except (ImportError, psycopg.Error) as exc:
        return f"no PostgreSQL at {ADMIN_URL} ({str(exc).strip().splitlines()[0][:120]})"


def skip_or_fail(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"SHIPTRACKD_REQUIRE_PG is set but {reason}")
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Every PostgreSQL skip reported at one place, so `-ra` folds them into one line saying why."""
    report: pytest.TestReport = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and longrepr[2].startswith("Skipped: no PostgreSQL at"):
        report.longrepr = (__file__, skip_or_fail.__code__.co_firstlineno, longrepr[2])
    return report


class PgServer:
    """Creates databases (named shiptrackd_test_<session>_<n>) and drops them all at the end."""

    def __init__(self) -> None:
        self.session = f"shiptrackd_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.created: list[str] = []

    def create(self, suffix: str = "") -> str:
        name = f"{self.session}_{suffix or len(self.created)}"
        with _admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return with_dbname(ADMIN_URL, name)

    def drop_all(self) -> None:
        with _admin() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    reason = unreachable_reason()
    if reason:
        skip_or_fail(reason)
    server = PgServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg_server: PgServer) -> str:
    """The session's shared, migrated database (tests truncate it: see `store`)."""
    from shiptrackd.store.pg import PgDatabase, migrate

    url = pg_server.create("shared")
    with PgDatabase(url).connect() as conn:  # migrated once here, synchronously (no event loop yet)
        migrate(conn, url)
    return url


def truncate_all(url: str) -> None:
    import psycopg

    from shiptrackd.store.pg import PgConn, table_names

    # DELETE, not TRUNCATE: a few small tables empty in milliseconds, TRUNCATE takes half a second.
    # Replica role skips the foreign keys' and the tally's triggers (the tally rows go too).
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        for name in table_names(PgConn(conn)):
            conn.execute(f'DELETE FROM "{name}"')
        for (seq,) in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"):
            conn.execute("SELECT setval(%s, 1, false)", (seq,))


BACKENDS = ("sqlite", "postgresql")


async def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh Store on the requested backend: a new SQLite file, or the shared PostgreSQL database emptied."""
    from shiptrackd.store import Store

    if request.param == "sqlite":
        store = await Store.open(tmp_path / "st.db")
    else:
        url = request.getfixturevalue("pg_url")
        truncate_all(url)
        store = await Store.open(url)
    try:
        yield store
    finally:
        await store.close()


def pg_connect(store: Store) -> Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]:
    """A PostgreSQL store's way to open connections of its own (advisory locks, LISTEN), as cluster/wiring.py does."""
    from shiptrackd.store.pg import PgDatabase

    assert isinstance(store.db, PgDatabase), "a PostgreSQL store"
    return store.db.connect_async
