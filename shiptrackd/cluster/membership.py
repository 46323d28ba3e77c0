"""
This daemon as a member of the store's cluster: registered at start, a heartbeat every few seconds
(with the singletons it leads and the leases it holds), gone at a clean stop.

A member whose heartbeat is older than `[cluster] member_stale` is dead to the others: its sync
runs are marked interrupted and its deliveries in flight handed on by the next live member to beat,
and its leases free themselves at their expiry. One silent for `member_forget` is forgotten (its
row deleted), so the `cluster` check that warned about it is ok again.
Each beat also renews the leases this member holds (to a full `[sync] lease` from now), so a batch
that takes longer than one lease (a slow API, a tight rate limit) stays this daemon's while it lives.
On SQLite the one daemon is the one member, and nothing else changes.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus
from loguru import logger

from .. import __version__
from ..clock import Clock
from ..config import ClusterConfig, Config
from ..errors import StoreError
from ..store import Member, Store

HEARTBEAT_S = 5.0  # at most; a shorter member_stale beats faster (heartbeat_s)
BEATS_PER_STALE = 6  # five missed beats and then some before a member is stale: a paused VM survives
STALE_AFTER_S = ClusterConfig.member_stale_s  # the defaults, for callers without a configuration
FORGET_AFTER_S = ClusterConfig.member_forget_s


class Membership:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        member_id: str,
        lease_s: float = 300.0,
        cluster: ClusterConfig | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.id = member_id
        self.lease_s = lease_s  # [sync] lease: each beat renews the claims this member holds to this
        self.cluster = cluster or ClusterConfig()  # when another member is stale, and forgotten
        self.roles: set[str] = set()  # the singletons this daemon leads now (cluster/leader.py)

    def configure(self, config: Config) -> None:
        """A reload: the next beat renews claims to the new lease and judges by the new thresholds."""
        self.lease_s = config.sync.lease_s
        self.cluster = config.cluster

    @property
    def stale_after_s(self) -> float:
        return self.cluster.member_stale_s

    @property
    def heartbeat_s(self) -> float:
        return min(HEARTBEAT_S, self.stale_after_s / BEATS_PER_STALE)

    async def join(self) -> int:
        """Register; mark the sync runs of members no longer beating as interrupted (how many)."""
        now = self.clock.now()
        host = socket.gethostname()
        await self.store.cluster.register(Member(self.id, host, os.getpid(), __version__, now), now)
        return await self._interrupt_orphans()

    async def _interrupt_orphans(self) -> int:
        """Runs left running by a dead daemon: on SQLite every one (one daemon per file), else dead members' only.

        On a shared store a dead member's in-flight webhook and alert deliveries go back to pending too,
        for the live daemons to send (on SQLite each dispatcher does that for its own file at start).
        """
        now = self.clock.now()
        if self.store.backend == "sqlite":
            return await self.store.runs.interrupt_orphans(now)
        live_since = now - timedelta(seconds=self.stale_after_s)
        handed = await self.store.outbox.reset_sending(live_since) + await self.store.alerts.release_claims(live_since)
        if handed:
            logger.warning("{} delivery(ies) in flight on a member whose heartbeat stopped go out again", handed)
        return await self.store.runs.interrupt_orphans(now, live_since=live_since)

    async def beat(self) -> None:
        now = self.clock.now()
        await self.store.leases.renew(self.id, now, now + timedelta(seconds=self.lease_s))
        forget_before = now - timedelta(seconds=self.cluster.member_forget_s)
        await self.store.cluster.heartbeat(self.id, now, sorted(self.roles), forget_before)
        if self.store.backend != "sqlite" and (orphans := await self._interrupt_orphans()):
            logger.warning("marked {} sync run(s) of a member whose heartbeat stopped as interrupted", orphans)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Beat every heartbeat_s until cancelled; a failed beat is logged and retried at the next.

        The period is real time, not the clock seam's: a heartbeat says the process is alive, and a
        test stepping a fake clock through a day must not step through 17,280 beats.
        """
        task_status.started()
        while True:
            await anyio.sleep(self.heartbeat_s)
            try:
                await self.beat()
            except StoreError as exc:
                logger.warning("cluster heartbeat not written: {}", exc)

    async def leave(self) -> None:
        try:
            await self.store.cluster.leave(self.id)
        except StoreError as exc:
            logger.warning("could not leave the cluster cleanly: {}", exc)

    async def snapshot(self) -> dict[str, Any]:
        """status.cluster: the live members (this one marked), what this one leads, how many are stale."""
        members = await self.members()
        live = [
            {k: v for k, v in m.items() if k not in ("alive", "self")} | {"this": m["self"]}
            for m in members
            if m["alive"]
        ]
        return {
            "member": self.id,
            "leads": sorted(self.roles),
            "members": live,
            "stale": sum(1 for m in members if not m["alive"]),
        }

    async def members(self) -> list[dict[str, Any]]:
        """Every member with `alive` (heartbeat within member_stale) and `self` marked."""
        now = self.clock.now()
        out = []
        for m in await self.store.cluster.members():
            age = (now - m.heartbeat_at).total_seconds()
            marks = {"alive": age <= self.stale_after_s, "heartbeat_age_s": round(age, 3), "self": m.id == self.id}
            out.append(msgspec.structs.asdict(m) | marks)
        return out
