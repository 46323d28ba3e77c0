"""
A deterministic stand-in for ApiClient, for snapshot tests: fixed data, a fixed
clock, and an event stream that stays quiet. It implements the same methods the
console calls, so the screens cannot tell it from a daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from shiptrackd.api.client import ApiError

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
CARRIERS = ("ups", "fedex", "usps", "dhl_express")
STATUSES = ("IT", "DE", "NY", "AC", "EX", "AT", "SP", "DE", "IT", "DE")
DESCRIPTIONS = {
    "IT": "In Transit",
    "DE": "Delivered",
    "NY": "Not Yet In System",
    "AC": "Accepted",
    "EX": "Exception",
    "AT": "Delivery Attempt",
    "SP": "Delivered To Service Point",
}


def iso(at: datetime) -> str:
    return at.isoformat()


def fake_shipment(i: int) -> dict[str, Any]:
    """Shipment number *i*, the same every time."""
    status = STATUSES[i % len(STATUSES)]
    carrier = CARRIERS[i % len(CARRIERS)]
    created = NOW - timedelta(days=3, seconds=i)
    active = status != "DE" or i % 3 == 0
    return {
        "id": f"ship_{i:011x}{(i * 2654435761) % 2**32:08x}",
        "carrier_code": carrier,
        "tracking_number": f"1Z{i:016d}" if carrier == "ups" else f"94{i:018d}",
        "reference": f"ORDER-{10000 + i}",
        "status_code": status,
        "status_detail_code": "",
        "status_description": DESCRIPTIONS[status],
        "exception_description": "Address unknown" if status == "EX" else "",
        "estimated_delivery_at": iso(NOW + timedelta(days=1)) if status in ("IT", "AC") else None,
        "actual_delivery_at": iso(NOW - timedelta(hours=5)) if status == "DE" else None,
        "last_synced_at": iso(NOW - timedelta(minutes=(i % 50) + 1)),
        "status_changed_at": iso(NOW - timedelta(hours=6)),
        "next_sync_at": iso(NOW + timedelta(minutes=(i % 120) + 1)) if active else None,
        "schedule_reason": "in transit: every 2h",
        "consecutive_failures": 2 if status == "EX" else 0,
        "last_error": "carrier timeout" if status == "EX" else "",
        "last_error_kind": "transient" if status == "EX" else "",
        "active": active,
        "created_at": iso(created),
        "updated_at": iso(created),
    }


def index_of(shipment_id: str) -> int:
    return int(shipment_id[5:16], 16)


LOOPS = [
    {
        "name": "sync",
        "schedule": "every 5m",
        "paused": False,
        "running": True,
        "last_run_at": iso(NOW - timedelta(minutes=5)),
        "last_outcome": "run 41 ok: 12 updated, 0 failed of 12",
        "last_error": "",
        "next_run_at": None,
        "failures_in_a_row": 0,
        "failures_total": 0,
        "runs": 41,
    },
    {
        "name": "force",
        "schedule": "0 2 * * *",
        "paused": False,
        "running": False,
        "last_run_at": iso(NOW - timedelta(hours=10)),
        "last_outcome": "run 30 ok: 81,020 updated, 3 failed of 81,234",
        "last_error": "",
        "next_run_at": iso(NOW + timedelta(hours=14)),
        "failures_in_a_row": 0,
        "failures_total": 0,
        "runs": 12,
    },
    {
        "name": "health",
        "schedule": "every 1m",
        "paused": False,
        "running": False,
        "last_run_at": iso(NOW - timedelta(seconds=20)),
        "last_outcome": "warning",
        "last_error": "",
        "next_run_at": iso(NOW + timedelta(seconds=40)),
        "failures_in_a_row": 0,
        "failures_total": 0,
        "runs": 900,
    },
    {
        "name": "alerts",
        "schedule": "every 1m",
        "paused": True,
        "running": False,
        "last_run_at": iso(NOW - timedelta(minutes=30)),
        "last_outcome": "1 sent",
        "last_error": "",
        "next_run_at": None,
        "failures_in_a_row": 0,
        "failures_total": 0,
        "runs": 870,
    },
]

RUNS = [
    {
        "id": 41 - k,
        "trigger": ("schedule", "manual", "schedule", "force", "schedule", "targeted")[k],
        "started_at": iso(NOW - timedelta(minutes=5 * (k + 1))),
        "finished_at": iso(NOW - timedelta(minutes=5 * (k + 1)) + timedelta(seconds=3 + 7 * k)),
        "selected": (12, 40, 7, 81234, 3, 2)[k],
        "updated": (12, 31, 7, 81020, 3, 1)[k],
        "unchanged": (0, 7, 0, 211, 0, 0)[k],
        "failed": (0, 2, 0, 3, 0, 1)[k],
        "skipped": 0,
        "api_calls": (12, 44, 7, 81300, 3, 2)[k],
        "retries": (0, 4, 0, 66, 0, 0)[k],
        "rate_limited": (0, 0, 0, 12, 0, 0)[k],
        "outcome": ("ok", "partial", "ok", "partial", "ok", "partial")[k],
        "stop_reason": "",
    }
    for k in range(6)
]

HEALTH = {
    "level": "warning",
    "checked_at": iso(NOW - timedelta(seconds=20)),
    "checks": [
        {"name": "api", "level": "ok", "message": "reachable, 84 ms", "value": 0.084},
        {"name": "recent_sync", "level": "ok", "message": "last good run 5m ago", "value": 300},
        {"name": "stale_shipments", "level": "warning", "message": "312 active not updated in 24h", "value": 312},
        {"name": "error_rate", "level": "ok", "message": "0.4% failed in the last hour", "value": 0.004},
        {"name": "loops", "level": "critical", "message": "loop alerts paused for 30m", "value": 1},
    ],
}

ALERTS = [
    {
        "id": 7,
        "check": "stale_shipments",
        "level": "warning",
        "kind": "firing",
        "delivery": "sent",
        "sent_at": iso(NOW - timedelta(minutes=18)),
    },
    {
        "id": 6,
        "check": "api",
        "level": "critical",
        "kind": "resolved",
        "delivery": "failed",
        "sent_at": iso(NOW - timedelta(hours=2)),
    },
    {
        "id": 5,
        "check": "api",
        "level": "critical",
        "kind": "firing",
        "delivery": "sent 2/2",
        "sent_at": iso(NOW - timedelta(hours=3)),
    },
]


EVENTS = [
    {
        "seq": 101,
        "type": "shipment.status_changed",
        "at": iso(NOW - timedelta(seconds=9)),
        "id": "ship_00000000001" + "9e3779b1",
        "old": "AC",
        "new": "IT",
        "run_id": 42,
    },
    {
        "seq": 102,
        "type": "shipment.status_changed",
        "at": iso(NOW - timedelta(seconds=6)),
        "id": "ship_0000000000b" + "1a4f8c3d",
        "old": "IT",
        "new": "DE",
        "run_id": 42,
    },
    {"seq": 103, "type": "heartbeat"},
    {
        "seq": 104,
        "type": "something.new",
        "at": iso(NOW - timedelta(seconds=3)),
        "detail": "an event type this console does not know",
    },
]


class FakeClient:
    """Same methods as ApiClient; fixed answers; records what it was asked to do."""

    def __init__(self, total: int = 100_000, *, health: bool = True) -> None:
        self.total = total
        self.with_health = health
        self.calls: list[tuple[str, Any]] = []
        self.socket_path = "/run/shiptrackd/control.sock"

    async def aclose(self) -> None:
        pass

    async def status(self) -> dict[str, Any]:
        return {
            "version": "0.1.0",
            "pid": 4242,
            "state": "running",
            "uptime_s": 8130.0,
            "config_file": "/etc/shiptrackd/shiptrackd.toml",
            "provider": {"name": "shipengine", "base_url": "https://api.shipengine.com"},
            "loops": LOOPS,
            "sync": {
                "run_id": 42,
                "trigger": "manual",
                "started_at": iso(NOW - timedelta(seconds=20)),
                "done": 340,
                "selected": 1000,
                "updated": 120,
                "unchanged": 200,
                "failed": 20,
                "skipped": 0,
                "api_calls": 361,
                "retries": 4,
                "rate_limited": 1,
                "unknown_ids": [],
                "stop_reason": "",
            },
            "store": {
                "path": "/var/lib/shiptrackd/shiptrackd.db",
                "shipments": self.total,
                "active": 81234,
                "due_now": 1500,
            },
            "rate_limit_paused_until": None,
            "notes": [],
        }

    async def loops(self) -> list[dict[str, Any]]:
        return LOOPS

    async def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return RUNS[:limit]

    async def stats(self) -> dict[str, Any]:
        return {
            "shipments": {
                "total": self.total,
                "active": 81234,
                "by_status": {"IT": 20000, "DE": 30000, "NY": 10000},
                "by_carrier": {c: self.total // 4 for c in CARRIERS},
                "due_now": 1500,
                "overdue": 12,
            },
            "runs_24h": {"runs": 290, "selected": 90000, "updated": 85000, "failed": 40, "api_calls": 91000},
            "errors_24h": {"transient": 30, "not_found": 10},
            "last_successful_run": RUNS[0],
            "api": {
                "requests": 48213,
                "retries": 311,
                "rate_limited": 12,
                "by_status": {"200": 47000, "404": 900, "429": 12, "503": 301},
                "by_error": {"transient": 301},
                "p50_s": 0.084,
                "p95_s": 0.412,
            },
            "forecast": {"calls_per_hour": 12500.0, "rate_limit_per_hour": 36000, "utilisation": 0.347},
        }

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((f"{method} {path}", kwargs))
        if self.with_health and path == "/v1/health":
            return HEALTH
        if self.with_health and path == "/v1/alerts":
            return {"alerts": ALERTS}
        raise ApiError(404, "not_found", f"no route {method} {path}")

    async def shipments(
        self,
        *,
        status: str | None = None,
        carrier: str | None = None,
        search: str | None = None,
        active: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        self.calls.append(("shipments", {"cursor": cursor, "limit": limit}))
        start = index_of(cursor) + 1 if cursor else 0
        out: list[dict[str, Any]] = []
        i = start
        while i < self.total and len(out) <= limit:
            s = fake_shipment(i)
            i += 1
            if status and s["status_code"] != status:
                continue
            if carrier and s["carrier_code"] != carrier:
                continue
            if search and not (
                s["id"] == search or s["tracking_number"].startswith(search) or s["reference"].startswith(search)
            ):
                continue
            out.append(s)
        page = out[:limit]
        return {"shipments": page, "next_cursor": page[-1]["id"] if len(out) > limit else None}

    async def shipment(self, shipment_id: str) -> dict[str, Any]:
        s = fake_shipment(index_of(shipment_id))
        s["events"] = [
            {
                "occurred_at": iso(NOW - timedelta(hours=h)),
                "status_code": code,
                "description": text,
                "event_code": "",
                "location": place,
            }
            for h, code, text, place in [
                (6, "IT", "Departed facility", "Louisville, KY, US"),
                (18, "IT", "Arrived at facility", "Louisville, KY, US"),
                (30, "IT", "Origin scan", "Atlanta, GA, US"),
                (40, "AC", "Shipment picked up [driver 12]", "Atlanta, GA, US"),
                (50, "NY", "Label created", ""),
            ]
        ]
        return s

    async def why(self, shipment_id: str) -> dict[str, Any]:
        s = fake_shipment(index_of(shipment_id))
        return {
            "id": shipment_id,
            "state": "scheduled",
            "next_sync_at": s["next_sync_at"],
            "reason": "in transit: every 2h",
            "explanation": [f"next check at {s['next_sync_at']} (in transit: every 2h)"],
        }

    async def sync(self, *, force: bool = False, dry_run: bool = False, shipments: list[str] | None = None) -> Any:
        self.calls.append(("sync", {"force": force, "dry_run": dry_run, "shipments": shipments}))
        if dry_run:
            return {"dry_run": True, "trigger": "manual", "would_sync": 12, "shipments": [], "unknown_ids": []}
        return {"run_id": 43, "joined": False, "trigger": "force" if force else "manual"}

    async def loop_action(self, name: str, action: str) -> dict[str, Any]:
        self.calls.append(("loop_action", (name, action)))
        loop = next((dict(lp) for lp in LOOPS if lp["name"] == name), None)
        if loop is None:
            raise ApiError(404, "not_found", f"no loop named {name!r}")
        loop["paused"] = action == "pause"
        return loop

    async def add_shipments(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(("add_shipments", records))
        return {"added": [{"index": 0, "id": "ship_new", **records[0]}], "duplicates": [], "invalid": []}

    async def events(self, since: int | None = None, heartbeat_s: float | None = None) -> AsyncIterator[dict[str, Any]]:
        for event in EVENTS:
            yield event
        await asyncio.Event().wait()  # then a quiet daemon: nothing more, ever


def fixed_clock() -> datetime:
    return NOW


def make_fake_app(client: FakeClient | None = None, **kwargs: Any) -> Any:
    """A console on the fake client with a fixed clock, quiet enough for pixel-stable snapshots."""
    from tui.app import ShiptrackApp

    fake = client or FakeClient()
    options: dict[str, Any] = {"clock": fixed_clock, "heartbeat_s": 3600.0, "refresh_s": 3600.0}
    options.update(kwargs)
    return ShiptrackApp(lambda: fake, socket_label=fake.socket_path, **options)
