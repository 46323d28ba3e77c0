"""
How a daemon joins the cluster's shared parts: the rate budget and the leader election exist only
on a PostgreSQL store; on SQLite (one daemon) the throttle paces alone and the daemon leads all.
"""

from __future__ import annotations

from ..config import ProviderConfig
from ..events import EventBus
from ..store import Store
from .budget import SharedBudget
from .events import ClusterEvents
from .leader import Leadership

# The schedule-like loops that must run once in the cluster (the sync loop is shared by leases).
SINGLETONS = ("force", "health", "alerts", "retention", "heartbeat")
STANDBY = "standby: another daemon of the cluster leads this loop"


def shared_budget(store: Store, provider: ProviderConfig) -> SharedBudget | None:
    connect = getattr(store.db, "connect_async", None)
    return SharedBudget(connect, provider) if connect is not None else None


def cluster_events(store: Store, bus: EventBus, member_id: str) -> ClusterEvents | None:
    """The others' status changes on this node's event stream (LISTEN/NOTIFY); None on SQLite."""
    connect = getattr(store.db, "connect_async", None)
    return ClusterEvents(bus, member_id, connect) if connect is not None else None


def elect(store: Store, names: list[str]) -> Leadership:
    return Leadership(names, getattr(store.db, "connect_async", None))


__all__ = ["SINGLETONS", "STANDBY", "cluster_events", "elect", "shared_budget"]
