"""
The /v1 control routes onto Service: each parses its request, calls one Service method and answers
with its wire type. Each route carries its Doc, from which api/openapi.py builds the document.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidRequestError
from ..events import EventBus
from ..service import MAX_LIST_LIMIT, Service
from ..wire import answers as wire
from ..wire import push as wire_push
from ..wire import stats as wire_stats
from ..wire.events import AnyEvent
from ..wire.names import LOOP_ACTIONS, NO_STATUS, STATUS_CODES
from ..wire.requests import BackupBody, NewShipmentBody, NewShipmentsBody, SetCarrierBody, SyncBody
from .audit import audit
from .contract import NDJSON, Doc, path, query, route
from .requests import answer, field, query_bool, query_int, read_json
from .streaming import EventStream

HEARTBEAT_S = 10.0
SHIPMENT_ID = path("id", "a shipment id (ship_…)")


def control_routes(service: Service, bus: EventBus) -> list[Route]:
    """The /v1 routes onto Service (health and alert routes are in routes_alerting.py)."""

    async def status(request: Request) -> Any:
        return await service.status()

    async def loops(request: Request) -> Any:
        return wire.LoopList(loops=await service.loops_list())

    async def loop_action(request: Request) -> Any:
        name, action = request.path_params["name"], request.path_params["action"]
        result = await service.loop_action(name, action)
        joined = isinstance(result, wire.LoopTriggered) and result.joined
        audit(request.scope, f"loop {action}", loop=name, **({"joined": True} if joined else {}))
        return result

    async def list_shipments(request: Request) -> Any:
        q = request.query_params
        return await service.list_shipments(
            status=q.get("status") or None,
            carrier=q.get("carrier") or None,
            search=q.get("q") or None,
            active=query_bool(request, "active"),
            cursor=q.get("cursor") or None,
            limit=query_int(request, "limit", 100),
        )

    async def add_shipments(request: Request) -> Any:
        body = await read_json(request)
        if isinstance(body, dict) and "shipments" in body:
            body = body["shipments"]
        single = isinstance(body, dict)
        records = [body] if single else body
        if not isinstance(records, list) or not records:
            raise InvalidRequestError('send a shipment object, a list of them, or {"shipments": [...]}')
        result = await service.add_shipments(records)
        audit(
            request.scope,
            "shipments added",
            added=len(result.added),
            duplicates=len(result.duplicates),
            invalid=len(result.invalid),
        )
        if single and result.invalid:
            raise InvalidRequestError(result.invalid[0].error, code=result.invalid[0].code)
        if single and result.duplicates:
            dup = result.duplicates[0]
            error = wire.ErrorBody(code="duplicate", message=f"already tracked as {dup.id}")
            conflict = wire.DuplicateShipment(
                error=error, added=result.added, duplicates=result.duplicates, invalid=result.invalid
            )
            return answer(conflict, 409)
        return answer(result, 201 if result.added else 200)

    async def get_shipment(request: Request) -> Any:
        return await service.get_shipment(request.path_params["id"])

    async def remove_shipment(request: Request) -> Any:
        result = await service.remove_shipment(request.path_params["id"])
        audit(request.scope, "shipment removed", id=result.removed)
        return result

    async def retrack(request: Request) -> Any:
        result = await service.retrack(request.path_params["id"])
        audit(request.scope, "shipment retracked", id=request.path_params["id"])
        return result

    async def set_carrier(request: Request) -> Any:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InvalidRequestError('send {"carrier_code": "ups"}')
        carrier = field(body, "carrier_code", str, None)
        if not carrier:
            raise InvalidRequestError("field 'carrier_code' is required: the carrier to track the shipment with")
        result = await service.set_carrier(request.path_params["id"], carrier)
        audit(request.scope, "carrier set", id=result.id, carrier=carrier)
        return result

    async def why(request: Request) -> Any:
        return await service.why(request.path_params["id"])

    async def sync(request: Request) -> Any:
        body = await read_json(request) or {}
        if not isinstance(body, dict):
            raise InvalidRequestError("body must be a JSON object")
        shipments = field(body, "shipments", list, None)
        if shipments is not None and not all(isinstance(s, str) for s in shipments):
            raise InvalidRequestError("field 'shipments' must be a list of shipment ids")
        result = await service.sync(
            force=bool(field(body, "force", bool, False)),
            dry_run=bool(field(body, "dry_run", bool, False)),
            shipments=shipments,
        )
        if isinstance(result, wire.SyncPlan):
            return result
        audit(request.scope, "sync started", run_id=result.run_id, trigger=result.trigger, joined=result.joined)
        return answer(result, 202)

    async def runs(request: Request) -> Any:
        return wire.RunList(runs=await service.runs(query_int(request, "limit", 20)))

    async def run(request: Request) -> Any:
        return await service.run(request.path_params["id"])

    async def stats(request: Request) -> Any:
        return await service.stats()

    async def reload(request: Request) -> Any:
        return await service.reload()  # the daemon logs the audit line, for SIGHUP as for this

    async def backup(request: Request) -> Any:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InvalidRequestError('send {"path": "/absolute/path/to/backup.db", "force": false}')
        path = field(body, "path", str, None)
        if not path:
            raise InvalidRequestError("field 'path' is required: the absolute path the daemon writes the backup to")
        result = await service.backup(path, force=bool(field(body, "force", bool, False)))
        audit(request.scope, "backup written", path=result.path, size_bytes=result.size_bytes)
        return answer(result, 201)

    async def events(request: Request) -> Response:
        since = query_int(request, "since", -1)
        raw = request.query_params.get("heartbeat") or ""
        try:
            heartbeat = float(raw) if raw else HEARTBEAT_S
        except ValueError:
            heartbeat = float("nan")
        if not math.isfinite(heartbeat):
            raise InvalidRequestError(f"query parameter 'heartbeat' must be a number of seconds, not {raw!r}")
        return EventStream(bus, None if since < 0 else since, max(heartbeat, 0.05))

    async def webhooks_status(request: Request) -> Any:
        """Push health: the registered URL, subscriptions, pushes in the last hour by outcome, silence."""
        return await service.webhooks_status()

    async def webhooks_setup(request: Request) -> Any:
        """Register or update the provider's track webhook at <public_url>/hooks/<provider>."""
        result = await service.webhooks_setup()
        audit(request.scope, "webhook setup", outcome=result.action)
        return result

    no_shipment = {404: "no shipment with this id"}
    return [
        route(
            "/v1/status",
            "GET",
            status,
            Doc("the daemon, its loops, the running sync and the store", {200: wire.Status}),
        ),
        route("/v1/loops", "GET", loops, Doc("every loop's schedule and state", {200: wire.LoopList})),
        route(
            "/v1/loops/{name}/{action}",
            "POST",
            loop_action,
            Doc(
                "pause, resume or trigger a loop",
                {200: (wire.LoopInfo, wire.LoopTriggered)},
                params=(
                    path("name", "the loop's name (GET /v1/loops)"),
                    path("action", "what to do", enum=list(LOOP_ACTIONS)),
                ),
                errors={400: "an unknown action", 404: "no loop with this name"},
            ),
        ),
        route(
            "/v1/shipments",
            "GET",
            list_shipments,
            Doc(
                "a page of shipments in creation order",
                {200: wire.ShipmentPage},
                params=(
                    query("status", "only this status code, or none (never synced)", enum=[*STATUS_CODES, NO_STATUS]),
                    query("carrier", "only this carrier code"),
                    query("q", "an id, or the start of a tracking number or reference"),
                    query("active", "only active (true) or inactive (false) shipments", "boolean"),
                    query("cursor", "the next_cursor of the previous page"),
                    query("limit", "shipments per page", "integer", minimum=1, maximum=MAX_LIST_LIMIT, default=100),
                ),
            ),
        ),
        route(
            "/v1/shipments",
            "POST",
            add_shipments,
            Doc(
                "track new shipments: one, a list, or {shipments: [...]}",
                # 409: the one shipment sent is already tracked; the error, and the report naming its id
                {201: wire.ShipmentsAdded, 200: wire.ShipmentsAdded, 409: wire.DuplicateShipment},
                body=(NewShipmentBody, NewShipmentsBody, list[NewShipmentBody]),
                body_required=True,
            ),
        ),
        route(
            "/v1/shipments/{id}",
            "GET",
            get_shipment,
            Doc(
                "one shipment with its tracking events", {200: wire.ShipmentDetail}, (SHIPMENT_ID,), errors=no_shipment
            ),
        ),
        route(
            "/v1/shipments/{id}",
            "DELETE",
            remove_shipment,
            Doc("stop tracking a shipment", {200: wire.ShipmentRemoved}, (SHIPMENT_ID,), errors=no_shipment),
        ),
        route(
            "/v1/shipments/{id}/retrack",
            "POST",
            retrack,
            Doc("put a shipment back into the schedule, due now", {200: wire.Why}, (SHIPMENT_ID,), errors=no_shipment),
        ),
        route(
            "/v1/shipments/{id}/carrier",
            "POST",
            set_carrier,
            Doc(
                "set a shipment's carrier (overriding a detected one): due now, registered again with it",
                {200: wire.ShipmentDetail},
                (SHIPMENT_ID,),
                body=SetCarrierBody,
                body_required=True,
                errors={**no_shipment, 409: "another shipment already tracks this carrier and number"},
            ),
        ),
        route(
            "/v1/shipments/{id}/why",
            "GET",
            why,
            Doc("when a shipment is checked next, and why", {200: wire.Why}, (SHIPMENT_ID,), errors=no_shipment),
        ),
        route(
            "/v1/sync",
            "POST",
            sync,
            Doc(
                "start a sync run (202), or with dry_run say what it would sync (200)",
                {202: wire.SyncStarted, 200: wire.SyncPlan},
                body=SyncBody,
                errors={409: "a different kind of run is going on"},
            ),
        ),
        route(
            "/v1/runs",
            "GET",
            runs,
            Doc(
                "recent sync runs, newest first",
                {200: wire.RunList},
                params=(query("limit", "how many", "integer", default=20),),
            ),
        ),
        route(
            "/v1/runs/{id:int}",
            "GET",
            run,
            Doc(
                "one sync run, with its progress while it runs",
                {200: wire.RunDetail},
                (path("id", "the run id", "integer"),),
                errors={404: "no run with this id"},
            ),
        ),
        route(
            "/v1/stats",
            "GET",
            stats,
            Doc("the store's mix, the last day's runs, the API figures", {200: wire_stats.Stats}),
        ),
        route(
            "/v1/reload",
            "POST",
            reload,
            Doc(
                "reload the configuration; a bad one is refused and the old one kept",
                {200: wire.Reloaded},
                errors={400: "the new configuration is invalid (the old one stays)"},
            ),
        ),
        route(
            "/v1/backup",
            "POST",
            backup,
            Doc(
                "write a checked copy of the store to a path on the daemon's host",
                {201: wire.BackupWritten},
                body=BackupBody,
                body_required=True,
                errors={409: "the file exists and force is false"},
            ),
        ),
        route(
            "/v1/webhooks",
            "GET",
            webhooks_status,
            Doc(
                "the push channel: registered URL, subscriptions, pushes by outcome, silence",
                {200: wire_push.WebhooksStatus},
            ),
        ),
        route(
            "/v1/webhooks/setup",
            "POST",
            webhooks_setup,
            Doc(
                "register or update the provider's track webhook at <[webhooks] public_url>/hooks/<provider>",
                {200: wire_push.WebhookSetup},
                errors={409: "webhooks are off, or public_url is unset", 502: "the provider refused"},
            ),
        ),
        route(
            "/v1/events",
            "GET",
            events,
            Doc(
                "the event stream: one JSON object per line, a heartbeat line when idle",
                {200: AnyEvent},
                params=(
                    query("since", "replay the events after this seq first", "integer"),
                    query("heartbeat", "seconds between heartbeat lines", "number", default=HEARTBEAT_S),
                ),
                media_type=NDJSON,
            ),
        ),
    ]
