"""The store: the only owner of SQL. `Store` bundles one area object per set of tables."""

from __future__ import annotations

from pathlib import Path

import anyio

from ..errors import InvalidRequestError
from .alerts import AlertStore, NewNotification
from .backup import BackupResult, backup
from .carriers import CarrierStore
from .cluster import ClusterStore, Member
from .db import Database, to_db
from .health import HealthStore
from .leases import LeaseStore
from .outbox import Change, Outbox, Route, Settlement
from .push import PushStore, PushWrite
from .retention import RetentionStore
from .runs import RunCounts, RunStore
from .shipments import AddResult, ApplyResult, FetchFailure, FetchSuccess, ShipmentStore
from .sql import Backend


def is_server_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def backend_for(target: Path | str, password: str = "") -> Backend:
    """The backend for a path, a `sqlite:///abs/path` URL or a `postgresql://` URL (store/sql.py)."""
    if is_server_url(target):
        from .pg import PgDatabase  # psycopg is imported only by a store that needs it

        return PgDatabase(str(target), password)
    if isinstance(target, str):
        target = Path(target.removeprefix("sqlite://"))
    return Database(target)


def configured_target(url: str, state_dir: Path, default_file: str) -> Path | str:
    """`[store] url` as what Store.open takes: a Path for SQLite (the state dir's file when unset), else the URL."""
    if not url:
        return state_dir / default_file
    if url.startswith("sqlite://"):
        return Path(url.removeprefix("sqlite://"))
    return url


class Store:
    """Open with `await Store.open(path or URL)`; always `await store.close()` (an open connection hangs exit)."""

    def __init__(self, target: Path | str, *, password: str = "") -> None:
        self.db: Backend = backend_for(target, password)
        self.path = self.db.path  # the SQLite file; None on PostgreSQL
        self.outbox = Outbox(self.db)
        self.shipments = ShipmentStore(self.db, self.outbox)
        self.carriers = CarrierStore(self.db)
        self.runs = RunStore(self.db)
        self.health = HealthStore(self.db)
        self.alerts = AlertStore(self.db)
        self.retention = RetentionStore(self.db)
        self.push = PushStore(self.db, self.outbox)
        self.leases = LeaseStore(self.db)
        self.cluster = ClusterStore(self.db)

    @classmethod
    async def open(cls, target: Path | str, *, password: str = "") -> Store:
        store = cls(target, password=password)
        await store.db.open()
        return store

    @property
    def backend(self) -> str:
        return self.db.backend

    def describe(self) -> str:
        """Where the store is (a path, or a URL without its password)."""
        return self.db.describe()

    async def close(self) -> None:
        await self.db.close()

    def size_bytes(self) -> int:
        return self.db.size_bytes()

    async def backup(self, target: Path, *, force: bool = False) -> BackupResult:
        """A consistent, checked copy of the store at *target* (0600), taken while everything runs."""
        source = self.path
        if source is None:
            raise InvalidRequestError(
                "the store is on PostgreSQL: back it up with pg_dump (packaging/README.md), not shiptrackctl backup"
            )
        return await anyio.to_thread.run_sync(lambda: backup(source, target, force=force))


__all__ = [
    "AddResult",
    "Backend",
    "ApplyResult",
    "BackupResult",
    "Change",
    "FetchFailure",
    "FetchSuccess",
    "Member",
    "NewNotification",
    "Outbox",
    "Route",
    "Settlement",
    "PushWrite",
    "RunCounts",
    "Store",
    "backend_for",
    "configured_target",
    "is_server_url",
    "to_db",
]
