"""
Monitoring routes outside /v1, on the socket and on `metrics_listen`: Prometheus metrics, liveness
and readiness probes, and the HTTP status a health level maps to for HTTP monitors.

The probes need no group membership on the socket: Docker, Kubernetes and load balancers reach
them over TCP on `metrics_listen`. They read one in-memory state and never touch the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..metrics import Exporter
from ..wire.answers import HealthReport
from ..wire.names import CRITICAL, OK, UNKNOWN, WARNING
from .requests import answer, query_bool

# The daemon's state (Service.state) as a probe status: "running" is the only ready one.
PROBE_STATUS = {"running": "ok", "starting": "starting", "stopping": "stopping"}

# /v1/health?http_status=1: what HTTP checkers read. 429 for warning is the code Consul's HTTP checks
# map to "warning" and Nagios' check_http reports as WARNING (any 4xx); uptime monitors see it as down.
LEVEL_HTTP_STATUS = {OK: 200, WARNING: 429, CRITICAL: 503, UNKNOWN: 503}


def monitoring_routes(exporter: Exporter, state: Callable[[], str]) -> list[Route]:
    """/metrics, /livez and /readyz; *state* gives the daemon's state: starting, running or stopping."""

    async def metrics(request: Request) -> Response:
        return Response(await exporter.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def livez(request: Request) -> Response:
        """Alive while the event loop answers, whatever the state: a restart would not help a stopping daemon."""
        return JSONResponse({"status": PROBE_STATUS.get(state(), "starting")})

    async def readyz(request: Request) -> Response:
        """Ready once the store is open and the loops run, until shutdown begins."""
        status = PROBE_STATUS.get(state(), "starting")
        return JSONResponse({"status": status}, status_code=200 if status == "ok" else 503)

    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]


def with_level_status(request: Request, report: HealthReport) -> Any:
    """*report* as it is, or, with `?http_status=1`, as JSON with the status its level maps to."""
    if not query_bool(request, "http_status"):
        return report
    return answer(report, LEVEL_HTTP_STATUS.get(report.level, 503))
