"""
The console's calls to the daemon, all through shiptrackd.api.client.ApiClient.

Health and alert endpoints may be missing on an older daemon: those calls return
NOT_AVAILABLE on a 404 instead of failing, and the screens say "not available".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from shiptrackd.api.client import ApiError

from .state import NOT_AVAILABLE

RECENT_RUNS = 10


class Client(Protocol):
    """What the console needs from ApiClient (a test's fake implements the same)."""

    async def status(self) -> dict[str, Any]: ...
    async def loops(self) -> list[dict[str, Any]]: ...
    async def loop_action(self, name: str, action: str) -> dict[str, Any]: ...
    async def shipments(self, **kwargs: Any) -> dict[str, Any]: ...
    async def shipment(self, shipment_id: str) -> dict[str, Any]: ...
    async def why(self, shipment_id: str) -> dict[str, Any]: ...
    async def add_shipments(self, records: list[dict[str, Any]]) -> dict[str, Any]: ...
    async def sync(self, **kwargs: Any) -> dict[str, Any]: ...
    async def runs(self, limit: int = 20) -> list[dict[str, Any]]: ...
    async def stats(self) -> dict[str, Any]: ...
    async def request(self, method: str, path: str, **kwargs: Any) -> Any: ...
    def events(self, since: int | None = None, heartbeat_s: float | None = None) -> Any: ...
    async def aclose(self) -> None: ...


def is_missing(exc: BaseException) -> bool:
    """A 404 for the route itself (an endpoint this daemon lacks)."""
    return (
        isinstance(exc, ApiError) and exc.http_status in (404, 405) and exc.code in ("not_found", "method_not_allowed")
    )


async def optional(call: Callable[[], Awaitable[Any]]) -> Any:
    """The call's result, or NOT_AVAILABLE if the daemon has no such endpoint."""
    try:
        return await call()
    except ApiError as exc:
        if is_missing(exc):
            return NOT_AVAILABLE
        raise


def _typed(client: Any, name: str, method: str, path: str, **kwargs: Any) -> Callable[[], Awaitable[Any]]:
    """Prefer the client's typed method when it has one, else the raw request."""
    typed = getattr(client, name, None)
    if callable(typed):
        return lambda: typed(**kwargs)
    return lambda: client.request(method, path, **({"params": kwargs} if kwargs else {}))


async def health(client: Any) -> Any:
    return await optional(_typed(client, "health", "GET", "/v1/health"))


async def alerts(client: Any) -> Any:
    return await optional(_typed(client, "alerts", "GET", "/v1/alerts"))


async def load_snapshot(client: Any) -> dict[str, Any]:
    """Status, recent runs, stats, health and alerts in one go; health/alerts may be NOT_AVAILABLE."""
    status, runs, stats, report, recent_alerts = await asyncio.gather(
        client.status(), client.runs(RECENT_RUNS), client.stats(), _quiet(health(client)), _quiet(alerts(client))
    )
    return {"status": status, "runs": runs, "stats": stats, "health": report, "alerts": recent_alerts}


async def load_refresh(client: Any) -> dict[str, Any]:
    """The figures no event carries (API stats, health, alerts), plus status to correct any drift."""
    return await load_snapshot(client)


async def _quiet(aw: Awaitable[Any]) -> Any:
    """An optional panel's data; its failure must not stop the rest of the snapshot."""
    try:
        return await aw
    except ApiError:
        return None


async def run_health_check(client: Any) -> Any:
    """Run the checks now (GET /v1/health?fresh=1) and return the report; NOT_AVAILABLE on an older daemon."""
    report = await optional(lambda: client.request("GET", "/v1/health", params={"fresh": "true"}))
    if report == NOT_AVAILABLE:
        try:  # an older daemon still has the health loop: run it, even if it cannot report back
            await client.loop_action("health", "trigger")
        except ApiError as exc:
            if exc.http_status != 404:
                raise
    return report


async def send_test_alert(client: Any) -> Any:
    """POST /v1/alerts/test: a test notice to every channel; the answer says per channel whether it arrived."""
    return await optional(lambda: client.request("POST", "/v1/alerts/test"))
