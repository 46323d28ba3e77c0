"""
The event stream of one node carries the cluster's status changes (issue 13 item 5): on a
PostgreSQL store each daemon forwards the shipment changes it publishes to the others with
NOTIFY, and publishes theirs on its own bus (so /v1/events, the console and `--wait` see them),
marked with `origin`, the member that wrote them.

Two connections of their own: one LISTENs, one NOTIFYs (a LISTENing connection blocked in
notifies() would queue the sends). Changes are packed into as few notifications as fit the
server's 8000-byte payload limit, so a sync changing thousands of shipments costs a few dozen
round trips, not thousands. Best effort, like the bus itself: a node that was disconnected
misses what was said meanwhile (the store has it; a client that must not miss a change reads it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskStatus
from loguru import logger

from ..events import EventBus
from ..wire.names import EVENT_SHIPMENT_STATUS_CHANGED, EVENT_SHIPMENTS_ADDED, EVENT_SHIPMENTS_REMOVED

CHANNEL = "shiptrackd_events"
CARRIED = frozenset({EVENT_SHIPMENT_STATUS_CHANGED, EVENT_SHIPMENTS_ADDED, EVENT_SHIPMENTS_REMOVED})
MAX_PAYLOAD = 7900  # bytes: NOTIFY refuses more than 8000
RETRY_S = 5.0
LINGER_S = 0.02  # after the first change, wait this long for more: a sync's burst goes in few notifications


def pack(origin: str, events: list[dict[str, Any]]) -> tuple[list[str], int]:
    """*events* as NOTIFY payloads of at most MAX_PAYLOAD bytes each; (payloads, events too big to send)."""
    payloads: list[str] = []
    batch: list[str] = []
    dropped = 0
    head = f'{{"origin": {json.dumps(origin)}, "events": '  # ASCII only (json escapes): chars are bytes

    def flush() -> None:
        if batch:
            payloads.append(f"{head}[{', '.join(batch)}]}}")
            batch.clear()

    for event in events:
        text = json.dumps(event, default=str)
        if len(head) + len(text) + 4 > MAX_PAYLOAD:
            dropped += 1
            continue
        if len(head) + sum(len(t) + 2 for t in batch) + len(text) + 4 > MAX_PAYLOAD:
            flush()
        batch.append(text)
    flush()
    return payloads, dropped


class ClusterEvents:
    """Forward this node's carried events to the cluster, and the others' onto this node's bus."""

    def __init__(self, bus: EventBus, member_id: str, connect: Callable[[], Awaitable[Any]]) -> None:
        self.bus = bus
        self.member_id = member_id
        self._connect = connect  # async () -> psycopg.AsyncConnection (autocommit)
        self._pending: list[dict[str, Any]] = []
        self._wake = anyio.Event()
        self.sent = 0  # notifications sent
        self.received = 0  # events of other members published here

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and forward until cancelled; a lost connection is retried every RETRY_S."""
        from psycopg import Error as PgError  # here: a SQLite daemon never loads psycopg

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._collect)
            started = False
            while True:
                conns: list[Any] = []
                try:
                    listener = await self._connect()
                    conns.append(listener)
                    sender = await self._connect()
                    conns.append(sender)
                    await listener.execute(f"LISTEN {CHANNEL}")
                    if not started:
                        task_status.started()
                        started = True
                    async with anyio.create_task_group() as inner:
                        inner.start_soon(self._send, sender)
                        await self._listen(listener)
                except* PgError as group:
                    logger.warning(
                        "cluster events: store unreachable, retrying in {}s: {}", RETRY_S, group.exceptions[0]
                    )
                finally:
                    with anyio.CancelScope(shield=True):  # closed even when cancelled (a stopping daemon)
                        for conn in conns:
                            await conn.close()
                if not started:
                    task_status.started()
                    started = True
                await anyio.sleep(RETRY_S)

    async def _collect(self) -> None:
        """This node's own carried events, queued for the sender (never its peers' echoed back)."""
        while True:
            behind = anyio.Event()
            async for event in self.bus.subscribe(on_drop=behind.set):
                if event["type"] in CARRIED and "origin" not in event:
                    self._pending.append({k: v for k, v in event.items() if k != "seq"})
                    self._wake.set()
            if not behind.is_set():
                return  # the bus closed: the daemon is stopping
            logger.warning("cluster events: fell behind the event bus; some changes were not forwarded")

    async def _send(self, conn: Any) -> None:
        while True:
            await self._wake.wait()
            await anyio.sleep(LINGER_S)
            self._wake = anyio.Event()
            events, self._pending = self._pending, []
            payloads, dropped = pack(self.member_id, events)
            if dropped:
                logger.debug("cluster events: {} event(s) too large for NOTIFY, not forwarded", dropped)
            for payload in payloads:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                self.sent += 1

    async def _listen(self, conn: Any) -> None:
        async for note in conn.notifies():
            try:
                doc = json.loads(note.payload)
                origin, events = str(doc["origin"]), list(doc["events"])
            except (ValueError, KeyError, TypeError):
                logger.warning("cluster events: a notification not of ours on {} ignored", CHANNEL)
                continue
            if origin == self.member_id:
                continue
            for event in events:
                kind, at = event.pop("type", None), event.pop("at", None)
                if kind not in CARRIED:
                    continue
                event.pop("origin", None)
                self.bus.publish(kind, datetime.fromisoformat(at) if at else None, **event, origin=origin)
                self.received += 1


__all__ = ["CARRIED", "CHANNEL", "ClusterEvents", "pack"]
