"""
The console's reads of the daemon, all through shiptrackd.api.client.ApiClient, and
the one-line summaries of action answers. Console and daemon ship in one wheel, so
every route is there; a panel whose call fails just keeps saying what it last knew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from shiptrackd.api.client import ApiClient, ApiError

RECENT_RUNS = 10
RECENT_ALERTS = 20

T = TypeVar("T")


async def load_snapshot(client: ApiClient) -> dict[str, Any]:
    """Status, recent runs, stats, the last health report and the alert log, in one go."""
    status, runs, stats, report, alerts = await asyncio.gather(
        client.status(),
        client.runs(RECENT_RUNS),
        client.stats(),
        _quiet(client.health()),
        _quiet(client.alerts(RECENT_ALERTS)),
    )
    return {"status": status, "runs": runs, "stats": stats, "health": report, "alerts": alerts}


async def _quiet(aw: Awaitable[T]) -> T | None:
    """An optional panel's data: its failure (a health check erroring) must not stop the rest of the snapshot."""
    try:
        return await aw
    except ApiError:
        return None


def alert_test_summary(result: dict[str, Any]) -> str:
    """One line from POST /v1/alerts/test's answer: how many channels got the notice."""
    deliveries = [d for d in result.get("deliveries") or [] if isinstance(d, dict)]
    if not deliveries:
        return "no alert channels are configured: nothing was sent"
    ok = sum(1 for d in deliveries if d.get("status") == "sent")
    failed = [str(d.get("channel")) for d in deliveries if d.get("status") == "failed"]
    text = f"test alert delivered to {ok}/{len(deliveries)} channel(s)"
    return text + (f"; failed: {', '.join(failed)}" if failed else "")
