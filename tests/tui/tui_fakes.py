"""
A deterministic ApiClient for the console's tests: fixed data, a fixed clock, and an
event stream that stays quiet. Its answers have a real daemon's shapes (same keys, same
kinds of values; test_tui_contract proves it route by route), so the screens cannot
tell it from a daemon and the snapshots show what a real daemon would make them show.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

from shiptrackd.api.client import ApiClient, ApiError
from tui.app import ShiptrackApp

SOCKET = "/run/shiptrackd/control.sock"
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


def check(name: str, level: str, message: str, value: float | None, unit: str = "", **details: Any) -> dict[str, Any]:
    """One check of a health report, as the daemon's health rules build it."""
    return {
        "name": name,
        "level": level,
        "message": message,
        "value": value,
        "unit": unit,
        "warning": None,
        "critical": None,
        "lower_is_worse": False,
        "perf": [{"label": name, "value": value, "unit": unit, "warn": "", "crit": "", "min": 0, "max": None}],
        "details": details,
        "threshold": "",
        "value_text": "" if value is None else str(value),
    }


HEALTH: dict[str, Any] = {
    "id": 900,
    "at": iso(NOW - timedelta(seconds=20)),
    "age_s": 20.0,
    "level": "critical",
    "exit_code": 2,
    "summary": "loops: loop alerts paused for 30m",
    "host": "ops-1",
    "version": "0.1.0",
    "trigger": "schedule",
    "checks": [
        check("api_connectivity", "ok", "reachable, 84 ms", 0.084, "s"),
        check("recent_sync", "ok", "last good run 5m ago", 300, "s"),
        check("stale_shipments", "warning", "312 active not updated in 24h", 312, active=81234),
        check("error_rate", "ok", "0.4% failed in the last hour", 0.4, "%", failed=4, attempted=1000),
        check("loops", "critical", "loop alerts paused for 30m", 1, paused=["alerts"]),
        check("store", "ok", "writable (3ms), 41.2 GiB free (44%)", 44236888064, "B", quick_check="ok"),
    ],
}


def delivery(channel: str, status: str, minutes_ago: float, error: str = "") -> dict[str, Any]:
    return {
        "channel": channel,
        "status": status,
        "attempts": 1 if status == "sent" else 3,
        "error": error,
        "finished_at": iso(NOW - timedelta(minutes=minutes_ago)),
    }


def notification(
    n: int, kind: str, severity: str, checks: list[str], minutes_ago: float, deliveries: list[dict[str, Any]]
) -> dict[str, Any]:
    """One entry of the alert log (GET /v1/alerts' `notifications`): the checks are objects, not names."""
    names = ", ".join(checks) or "test notification"
    return {
        "id": n,
        "created_at": iso(NOW - timedelta(minutes=minutes_ago)),
        "kind": kind,
        "severity": severity,
        "checks": [{"check": c, "kind": kind, "level": severity} for c in checks],
        "title": f"[{'TEST' if kind == 'test' else severity.upper()}] shiptrackd on ops-1: {names}",
        "body": f"shiptrackd on ops-1\n\n{severity.upper()} {names}\n",
        "deliveries": deliveries,
    }


CHANNELS = ["console", "mailto://ops@example.com"]
NOTIFICATIONS = [
    notification(7, "firing", "warning", ["stale_shipments"], 18, [delivery(c, "sent", 18) for c in CHANNELS]),
    notification(
        6,
        "resolved",
        "critical",
        ["api_connectivity"],
        120,
        [delivery("console", "sent", 120), delivery(CHANNELS[1], "failed", 119, "SMTP 451 try later")],
    ),
    notification(
        5, "firing", "critical", ["api_connectivity", "error_rate"], 180, [delivery(c, "sent", 180) for c in CHANNELS]
    ),
]
ALERT_STATES = [
    {
        "check": name,
        "level": level,
        "firing": level != "ok",
        "notified_level": None if level == "ok" else level,
        "failing_streak": 0 if level == "ok" else 3,
        "passing_streak": 3 if level == "ok" else 0,
        "fired_at": None if level == "ok" else iso(NOW - timedelta(minutes=18)),
        "last_notified_at": None if level == "ok" else iso(NOW - timedelta(minutes=18)),
        "message": message,
    }
    for name, level, message in [(c["name"], c["level"], c["message"]) for c in HEALTH["checks"]]
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
                "planned": 1000,
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
                "backend": "sqlite",
                "size_bytes": 512_000_000,
                "shipments": self.total,
                "active": 81234,
                "due_now": 1500,
                "tables": None,
            },
            "rate_limit_paused_until": None,
            "heartbeat": None,
            "event_seq": 100,
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
            "runs_24h": {
                "runs": 290,
                "selected": 90000,
                "updated": 85000,
                "unchanged": 4960,
                "failed": 40,
                "api_calls": 91000,
                "retries": 311,
                "rate_limited": 12,
            },
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

    async def health(
        self,
        *,
        fresh: bool = False,
        alert_threshold: int | None = None,
        check_stale: bool = False,
        stale_limit: int | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("health", {"fresh": fresh}))
        return {**HEALTH, "trigger": "request"} if fresh else HEALTH

    async def alerts(self, limit: int = 20) -> dict[str, Any]:
        self.calls.append(("alerts", {"limit": limit}))
        channels = [{"channel": c, "tags": ["all"], "usable": True} for c in CHANNELS]
        return {"notifications": NOTIFICATIONS[:limit], "states": ALERT_STATES, "channels": channels}

    async def alert_test(self, wait_s: int | None = None) -> dict[str, Any]:
        self.calls.append(("alert_test", {"wait_s": wait_s}))
        deliveries = [{"id": 20 + k, **delivery(c, "sent", 0), "claimed_at": iso(NOW)} for k, c in enumerate(CHANNELS)]
        return {"notification_id": 8, "deliveries": deliveries, "delivered": True}

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

    async def sync(
        self, *, force: bool = False, dry_run: bool = False, shipments: list[str] | None = None
    ) -> dict[str, Any]:
        self.calls.append(("sync", {"force": force, "dry_run": dry_run, "shipments": shipments}))
        if dry_run:
            first = fake_shipment(0)
            plan = {k: first[k] for k in ("id", "carrier_code", "tracking_number", "status_code", "next_sync_at")}
            would = [{**plan, "why": f"due since {first['next_sync_at']} (in transit: every 2h)"}]
            return {"dry_run": True, "trigger": "manual", "would_sync": 12, "shipments": would, "unknown_ids": []}
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
        added = {"index": 0, "id": "ship_new", "reference": "", **records[0]}
        return {"added": [added], "duplicates": [], "invalid": []}

    async def events(
        self, since: int | None = None, heartbeat_s: float | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        for event in EVENTS:
            yield event
        await asyncio.Event().wait()  # then a quiet daemon: nothing more, ever


def fixed_clock() -> datetime:
    return NOW


def make_fake_app(client: FakeClient | None = None, **kwargs: Any) -> ShiptrackApp:
    """A console on the fake client with a fixed clock, quiet enough for pixel-stable snapshots."""
    fake = client or FakeClient()
    options: dict[str, Any] = {"clock": fixed_clock, "heartbeat_s": 3600.0, "refresh_s": 3600.0}
    options.update(kwargs)
    return ShiptrackApp(lambda: fake, socket_label=SOCKET, **options)
