"""The store: the only owner of SQL. `Store` bundles one area object per set of tables."""

from __future__ import annotations

from pathlib import Path

import anyio

from .alerts import AlertStore, NewNotification
from .backup import BackupResult, backup
from .db import Database, from_db, to_db
from .health import HealthStore
from .retention import RetentionStore
from .runs import RunCounts, RunStore
from .shipments import AddResult, ApplyResult, FetchFailure, FetchSuccess, ShipmentStore


class Store:
    """Open with `await Store.open(path)`; always `await store.close()` (an open connection hangs exit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = Database(path)
        self.shipments = ShipmentStore(self.db)
        self.runs = RunStore(self.db)
        self.health = HealthStore(self.db)
        self.alerts = AlertStore(self.db)
        self.retention = RetentionStore(self.db)

    @classmethod
    async def open(cls, path: Path) -> Store:
        store = cls(path)
        await store.db.open()
        return store

    async def close(self) -> None:
        await self.db.close()

    def size_bytes(self) -> int:
        return self.db.size_bytes()

    async def backup(self, target: Path, *, force: bool = False) -> BackupResult:
        """A consistent, checked copy of the store at *target* (0600), taken while everything runs."""
        return await anyio.to_thread.run_sync(lambda: backup(self.path, target, force=force))


__all__ = [
    "AddResult",
    "ApplyResult",
    "BackupResult",
    "FetchFailure",
    "FetchSuccess",
    "NewNotification",
    "RunCounts",
    "Store",
    "from_db",
    "to_db",
]
