"""
The console's calls to the daemon, all through shiptrackd.api.client.ApiClient, with
each answer decoded once into its wire type (shiptrackd.wire), and the one-line
summaries of action answers. Console and daemon ship in one wheel, so every route is
there; a panel whose call fails just keeps saying what it last knew.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from shiptrackd.api.client import ApiError
from shiptrackd.api.plain import PlainClient as ApiClient
from shiptrackd.wire import events as ev
from shiptrackd.wire.alerting import Alerts, Notification, TestSent
from shiptrackd.wire.answers import (
    HealthReport,
    LoopInfo,
    RunList,
    ShipmentDetail,
    ShipmentPage,
    ShipmentsAdded,
    Stats,
    Status,
    SyncPlan,
    SyncStarted,
    Why,
    to_answer,
)

from .events import ConsoleEvent, RawEvent
from .format import parse_at
from .state import Snapshot

RECENT_RUNS = 10
RECENT_ALERTS = 20

T = TypeVar("T")


async def load_snapshot(client: ApiClient) -> Snapshot:
    """Status, recent runs, stats, the last health report and the alert log, in one go."""
    status, runs, stats, report, alerts = await asyncio.gather(
        client.status(),
        client.runs(RECENT_RUNS),
        client.stats(),
        _quiet(client.health()),
        _quiet(client.alerts(RECENT_ALERTS)),
    )
    return Snapshot(
        status=to_answer(status, Status),
        runs=to_answer(runs, RunList).runs,
        stats=to_answer(stats, Stats),
        health=None if report is None else to_answer(report, HealthReport),
        alerts=None if alerts is None else notifications(alerts),
    )


async def _quiet(aw: Awaitable[T]) -> T | None:
    """An optional panel's data: its failure (a health check erroring) must not stop the rest of the snapshot."""
    try:
        return await aw
    except ApiError:
        return None


def notifications(answer: dict[str, Any]) -> list[Notification]:
    return to_answer(answer, Alerts).notifications


async def alerts(client: ApiClient) -> list[Notification]:
    return notifications(await client.alerts(RECENT_ALERTS))


async def health_now(client: ApiClient) -> HealthReport:
    return to_answer(await client.health(fresh=True), HealthReport)


async def send_test_alert(client: ApiClient) -> TestSent:
    return to_answer(await client.alert_test(), TestSent)


async def plan_sync(client: ApiClient, force: bool, ids: list[str] | None) -> SyncPlan:
    return to_answer(await client.sync(force=force, dry_run=True, shipments=ids), SyncPlan)


async def start_sync(client: ApiClient, force: bool, ids: list[str] | None) -> SyncStarted:
    return to_answer(await client.sync(force=force, shipments=ids), SyncStarted)


async def loop_action(client: ApiClient, name: str, action: str) -> LoopInfo:
    return to_answer(await client.loop_action(name, action), LoopInfo)


async def add_shipment(client: ApiClient, record: dict[str, str]) -> ShipmentsAdded:
    return to_answer(await client.add_shipments([record]), ShipmentsAdded)


async def shipments(client: ApiClient, **query: Any) -> ShipmentPage:
    return to_answer(await client.shipments(**query), ShipmentPage)


async def shipment(client: ApiClient, shipment_id: str) -> tuple[ShipmentDetail, Why]:
    detail, why = await asyncio.gather(client.shipment(shipment_id), client.why(shipment_id))
    return to_answer(detail, ShipmentDetail), to_answer(why, Why)


async def events(client: ApiClient, since: int | None, heartbeat_s: float) -> AsyncGenerator[ConsoleEvent, None]:
    """The daemon's events from *since* on, each decoded; one this console cannot read comes as a RawEvent."""
    stream = client.events(since=since, heartbeat_s=heartbeat_s)
    try:
        async for raw in stream:
            yield decode_event(raw)
    finally:
        await stream.aclose()


def decode_event(raw: Any) -> ConsoleEvent:
    try:
        decoded: ev.AnyEvent = msgspec.convert(raw, ev.AnyEvent)
        return decoded
    except msgspec.ValidationError:
        data = raw if isinstance(raw, dict) else {"value": raw}
        seq = data.get("seq")
        at: datetime | None = parse_at(data.get("at"))
        rest = {k: v for k, v in data.items() if k not in ("seq", "type", "at")}
        return RawEvent(type=str(data.get("type", "?")), seq=seq if isinstance(seq, int) else None, at=at, data=rest)


def alert_test_summary(result: TestSent) -> str:
    """One line from POST /v1/alerts/test's answer: how many channels got the notice."""
    deliveries = result.deliveries
    if not deliveries:
        return "no alert channels are configured: nothing was sent"
    ok = sum(1 for d in deliveries if d.status == "sent")
    failed = [d.channel for d in deliveries if d.status == "failed"]
    text = f"test alert delivered to {ok}/{len(deliveries)} channel(s)"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")
