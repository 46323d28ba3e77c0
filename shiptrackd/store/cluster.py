"""
Cluster members: every daemon on the store registers with a heartbeat (store/schema.py migration 5).

`status` lists them with the leases each holds; a daemon starting marks as interrupted only the
runs of members whose heartbeat has stopped (on a shared store another daemon's run is live);
the `cluster` health check judges the heartbeats. On SQLite the one daemon is the one member.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .db import to_db
from .rows import MemberRow, at_db
from .sql import Backend, Conn


@dataclass(frozen=True)
class Member:
    id: str
    host: str
    pid: int
    version: str
    started_at: datetime


class ClusterStore:
    def __init__(self, db: Backend) -> None:
        self.db = db

    async def register(self, member: Member, now: datetime) -> None:
        def fn(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO cluster_members (id, host, pid, version, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (member.id, member.host, member.pid, member.version, to_db(member.started_at), to_db(now)),
            )

        await self.db.write(fn)

    async def heartbeat(self, member_id: str, now: datetime, roles: list[str], forget_before: datetime) -> None:
        """Mark *member_id* alive with its roles and the leases it holds at *now* (expired ones, which
        still name it until claimed, are not held); forget members silent since *forget_before* whose
        leases have all expired (until then status still shows what they hold)."""

        def fn(conn: Conn) -> None:
            conn.execute(
                "UPDATE cluster_members SET heartbeat_at = ?, roles = ?, leases = (SELECT count(*)"
                " FROM shipments WHERE lease_owner = ? AND lease_until > ?) WHERE id = ?",
                (to_db(now), ",".join(sorted(roles)), member_id, to_db(now), member_id),
            )
            conn.execute(
                "DELETE FROM cluster_members WHERE heartbeat_at < ? AND id != ? AND NOT EXISTS (SELECT 1"
                " FROM shipments s WHERE s.lease_owner = cluster_members.id AND s.lease_until > ?)",
                (to_db(forget_before), member_id, to_db(now)),
            )

        await self.db.write(fn)

    async def leave(self, member_id: str) -> None:
        """A clean stop: the member is gone at once (a killed one ages out)."""

        def fn(conn: Conn) -> None:
            conn.execute("DELETE FROM cluster_members WHERE id = ?", (member_id,))

        await self.db.write(fn)

    async def advisory_locks(self, namespace: int) -> set[int] | None:
        """The second keys of the two-key advisory locks held in *namespace* on this database, by any
        session (the leaders' locks, cluster/leader.py); None on SQLite, which has no such locks."""
        if self.db.backend != "postgresql":
            return None
        rows = await self.db.fetchall(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
            " AND classid::bigint = ? AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (namespace,),
        )
        return {int(r[0]) for r in rows}

    async def members(self) -> list[MemberRow]:
        rows = await self.db.fetchall(
            "SELECT id, host, pid, version, started_at, heartbeat_at, roles, leases FROM cluster_members"
            " ORDER BY started_at, id"
        )
        return [
            MemberRow(
                id=r[0],
                host=r[1],
                pid=r[2],
                version=r[3],
                started_at=at_db(r[4]),
                heartbeat_at=at_db(r[5]),
                roles=[x for x in r[6].split(",") if x],
                leases=r[7],
            )
            for r in rows
        ]


__all__ = ["ClusterStore", "Member"]
