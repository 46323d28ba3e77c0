"""
A deterministic ApiClient for the console's tests: fixed data, a fixed clock, and an
event stream that stays quiet. Its answers have a real daemon's shapes (same keys, same
kinds of values; test_tui_contract proves it route by route), so the screens cannot
tell it from a daemon and the snapshots show what a real daemon would make them show.
Every override has ApiClient's signature and returns the same wire type (mypy checks both).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta
from typing import Any

import msgspec
from tui_fake_data import (
    ALERTS,
    CARRIERS,
    CHANNELS,
    DELIVERIES,
    ENDPOINTS,
    EVENTS,
    HEALTH,
    LOOPS,
    NOTIFICATIONS,
    NOW,
    RUNS,
    SOCKET,
    WEBHOOKS,
    fake_shipment,
    index_of,
)

from shiptrackd.api.client import ApiClient, ApiError
from shiptrackd.wire.alerting import Alerts, Delivery, TestSent
from shiptrackd.wire.answers import (
    AccountFigures,
    AddedShipment,
    ClusterInfo,
    ClusterMember,
    HealthReport,
    LoopInfo,
    LoopList,
    PlannedShipment,
    ProviderInfo,
    RunList,
    Shipment,
    ShipmentDetail,
    ShipmentPage,
    ShipmentsAdded,
    Status,
    StoreInfo,
    SyncPlan,
    SyncProgress,
    SyncStarted,
    TrackingEvent,
    Why,
    WhyPush,
)
from shiptrackd.wire.outbound import Deliveries, Endpoints
from shiptrackd.wire.push import WebhooksStatus
from shiptrackd.wire.stats import ApiFigures, Forecast, ProviderFigures, PushStats, RunTotals, ShipmentFigures, Stats
from tui.app import ShiptrackApp


class FakeClient(ApiClient):
    """An ApiClient that never touches its socket: every call the console makes answers from the data above.

    A call this class does not override goes to `request`, which refuses it, so a console that starts
    using a new route fails here until the fake (and test_tui_contract) learn it.
    """

    def __init__(self, total: int = 100_000) -> None:
        super().__init__(SOCKET)
        self.total = total
        self.calls: list[tuple[str, Any]] = []

    async def request(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        self.calls.append((f"{method} {path}", params or {}))
        raise ApiError(404, "not_found", f"the fake has no route {method} {path}")

    async def status(self) -> Status:
        return Status(
            version="0.1.0",
            pid=4242,
            state="running",
            uptime_s=8130.0,
            config_file="/etc/shiptrackd/shiptrackd.toml",
            provider=ProviderInfo(name="shipengine", base_url="https://api.shipengine.com"),
            loops=LOOPS,
            sync=SyncProgress(
                run_id=42,
                trigger="manual",
                started_at=NOW - timedelta(seconds=20),
                planned=1000,
                done=340,
                selected=1000,
                updated=120,
                unchanged=200,
                failed=20,
                skipped=0,
                api_calls=361,
                retries=4,
                rate_limited=1,
                unknown_ids=[],
                stop_reason="",
            ),
            store=StoreInfo(
                backend="sqlite",
                path="/var/lib/shiptrackd/shiptrackd.db",
                size_bytes=512_000_000,
                shipments=self.total,
                active=81234,
                due_now=1500,
                tables=None,
            ),
            rate_limit_paused_until=None,
            heartbeat=None,
            event_seq=100,
            cluster=ClusterInfo(
                member="vm1:4242:a1b2c3",
                leads=["alerts", "force", "health", "retention"],
                members=[
                    ClusterMember(
                        id="vm1:4242:a1b2c3",
                        host="vm1",
                        pid=4242,
                        version="0.1.0",
                        started_at=NOW - timedelta(days=2),
                        heartbeat_at=NOW,
                        heartbeat_age_s=1.2,
                        roles=["alerts", "force", "health", "retention"],
                        leases=0,
                        this=True,
                    )
                ],
                stale=0,
            ),
            providers=[
                AccountFigures(
                    name="shipengine",
                    kind="shipengine",
                    requests=48213,
                    rate_limited=12,
                    errors=301,
                    retries=311,
                    circuit="closed",
                    unreachable_in_a_row=0,
                    paused_until=None,
                    rate_per_s=None,
                )
            ],
        )

    async def loops(self) -> LoopList:
        return LoopList(loops=LOOPS)

    async def runs(self, limit: int = 20) -> RunList:
        return RunList(runs=RUNS[:limit])

    async def stats(self) -> Stats:
        return Stats(
            shipments=ShipmentFigures(
                total=self.total,
                active=81234,
                by_status={"IT": 20000, "DE": 30000, "NY": 10000},
                by_carrier={c: self.total // 4 for c in CARRIERS},
                due_now=1500,
                overdue=12,
            ),
            runs_24h=RunTotals(
                runs=290,
                selected=90000,
                updated=85000,
                unchanged=4960,
                failed=40,
                api_calls=91000,
                retries=311,
                rate_limited=12,
            ),
            errors_24h={"transient": 30, "not_found": 10},
            last_successful_run=RUNS[0],
            api=ApiFigures(
                requests=48213,
                retries=311,
                rate_limited=12,
                by_status={"200": 47000, "404": 900, "429": 12, "503": 301},
                by_error={"transient": 301},
                strays=0,
                omitted=0,
                p50_s=0.084,
                p95_s=0.412,
            ),
            forecast=Forecast(calls_per_hour=12500.0, rate_limit_per_hour=36000, utilisation=0.347),
            providers=[
                ProviderFigures(
                    name="shipengine",
                    kind="shipengine",
                    batch_size=1,
                    strays=0,
                    omitted=0,
                    unknown_statuses={},
                    quota_exhausted=None,
                    quota=None,
                    requests=48213,
                    rate_limited=12,
                    errors=301,
                    by_error={"transient": 301},
                    retries=311,
                )
            ],
            push=PushStats(
                subscribed=81234,
                pushes={"accepted": 30890, "bad_signature": 2, "duplicate": 310},
                changes_by_push=30211,
                calls_per_hour_polling=12500.0,
                calls_per_hour_with_push=3400.0,
                calls_per_hour_saved=9100.0,
            ),
        )

    async def health(
        self,
        *,
        fresh: bool = False,
        alert_threshold: int | None = None,
        check_stale: bool = False,
        stale_limit: int | None = None,
    ) -> HealthReport:
        self.calls.append(("health", {"fresh": fresh}))
        return msgspec.structs.replace(HEALTH, trigger="request") if fresh else HEALTH

    async def alerts(self, limit: int = 20) -> Alerts:
        self.calls.append(("alerts", {"limit": limit}))
        return msgspec.structs.replace(ALERTS, notifications=NOTIFICATIONS[:limit])

    async def alert_test(self, wait_s: int | None = None) -> TestSent:
        self.calls.append(("alert_test", {"wait_s": wait_s}))
        deliveries = [
            Delivery(id=20 + k, channel=c, status="sent", attempts=1, error="", claimed_at=NOW, finished_at=NOW)
            for k, c in enumerate(CHANNELS)
        ]
        return TestSent(notification_id=8, deliveries=deliveries, delivered=True)

    async def shipments(
        self,
        *,
        status: str | None = None,
        carrier: str | None = None,
        search: str | None = None,
        active: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> ShipmentPage:
        self.calls.append(("shipments", {"cursor": cursor, "limit": limit}))
        start = index_of(cursor) + 1 if cursor else 0
        out: list[Shipment] = []
        i = start
        while i < self.total and len(out) <= limit:
            s = fake_shipment(i)
            i += 1
            if status and s.status_code != status:
                continue
            if carrier and s.carrier_code != carrier:
                continue
            if search and not (
                s.id == search or s.tracking_number.startswith(search) or s.reference.startswith(search)
            ):
                continue
            out.append(s)
        page = out[:limit]
        return ShipmentPage(shipments=page, next_cursor=page[-1].id if len(out) > limit else None)

    async def shipment(self, shipment_id: str) -> ShipmentDetail:
        events = [
            TrackingEvent(
                occurred_at=NOW - timedelta(hours=h), status_code=code, description=text, event_code="", location=place
            )
            for h, code, text, place in [
                (6, "IT", "Departed facility", "Louisville, KY, US"),
                (18, "IT", "Arrived at facility", "Louisville, KY, US"),
                (30, "IT", "Origin scan", "Atlanta, GA, US"),
                (40, "AC", "Shipment picked up [driver 12]", "Atlanta, GA, US"),
                (50, "NY", "Label created", ""),
            ]
        ]
        return ShipmentDetail(**msgspec.structs.asdict(fake_shipment(index_of(shipment_id))), events=events)

    async def why(self, shipment_id: str) -> Why:
        s = fake_shipment(index_of(shipment_id))
        at = "—" if s.next_sync_at is None else s.next_sync_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return Why(
            id=shipment_id,
            state="scheduled",
            next_sync_at=s.next_sync_at,
            reason="in transit: every 2h",
            explanation=[
                f"next check at {at} (in transit: every 2h)",
                "regime: push: pushes carry the news, polled only as a safety net",
                *([f"subscribed to pushes since {s.subscribed_at.isoformat()}"] if s.subscribed_at else []),
                *([f"{s.push_count} push(es) received, the last at {s.last_push_at}"] if s.push_count else []),
                "carrier: given when added",
            ],
            push=WhyPush(
                regime="push: pushes carry the news, polled only as a safety net",
                subscribed_at=s.subscribed_at,
                last_push_at=s.last_push_at,
                push_count=s.push_count,
            ),
        )

    async def webhooks(self) -> WebhooksStatus:
        self.calls.append(("webhooks", {}))
        return WEBHOOKS

    async def endpoints(self) -> Endpoints:
        self.calls.append(("endpoints", {}))
        return Endpoints(endpoints=ENDPOINTS)

    async def deliveries(
        self, *, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> Deliveries:
        self.calls.append(("deliveries", {"endpoint": endpoint, "state": state, "limit": limit}))
        rows = [d for d in DELIVERIES if endpoint in (None, d.endpoint) and state in (None, d.state)]
        return Deliveries(deliveries=rows[:limit])

    async def sync_plan(self, *, force: bool = False, shipments: list[str] | None = None) -> SyncPlan:
        self.calls.append(("sync", {"force": force, "dry_run": True, "shipments": shipments}))
        s = fake_shipment(0)
        planned = PlannedShipment(
            id=s.id,
            carrier_code=s.carrier_code,
            tracking_number=s.tracking_number,
            status_code=s.status_code,
            next_sync_at=s.next_sync_at,
            why="due now (in transit: every 2h)",
        )
        return SyncPlan(dry_run=True, trigger="manual", would_sync=12, shipments=[planned], unknown_ids=[])

    async def sync(self, *, force: bool = False, shipments: list[str] | None = None) -> SyncStarted:
        self.calls.append(("sync", {"force": force, "dry_run": False, "shipments": shipments}))
        return SyncStarted(run_id=43, joined=False, trigger="force" if force else "manual")

    async def loop_action(self, name: str, action: str) -> LoopInfo:
        self.calls.append(("loop_action", (name, action)))
        loop = next((lp for lp in LOOPS if lp.name == name), None)
        if loop is None:
            raise ApiError(404, "not_found", f"no loop named {name!r}")
        return msgspec.structs.replace(loop, paused=action == "pause")

    async def add_shipments(self, records: list[dict[str, Any]]) -> ShipmentsAdded:
        self.calls.append(("add_shipments", records))
        added = AddedShipment(index=0, id="ship_new", reference="", **records[0])
        return ShipmentsAdded(added=[added], duplicates=[], invalid=[])

    async def raw_events(self, since: int | None = None, heartbeat_s: float | None = None) -> AsyncGenerator[str, None]:
        for event in EVENTS:
            yield json.dumps(event)
        await asyncio.Event().wait()  # then a quiet daemon: nothing more, ever


def member(n: int, *, roles: list[str], leases: int, age_s: float, this: bool = False) -> ClusterMember:
    return ClusterMember(
        id=f"vm{n}:{4000 + n}:abc{n}",
        host=f"vm{n}",
        pid=4000 + n,
        version="0.1.0",
        started_at=NOW - timedelta(hours=n),
        heartbeat_at=NOW - timedelta(seconds=age_s),
        heartbeat_age_s=age_s,
        roles=roles,
        leases=leases,
        this=this,
    )


class Clustered(FakeClient):
    """Three live daemons on one PostgreSQL store (this one leads the schedules) and a fourth that stopped beating."""

    async def status(self) -> Status:
        status = await super().status()
        members = [
            member(1, roles=["alerts", "force", "health"], leases=50, age_s=1.0, this=True),
            member(2, roles=[], leases=48, age_s=3.0),
            member(3, roles=[], leases=0, age_s=12.0),
        ]
        store = msgspec.structs.replace(status.store, backend="postgresql", path="postgresql://db/shiptrackd")
        cluster = ClusterInfo(member=members[0].id, leads=members[0].roles, members=members, stale=1)
        return msgspec.structs.replace(status, store=store, cluster=cluster)


def fixed_clock() -> datetime:
    return NOW


def make_fake_app(client: FakeClient | None = None, **kwargs: Any) -> ShiptrackApp:
    """A console on the fake client with a fixed clock, quiet enough for pixel-stable snapshots."""
    fake = client or FakeClient()
    options: dict[str, Any] = {"clock": fixed_clock, "heartbeat_s": 3600.0, "refresh_s": 3600.0}
    options.update(kwargs)
    return ShiptrackApp(lambda: fake, socket_label=SOCKET, **options)
