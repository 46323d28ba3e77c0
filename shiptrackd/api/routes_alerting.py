"""The /v1 routes of health and alerting: the health report, alerts, test notices and silences."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from ..alerts.state import DELIVERY_WAIT_S, Alerting
from ..errors import InvalidRequestError
from ..health.monitor import HealthMonitor
from ..units import format_rfc3339
from ..wire import alerting as wire
from ..wire.answers import HealthReport, to_answer
from ..wire.names import CHECKS
from ..wire.requests import SilenceBody
from .audit import audit
from .contract import Doc, path, query, route
from .monitoring import LEVEL_HTTP_STATUS, with_level_status
from .requests import answer, field, query_bool, query_int, read_json

MAX_WAIT_S = 300


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
        return with_level_status(request, to_answer(report, HealthReport))  # ?http_status=1: level as status

    as_status = sorted({s for s in LEVEL_HTTP_STATUS.values() if s != 200})
    doc = Doc(
        "the last health report, or a fresh one",
        {200: HealthReport, **{s: HealthReport for s in as_status}},
        params=(
            query("fresh", "run the checks now", "boolean"),
            query("alert_threshold", "judge stale_shipments against this count instead", "integer", minimum=0),
            query("check_stale", "list the stale shipments too", "boolean"),
            query("stale_limit", "how many stale shipments to list", "integer", minimum=1, maximum=1000, default=50),
            query("http_status", "answer warning 429, critical or unknown 503 (for HTTP monitors)", "boolean"),
        ),
    )
    return [route("/v1/health", "GET", health, doc)]


def alert_routes(alerting: Alerting) -> list[Route]:
    """The control API's alert routes: evaluate now, test notice, the log, silences."""

    def wait_s(request: Request) -> float:
        wait = query_int(request, "wait", int(DELIVERY_WAIT_S))
        if not 0 <= wait <= MAX_WAIT_S:
            raise InvalidRequestError(f"wait must be between 0 and {MAX_WAIT_S} seconds")
        return float(wait)

    async def evaluate(request: Request) -> Any:
        audit(request.scope, "alerts evaluated")
        return to_answer(await alerting.alert_now(wait_s(request)), wire.Evaluated)

    async def test(request: Request) -> Any:
        audit(request.scope, "test alert sent")
        return to_answer(await alerting.send_test(wait_s(request)), wire.TestSent)

    async def recent(request: Request) -> Any:
        return to_answer(await alerting.recent(query_int(request, "limit", 20)), wire.Alerts)

    async def list_silences(request: Request) -> Any:
        silences = await alerting.silences(include_expired=bool(query_bool(request, "all")))
        return to_answer({"silences": silences}, wire.SilenceList)

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
        audit(request.scope, "silence added", id=silence.id, check=check, until=format_rfc3339(silence.until_at))
        return answer(to_answer(silence, wire.Silence), 201)

    async def remove_silence(request: Request) -> Any:
        result = await alerting.remove_silence(request.path_params["id"])
        audit(request.scope, "silence removed", id=request.path_params["id"])
        return to_answer(result, wire.SilenceRemoved)

    wait = query("wait", "seconds to wait for the deliveries", "integer", minimum=0, maximum=MAX_WAIT_S)
    return [
        route(
            "/v1/alerts",
            "GET",
            recent,
            Doc(
                "recent notifications, each check's alert state, the channels",
                {200: wire.Alerts},
                params=(query("limit", "how many notifications", "integer", minimum=1, maximum=500, default=20),),
            ),
        ),
        route(
            "/v1/alerts/evaluate",
            "POST",
            evaluate,
            Doc("run the checks and the alert rules now; wait for the deliveries", {200: wire.Evaluated}, (wait,)),
        ),
        route(
            "/v1/alerts/test",
            "POST",
            test,
            Doc("send a test notice to every channel; wait for the deliveries", {200: wire.TestSent}, (wait,)),
        ),
        route(
            "/v1/silences",
            "GET",
            list_silences,
            Doc(
                "the active silences (all: the last 200, expired and removed too)",
                {200: wire.SilenceList},
                params=(query("all", "include expired and removed silences", "boolean"),),
            ),
        ),
        route(
            "/v1/silences",
            "POST",
            add_silence,
            Doc(
                f"mute a check ({', '.join(CHECKS)}) or * until a time",
                {201: wire.Silence},
                body=SilenceBody,
                body_required=True,
            ),
        ),
        route(
            "/v1/silences/{id:int}",
            "DELETE",
            remove_silence,
            Doc(
                "lift a silence",
                {200: wire.SilenceRemoved},
                (path("id", "the silence id", "integer"),),
                errors={404: "no active silence with this id"},
            ),
        ),
    ]
