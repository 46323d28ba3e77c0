"""
The fake daemon's fixed data, typed as the wire types (an unknown or missing field fails at import):
loops, runs, a health report, the alert log, push health, outbound endpoints and deliveries, and a
few events, all around a fixed NOW. The fake daemon has [webhooks] on and two [[outbound]] endpoints.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shiptrackd.wire.alerting import Alerts, AlertStateInfo, ChannelInfo, Notification
from shiptrackd.wire.answers import HealthReport, LoopInfo, Run, Shipment, to_answer
from shiptrackd.wire.outbound import DeliveryInfo, EndpointInfo
from shiptrackd.wire.push import WebhooksStatus

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


def fake_shipment(i: int) -> Shipment:
    """Shipment number *i*, the same every time."""
    return to_answer(shipment_data(i), Shipment)


def shipment_data(i: int) -> dict[str, Any]:
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
        "provider": "shipengine",
        "provider_ref": "",
        "provider_status": status,
        "provider_sub_status": "",
        # push (issue 10): active shipments are subscribed, and pushes arrive for most of them
        "subscribed_at": iso(created + timedelta(seconds=2)) if active else None,
        "last_push_at": iso(NOW - timedelta(minutes=(i % 90) + 1)) if active and i % 5 else None,
        "push_count": (i % 7) + 1 if active and i % 5 else 0,
        "push_missed": False,
    }


def index_of(shipment_id: str) -> int:
    return int(shipment_id[5:16], 16)


LOOPS: list[LoopInfo] = to_answer(
    [
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
    ],
    list[LoopInfo],
)

RUNS: list[Run] = to_answer(
    [
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
            "owner": "vm1:4242:a1b2c3",  # the daemon (cluster member) that ran it
        }
        for k in range(6)
    ],
    list[Run],
)


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


HEALTH: HealthReport = to_answer(
    {
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
    },
    HealthReport,
)


def delivery(channel: str, status: str, minutes_ago: float, error: str = "") -> dict[str, Any]:
    return {
        "channel": channel,
        "status": status,
        "attempts": 1 if status == "sent" else 3,
        "error": error,
        "finished_at": iso(NOW - timedelta(minutes=minutes_ago)),
    }


def notification(
    n: int,
    kind: str,
    severity: str,
    checks: list[str],
    minutes_ago: float,
    deliveries: list[dict[str, Any]],
    fired_at: str = "",
) -> dict[str, Any]:
    """One entry of the alert log (GET /v1/alerts' `notifications`): the checks are objects, not names."""
    names = ", ".join(checks) or "test notification"
    return {
        "id": n,
        "created_at": iso(NOW - timedelta(minutes=minutes_ago)),
        "kind": kind,
        "severity": severity,
        # a check's level: the severity told (for a resolved notice, the one it had fired at)
        "checks": [{"check": c, "kind": kind, "level": fired_at or severity} for c in checks],
        "title": f"[{'TEST' if kind == 'test' else severity.upper()}] shiptrackd on ops-1: {names}",
        "body": f"shiptrackd on ops-1\n\n{severity.upper()} {names}\n",
        "deliveries": deliveries,
    }


CHANNELS = ["console", "mailto://ops@example.com"]
NOTIFICATIONS_DATA = [
    notification(7, "firing", "warning", ["stale_shipments"], 18, [delivery(c, "sent", 18) for c in CHANNELS]),
    notification(
        6,
        "resolved",
        "resolved",  # the daemon's severity for an all-clear (alerts/rules.group_severity)
        ["api_connectivity"],
        120,
        [delivery("console", "sent", 120), delivery(CHANNELS[1], "failed", 119, "SMTP 451 try later")],
        fired_at="critical",
    ),
    notification(
        5, "firing", "critical", ["api_connectivity", "error_rate"], 180, [delivery(c, "sent", 180) for c in CHANNELS]
    ),
]
ALERT_STATES_DATA = [
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
    for name, level, message in [(c.name, c.level, c.message) for c in HEALTH.checks]
]

NOTIFICATIONS: list[Notification] = to_answer(NOTIFICATIONS_DATA, list[Notification])
ALERTS = Alerts(
    notifications=NOTIFICATIONS,
    states=to_answer(ALERT_STATES_DATA, list[AlertStateInfo]),
    channels=[ChannelInfo(channel=c, tags=["all"], usable=True) for c in CHANNELS],
)


EVENTS: list[dict[str, Any]] = [
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


WEBHOOKS: WebhooksStatus = to_answer(
    {
        "enabled": True,
        "listen": "127.0.0.1:8789",
        "public_url": "https://hooks.example.com",
        "hook_urls": {"shipengine": "/hooks/shipengine"},
        "jwks": {"url": "https://api.shipengine.com/jwks", "keys": ["kid-2025-01"], "last_error": None},
        "subscription_failures": 0,
        "registered_url": "https://hooks.example.com/hooks/shipengine",
        "subscribed": 81234,
        "last_push_at": iso(NOW - timedelta(seconds=42)),
        "last_hour": {"accepted": 1180, "duplicate": 14, "bad_signature": 2},
        "totals": {"accepted": 30890, "bad_signature": 2, "duplicate": 310},
        "changes_by_push": 30211,
        "silence": "ok",
    },
    WebhooksStatus,
)
WEBHOOKS_OFF = WebhooksStatus(
    enabled=False, message="webhooks are off: set [webhooks] listen (and public_url) to receive pushes"
)


def endpoint(name: str, state: str, undelivered: int, lag_s: float, dead: int, error: str = "") -> dict[str, Any]:
    """One [[outbound]] endpoint as GET /v1/endpoints shows it."""
    failing = state in ("failing", "disabled")
    return {
        "name": name,
        "url": f"https://{name}.example.com/hooks/****",
        "state": state,
        "events": ["shipment.status_changed", "shipment.delivered"],
        "undelivered": undelivered,
        "lag_s": lag_s,
        "dead": dead,
        "disabled_reason": "410 Gone" if state == "disabled" else "",
        "failing_since": iso(NOW - timedelta(minutes=25)) if failing else None,
        "last_success_at": iso(NOW - timedelta(minutes=26 if failing else 1)),
        "last_attempt_at": iso(NOW - timedelta(seconds=30)),
        "last_error": error,
    }


ENDPOINTS: list[EndpointInfo] = to_answer(
    [
        endpoint("shop", "ok", 0, 0.0, 0),
        endpoint("warehouse", "failing", 14, 1500.0, 2, "HTTP 503: Service Unavailable"),
    ],
    list[EndpointInfo],
)


def delivery_row(n: int, endpoint: str, state: str, minutes_ago: float, status: int | None, error: str = "") -> Any:
    """One outbox row as GET /v1/deliveries lists it."""
    created = NOW - timedelta(minutes=minutes_ago)
    attempts = {"pending": 0, "delivered": 1, "failed": 3, "dead": 10}[state]
    return {
        "id": n,
        "message_id": f"msg_{n:026d}",
        "endpoint": endpoint,
        "shipment_id": fake_shipment(n).id,
        "event_type": "shipment.delivered" if n % 3 == 0 else "shipment.status_changed",
        "created_at": iso(created),
        "state": state,
        "attempts": attempts,
        "next_attempt_at": iso(NOW + timedelta(minutes=5)) if state in ("pending", "failed") else None,
        "last_status": status,
        "last_error": error,
        "finished_at": iso(created + timedelta(seconds=1)) if state in ("delivered", "dead") else None,
    }


DELIVERIES: list[DeliveryInfo] = to_answer(
    [
        delivery_row(212, "warehouse", "failed", 2, 503, "HTTP 503: Service Unavailable"),
        delivery_row(211, "shop", "delivered", 3, 200),
        delivery_row(210, "warehouse", "failed", 25, 503, "HTTP 503: Service Unavailable"),
        delivery_row(209, "shop", "delivered", 25, 200),
        delivery_row(180, "warehouse", "dead", 1500, 500, "HTTP 500: Internal Server Error"),
        delivery_row(179, "warehouse", "dead", 1510, None, "ConnectError: connection refused"),
    ],
    list[DeliveryInfo],
)
