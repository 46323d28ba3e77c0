"""The /v1 routes of health and alerting: the health report, alerts, test notices and silences."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..alerts.state import DELIVERY_WAIT_S, Alerting
from ..errors import InvalidRequestError
from ..health.monitor import HealthMonitor
from .audit import audit
from .monitoring import with_level_status
from .requests import field, json_endpoint, query_bool, query_int, read_json


def health_routes(monitor: HealthMonitor) -> list[Route]:
    """GET /v1/health: the last report; ?fresh=1 runs the checks now, ?alert_threshold=N, ?check_stale=1."""

    async def health(request: Request) -> Any:
        threshold = request.query_params.get("alert_threshold")
        alert_threshold = query_int(request, "alert_threshold", 0) if threshold not in (None, "") else None
        if alert_threshold is not None and alert_threshold < 0:
            raise InvalidRequestError("alert_threshold must be 0 or more")
        stale_limit = query_int(request, "stale_limit", 50)
        if not 1 <= stale_limit <= 1000:
            raise InvalidRequestError("stale_limit must be between 1 and 1000")
        report = await monitor.current(
            fresh=bool(query_bool(request, "fresh")),
            alert_threshold=alert_threshold,
            check_stale=bool(query_bool(request, "check_stale")),
            stale_limit=stale_limit,
        )
        return with_level_status(request, report)  # ?http_status=1: the level as the status code

    return [Route("/v1/health", json_endpoint(health), methods=["GET"])]


def alert_routes(alerting: Alerting) -> list[Route]:
    """The control API's alert routes: evaluate now, test notice, the log, silences."""

    def wait_s(request: Request) -> float:
        wait = query_int(request, "wait", int(DELIVERY_WAIT_S))
        if not 0 <= wait <= 300:
            raise InvalidRequestError("wait must be between 0 and 300 seconds")
        return float(wait)

    async def evaluate(request: Request) -> Any:
        audit(request.scope, "alerts evaluated")
        return await alerting.alert_now(wait_s(request))

    async def test(request: Request) -> Any:
        audit(request.scope, "test alert sent")
        return await alerting.send_test(wait_s(request))

    async def recent(request: Request) -> Any:
        return await alerting.recent(query_int(request, "limit", 20))

    async def list_silences(request: Request) -> Any:
        return await alerting.silences(include_expired=bool(query_bool(request, "all")))

    async def add_silence(request: Request) -> Any:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InvalidRequestError('send {"check": NAME, "duration": "2h", "comment": TEXT}')
        check = field(body, "check", str, None)
        if not check:
            raise InvalidRequestError("field 'check' is required")
        duration = body.get("duration")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, str | int | float)):
            raise InvalidRequestError("field 'duration' must be a duration like \"2h\" or a number of seconds")
        silence = await alerting.add_silence(
            check,
            duration=duration,
            until=field(body, "until", str, None),
            comment=field(body, "comment", str, "") or "",
        )
        audit(request.scope, "silence added", id=silence.get("id"), check=check, until=silence.get("until_at"))
        return JSONResponse(silence, status_code=201)

    async def remove_silence(request: Request) -> Any:
        result = await alerting.remove_silence(request.path_params["id"])
        audit(request.scope, "silence removed", id=request.path_params["id"])
        return result

    return [
        Route("/v1/alerts", json_endpoint(recent), methods=["GET"]),
        Route("/v1/alerts/evaluate", json_endpoint(evaluate), methods=["POST"]),
        Route("/v1/alerts/test", json_endpoint(test), methods=["POST"]),
        Route("/v1/silences", json_endpoint(list_silences), methods=["GET"]),
        Route("/v1/silences", json_endpoint(add_silence), methods=["POST"]),
        Route("/v1/silences/{id:int}", json_endpoint(remove_silence), methods=["DELETE"]),
    ]
