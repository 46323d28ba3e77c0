"""
The /v1 routes of outbound webhooks: endpoints (list, test, enable) and deliveries (list, show, retry, replay).

What `shiptrackctl endpoints` and `shiptrackctl deliveries` call. Each route parses its request
and calls the dispatcher or the outbox; changes get an audit line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from ..clock import Clock
from ..config import Config, mask_url
from ..errors import InvalidRequestError, NotFoundError
from ..models import MAX_ROW_ID
from ..outbound.dispatcher import Dispatcher
from ..store import Store
from ..store.rows import EndpointFigures, EndpointState, OutboxRow
from ..units import parse_duration
from ..wire import outbound as wire
from ..wire.answers import to_answer
from ..wire.requests import ReplayBody, RetryDeadBody
from .audit import audit
from .contract import Doc, path, query, route
from .requests import answer, field, query_int, read_json

DELIVERY_STATES = ("pending", "failed", "sending", "delivered", "dead")
MAX_REPLAY_S = 90 * 86400.0


def delivery_view(row: OutboxRow) -> wire.DeliveryInfo:
    """A delivery as the API shows it: `failed` for a pending row after a failed attempt."""
    state = "failed" if row.state == "pending" and row.attempts > 0 else row.state
    return to_answer(msgspec.structs.replace(row, state=state), wire.DeliveryInfo)


def outbound_routes(store: Store, dispatcher: Dispatcher, clock: Clock, config: Any) -> list[Route]:
    """*config* is a callable giving the live Config (it follows reloads)."""

    def configured(name: str) -> Any:
        cfg: Config = config()
        ep = next((e for e in cfg.outbound if e.name == name), None)
        if ep is None:
            names = ", ".join(e.name for e in cfg.outbound) or "none configured"
            raise NotFoundError(f"no [[outbound]] endpoint {name!r} (endpoints: {names})")
        return ep

    async def endpoints(request: Request) -> Any:
        cfg: Config = config()
        now = clock.now()
        figures = await store.outbox.figures(now - timedelta(seconds=cfg.health.deliveries_dead_window_s))
        states = await store.outbox.endpoint_states()
        out = []
        for ep in cfg.outbound:
            fig = figures.get(ep.name) or EndpointFigures()
            state = states.get(ep.name) or EndpointState(name=ep.name)
            oldest = fig.oldest_undelivered_at
            if not ep.enabled:
                status = "off"
            elif state.disabled_at:
                status = "disabled"
            elif state.failing_since:
                status = "failing"
            else:
                status = "ok"
            out.append(
                {
                    "name": ep.name,
                    "url": mask_url(ep.url),
                    "state": status,
                    "events": list(ep.events),
                    "undelivered": fig.undelivered,
                    "lag_s": round((now - oldest).total_seconds(), 3) if oldest else 0.0,
                    "dead": fig.dead,
                    "disabled_reason": state.disabled_reason,
                    "failing_since": state.failing_since,
                    "last_success_at": state.last_success_at,
                    "last_attempt_at": state.last_attempt_at,
                    "last_error": state.last_error,
                }
            )
        return to_answer({"endpoints": out}, wire.Endpoints)

    async def test(request: Request) -> Any:
        ep = configured(request.path_params["name"])
        result = await dispatcher.test(ep.name)
        audit(request.scope, "endpoint tested", endpoint=ep.name, status=result["status"])
        return to_answer(result, wire.EndpointTested)

    async def enable(request: Request) -> Any:
        ep = configured(request.path_params["name"])
        was_disabled = await dispatcher.enable(ep.name)
        audit(request.scope, "endpoint enabled", endpoint=ep.name, was_disabled=was_disabled)
        return wire.EndpointEnabled(endpoint=ep.name, enabled=True, was_disabled=was_disabled)

    async def deliveries(request: Request) -> Any:
        q = request.query_params
        state = q.get("state") or None
        if state is not None and state not in DELIVERY_STATES:
            raise InvalidRequestError(f"query parameter 'state' must be one of {', '.join(DELIVERY_STATES)}")
        limit = query_int(request, "limit", 100)
        if not 1 <= limit <= 10_000:
            raise InvalidRequestError("query parameter 'limit' must be from 1 to 10000")
        rows = await store.outbox.list(endpoint=q.get("endpoint") or None, state=state, limit=limit)
        return wire.Deliveries(deliveries=[delivery_view(r) for r in rows])

    def delivery_id(request: Request) -> int:
        raw = request.path_params["id"]
        if not raw.isdigit() or int(raw) > MAX_ROW_ID:
            raise NotFoundError(f"no delivery {raw[:40]!r}")
        return int(raw)

    async def delivery_one(request: Request) -> Any:
        row = await store.outbox.get(delivery_id(request))
        if row is None:
            raise NotFoundError(f"no delivery {request.path_params['id']!r}")
        return delivery_view(row)

    async def retry_one(request: Request) -> Any:
        outbox_id = delivery_id(request)
        if not await store.outbox.retry(outbox_id, clock.now()):
            raise NotFoundError(f"no delivery {outbox_id} waiting or dead (a delivered one is not sent again)")
        dispatcher.wake()
        audit(request.scope, "delivery retried", id=outbox_id)
        return wire.Retried(retried=1, ids=[outbox_id])

    async def retry_dead(request: Request) -> Any:
        body = await read_json(request)
        if not field(body, "dead", bool, False):
            raise InvalidRequestError('send {"dead": true} (and optionally "endpoint") to retry every dead delivery')
        endpoint = field(body, "endpoint", str, None)
        if endpoint:
            configured(endpoint)
        count = await store.outbox.retry_dead(endpoint, clock.now())
        dispatcher.wake()
        audit(request.scope, "dead deliveries retried", endpoint=endpoint or "*", count=count)
        return wire.Retried(retried=count)

    async def replay(request: Request) -> Any:
        body = await read_json(request)
        endpoint = field(body, "endpoint", str, None)
        since_text = field(body, "since", str, None)
        if not endpoint or not since_text:
            raise InvalidRequestError('send {"endpoint": NAME, "since": "2h"}')
        ep = configured(endpoint)
        try:
            since_s = parse_duration(since_text)
        except ValueError as exc:
            raise InvalidRequestError(f"field 'since': {exc}") from None
        if not 0 < since_s <= MAX_REPLAY_S:
            raise InvalidRequestError("field 'since' must be a positive duration of at most 90d")
        now = clock.now()
        count = await store.outbox.replay(ep.name, now - timedelta(seconds=since_s), now)
        dispatcher.wake()
        audit(request.scope, "deliveries replayed", endpoint=ep.name, since=since_text, count=count)
        return answer(wire.Replayed(endpoint=ep.name, since=since_text, replayed=count), 202)

    name = path("name", "an [[outbound]] endpoint's name")
    delivery = path("id", "a delivery's id", "integer", minimum=1)
    no_endpoint = {404: "no [[outbound]] endpoint of that name"}
    return [
        route(
            "/v1/endpoints",
            "GET",
            endpoints,
            Doc("each endpoint: state, lag, undelivered, last error", {200: wire.Endpoints}),
        ),
        route(
            "/v1/endpoints/{name}/test",
            "POST",
            test,
            Doc(
                "send a signed ping to the endpoint now; its answer",
                {200: wire.EndpointTested},
                (name,),
                errors=no_endpoint,
            ),
        ),
        route(
            "/v1/endpoints/{name}/enable",
            "POST",
            enable,
            Doc(
                "enable an endpoint the dispatcher disabled (410, disable_after)",
                {200: wire.EndpointEnabled},
                (name,),
                errors=no_endpoint,
            ),
        ),
        route(
            "/v1/deliveries",
            "GET",
            deliveries,
            Doc(
                "deliveries, newest first (state dead: the dead letters)",
                {200: wire.Deliveries},
                (
                    query("endpoint", "only this endpoint's"),
                    query("state", "only deliveries in this state", enum=list(DELIVERY_STATES)),
                    query("limit", "how many", "integer", minimum=1, maximum=10_000, default=100),
                ),
            ),
        ),
        route(
            "/v1/deliveries/retry",
            "POST",
            retry_dead,
            Doc(
                'retry every dead delivery ({"dead": true}, optionally "endpoint")',
                {200: wire.Retried},
                body=RetryDeadBody,
                body_required=True,
                errors=no_endpoint,
            ),
        ),
        route(
            "/v1/deliveries/replay",
            "POST",
            replay,
            Doc(
                'enqueue again what was sent to an endpoint since a time ago ({"endpoint", "since"})',
                {202: wire.Replayed},
                body=ReplayBody,
                body_required=True,
                errors=no_endpoint,
            ),
        ),
        route(
            "/v1/deliveries/{id}",
            "GET",
            delivery_one,
            Doc(
                "one delivery, its body and every attempt",
                {200: wire.DeliveryInfo},
                (delivery,),
                errors={404: "no such delivery"},
            ),
        ),
        route(
            "/v1/deliveries/{id}/retry",
            "POST",
            retry_one,
            Doc(
                "send a waiting or dead delivery again now, under the same webhook-id",
                {200: wire.Retried},
                (delivery,),
                errors={404: "no such delivery waiting or dead"},
            ),
        ),
    ]
