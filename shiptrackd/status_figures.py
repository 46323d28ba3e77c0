"""
The store's figures in /v1/status (shipments, active, due now, the cluster's members), read at most once a second.

Operators call `status` when the daemon is busiest. Read on every call, the figures queued behind a
sync's own store reads (the reader connection is one thread) and a status call took ~100 ms at p99
during a sync of a 100k-shipment store (bench/bench_million.py). Cached here, a status call during
a sync does not wait for the store: the figures are at most `max_age` old, refreshed in the
background. A write through the control API (add, import, remove) invalidates them, so a caller
reads its own writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from loguru import logger

from .clock import Clock
from .store import Store

if TYPE_CHECKING:
    from .cluster.membership import Membership

MAX_AGE = timedelta(seconds=1)
# Older than this, a status call waits for fresh figures rather than show them (e.g. the store failing).
STALE_AFTER = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class ShipmentFigures:
    total: int
    active: int
    due_now: int
    cluster: dict[str, Any] | None  # Membership.snapshot(), None when the daemon has no membership
    read_at: datetime


class StatusFigures:
    """Shipment counts for /v1/status: served from memory, refreshed by one reader at a time."""

    def __init__(self, store: Store, clock: Clock, cluster: Membership | None) -> None:
        self.store = store
        self.clock = clock
        self.cluster = cluster
        self._figures: ShipmentFigures | None = None
        self._lock = anyio.Lock()
        self._refreshing = False
        self._generation = 0  # bumped by invalidate(): a read that raced a write is not kept

    def invalidate(self) -> None:
        """The next call reads the store (after a write the caller will want to see)."""
        self._figures = None
        self._generation += 1

    async def get(self, task_group: TaskGroup) -> ShipmentFigures:
        figures = self._figures
        if figures is None or self.clock.now() - figures.read_at > STALE_AFTER:
            return await self._read()
        if self.clock.now() - figures.read_at > MAX_AGE and not self._refreshing:
            self._refreshing = True
            task_group.start_soon(self._refresh_in_background)
        return figures

    async def _read(self) -> ShipmentFigures:
        async with self._lock:  # callers arriving together share one read
            figures = self._figures
            if figures is not None and self.clock.now() - figures.read_at <= MAX_AGE:
                return figures
            now, generation = self.clock.now(), self._generation
            counts = await self.store.shipments.counts()
            due_now = await self.store.shipments.count_due(now)
            cluster = await self.cluster.snapshot() if self.cluster is not None else None
            figures = ShipmentFigures(counts["total"], counts["active"], due_now, cluster, now)
            if generation == self._generation:
                self._figures = figures
            return figures

    async def _refresh_in_background(self) -> None:
        try:
            await self._read()
        except Exception as exc:  # the next call past STALE_AFTER reads in the foreground and reports it
            logger.debug("status figures not refreshed: {}", exc)
        finally:
            self._refreshing = False
