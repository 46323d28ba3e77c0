"""
Which shipments a run takes: the named ids, every active one (force), or the due ones, batch_size
rows at a time, each batch claimed under the engine's lease owner (store/leases.py) so that other
daemons on the store skip it; and the same selection read without claiming, for a dry run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..store.rows import Shipment
from ..units import format_rfc3339
from .progress import RunProgress

if TYPE_CHECKING:
    from .engine import SyncEngine


class Selector:
    """The engine's selection step; reads the engine's live config, store and lease owner."""

    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine

    async def select(
        self, progress: RunProgress, shipment_ids: Sequence[str] | None, *, claim: bool = True
    ) -> AsyncGenerator[list[Shipment], None]:
        """Yield batches to fetch, batch_size rows at a time: the named ids, every active one, or the due ones.

        Each batch is claimed (store/leases.py): leased to this daemon, so other daemons on the
        store skip it; one another daemon holds is left to it (a targeted one is counted skipped).
        Without *claim* (a dry run) the same selection is only read.
        """
        size = self.engine.config.sync.batch_size
        if not claim:
            async for batch in self.peek(progress, shipment_ids, size):
                yield batch
            return
        leases, owner = self.engine.store.leases, self.engine.owner
        if shipment_ids:
            wanted = list(dict.fromkeys(shipment_ids))
            for start in range(0, len(wanted), size):
                chunk = wanted[start : start + size]
                found = {s.id for s in await self.engine.store.shipments.get_many(chunk)}
                progress.unknown_ids += [i for i in chunk if i not in found]
                now = self.engine.clock.now()
                claimed = await leases.claim_ids(owner, [i for i in chunk if i in found], now, self.lease_end(now))
                progress.counts.selected += len(found) - len(claimed)  # held elsewhere: skipped
                if claimed:
                    yield claimed
        elif progress.trigger == "force":
            after_id = ""
            since = progress.started_at
            while batch := await leases.claim_active(
                owner, after_id, *self.lease_window(), size, untouched_since=since
            ):
                yield batch
                after_id = batch[-1].id
        else:
            while batch := await leases.claim_due(owner, progress.started_at, *self.lease_window(), size):
                yield batch

    async def peek(
        self, progress: RunProgress, shipment_ids: Sequence[str] | None, size: int
    ) -> AsyncGenerator[list[Shipment], None]:
        """What _select would claim, read without claiming (leases held elsewhere included)."""
        if shipment_ids:
            wanted = list(dict.fromkeys(shipment_ids))
            for start in range(0, len(wanted), size):
                chunk = wanted[start : start + size]
                found = {s.id: s for s in await self.engine.store.shipments.get_many(chunk)}
                progress.unknown_ids += [i for i in chunk if i not in found]
                if found:
                    yield [found[i] for i in chunk if i in found]
        elif progress.trigger == "force":
            after_id = ""
            skip_pushed = self.engine.push is not None
            while batch := await self.engine.store.shipments.active_after(after_id, size, skip_pushed=skip_pushed):
                yield batch
                after_id = batch[-1].id
        else:
            key: tuple[datetime, str] | None = None
            while batch := await self.engine.store.shipments.due(progress.started_at, size, after=key):
                yield batch
                key = (batch[-1].next_sync_at or progress.started_at, batch[-1].id)

    def lease_end(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.engine.config.sync.lease_s)

    def lease_window(self) -> tuple[datetime, datetime]:
        now = self.engine.clock.now()
        return now, self.lease_end(now)

    async def plan(self, trigger: str, shipment_ids: Sequence[str] | None, limit: int = 1000) -> dict[str, Any]:
        """What a run would sync and why, without a single API call or write."""
        progress = RunProgress(0, trigger, self.engine.clock.now())
        listed: list[dict[str, Any]] = []
        total = 0
        async with aclosing(self.select(progress, shipment_ids, claim=False)) as batches:
            async for batch in batches:
                total += len(batch)
                for s in batch:
                    if len(listed) < limit:
                        listed.append(
                            {
                                "id": s.id,
                                "carrier_code": s.carrier_code,
                                "tracking_number": s.tracking_number,
                                "status_code": s.status_code,
                                "next_sync_at": s.next_sync_at,
                                "why": _why_selected(trigger, s, bool(shipment_ids)),
                            }
                        )
        return {"trigger": trigger, "would_sync": total, "shipments": listed, "unknown_ids": progress.unknown_ids}


def _why_selected(trigger: str, shipment: Shipment, targeted: bool) -> str:
    if targeted:
        return "named on the command line"
    if trigger == "force":
        return "force: every active shipment"
    due = format_rfc3339(shipment.next_sync_at) if shipment.next_sync_at else "now"
    return f"due since {due} ({shipment.schedule_reason})"
