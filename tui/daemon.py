"""
The console's reads of the daemon through shiptrackd.api.client.ApiClient (each call
returns its route's wire type), the event stream decoded leniently, and the one-line
summaries of action answers. Console and daemon ship in one wheel, so every route is
there; a panel whose call fails just keeps saying what it last knew.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

import msgspec

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.wire import events as ev
from shiptrackd.wire.alerting import TestSent

from .events import ConsoleEvent, RawEvent
from .format import parse_at
from .state import Snapshot

RECENT_RUNS = 10
RECENT_ALERTS = 20

T = TypeVar("T")


async def load_snapshot(client: ApiClient) -> Snapshot:
    """Status, recent runs, stats, the last health report, the alert log, push health and the endpoints, in one go."""
    # Two gathers in one: asyncio.gather is typed for at most six awaitables.
    (status, runs, stats, report, alerts), (webhooks, endpoints) = await asyncio.gather(
        asyncio.gather(
            client.status(),
            client.runs(RECENT_RUNS),
            client.stats(),
            _quiet(client.health()),
            _quiet(client.alerts(RECENT_ALERTS)),
        ),
        asyncio.gather(_quiet(client.webhooks()), _quiet(client.endpoints())),
    )
    return Snapshot(
        status,
        runs.runs,
        stats,
        report,
        None if alerts is None else alerts.notifications,
        webhooks,
        None if endpoints is None else endpoints.endpoints,
    )


async def _quiet(aw: Awaitable[T]) -> T | None:
    """An optional panel's data: its failure (a health check erroring) must not stop the rest of the snapshot."""
    try:
        return await aw
    except ApiError:
        return None


async def events(client: ApiClient, since: int | None, heartbeat_s: float) -> AsyncGenerator[ConsoleEvent, None]:
    """The daemon's events from *since* on; a line this console cannot decode comes as a RawEvent, not an error."""
    stream = client.raw_events(since=since, heartbeat_s=heartbeat_s)
    try:
        async for line in stream:
            yield decode_event(line)
    finally:
        await stream.aclose()


def decode_event(line: str | bytes) -> ConsoleEvent:
    """One line of /v1/events as its wire type, or a RawEvent (a newer daemon's type, a malformed line)."""
    try:
        decoded: ev.AnyEvent = msgspec.json.decode(line, type=ev.AnyEvent)
        return decoded
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        raw: Any = json.loads(line)
    except ValueError:
        raw = {"line": line[:200]}
    data = raw if isinstance(raw, dict) else {"value": raw}
    seq = data.get("seq")
    rest = {k: v for k, v in data.items() if k not in ("seq", "type", "at")}
    kind, at = str(data.get("type", "?")), parse_at(data.get("at"))
    return RawEvent(type=kind, seq=seq if isinstance(seq, int) else None, at=at, data=rest)


def alert_test_summary(result: TestSent) -> str:
    """One line from POST /v1/alerts/test's answer: how many channels got the notice."""
    deliveries = result.deliveries
    if not deliveries:
        return "no alert channels are configured: nothing was sent"
    ok = sum(1 for d in deliveries if d.status == "sent")
    failed = [d.channel for d in deliveries if d.status == "failed"]
    text = f"test alert delivered to {ok}/{len(deliveries)} channel(s)"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")
