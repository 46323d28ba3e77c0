"""
The /v1 control routes onto Service: each parses its request, calls one Service method and serialises.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import InvalidRequestError
from ..events import EventBus
from ..service import Service
from .audit import audit
from .requests import field, json_endpoint, query_bool, query_int, read_json
from .streaming import EventStream

HEARTBEAT_S = 10.0


def control_routes(service: Service, bus: EventBus) -> list[Route]:
    """The /v1 routes onto Service (health and alert routes are in routes_alerting.py)."""

    async def status(request: Request) -> Any:
        return await service.status()

    async def loops(request: Request) -> Any:
        return await service.loops_list()

    async def loop_action(request: Request) -> Any:
        name, action = request.path_params["name"], request.path_params["action"]
        result = await service.loop_action(name, action)
        audit(request.scope, f"loop {action}", loop=name, **({"joined": True} if result.get("joined") else {}))
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
            added=len(result["added"]),
            duplicates=len(result["duplicates"]),
            invalid=len(result["invalid"]),
        )
        if single and result["invalid"]:
            raise InvalidRequestError(result["invalid"][0]["error"])
        if single and result["duplicates"]:
            dup = result["duplicates"][0]
            return JSONResponse(
                {"error": {"code": "duplicate", "message": f"already tracked as {dup['id']}"}, **result},
                status_code=409,
            )
        return JSONResponse(result, status_code=201 if result["added"] else 200)

    async def get_shipment(request: Request) -> Any:
        return await service.get_shipment(request.path_params["id"])

    async def remove_shipment(request: Request) -> Any:
        result = await service.remove_shipment(request.path_params["id"])
        audit(request.scope, "shipment removed", id=result["removed"])
        return result

    async def retrack(request: Request) -> Any:
        result = await service.retrack(request.path_params["id"])
        audit(request.scope, "shipment retracked", id=request.path_params["id"])
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
        if not result.get("dry_run"):
            audit(
                request.scope,
                "sync started",
                run_id=result["run_id"],
                trigger=result["trigger"],
                joined=result["joined"],
            )
        return JSONResponse(result, status_code=200 if result.get("dry_run") else 202)

    async def runs(request: Request) -> Any:
        return await service.runs(query_int(request, "limit", 20))

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
        audit(request.scope, "backup written", path=result["path"], size_bytes=result["size_bytes"])
        return JSONResponse(result, status_code=201)

    async def events(request: Request) -> Response:
        since = query_int(request, "since", -1)
        raw = request.query_params.get("heartbeat") or ""
        try:
            heartbeat = float(raw) if raw else HEARTBEAT_S
        except ValueError:
            heartbeat = float("nan")
        if not math.isfinite(heartbeat):
            raise InvalidRequestError(f"query parameter 'heartbeat' must be a number of seconds, not {raw!r}")
        return ndjson_events(bus, None if since < 0 else since, max(heartbeat, 0.05))

    routes = [
        Route("/v1/status", json_endpoint(status), methods=["GET"]),
        Route("/v1/loops", json_endpoint(loops), methods=["GET"]),
        Route("/v1/loops/{name}/{action}", json_endpoint(loop_action), methods=["POST"]),
        Route("/v1/shipments", json_endpoint(list_shipments), methods=["GET"]),
        Route("/v1/shipments", json_endpoint(add_shipments), methods=["POST"]),
        Route("/v1/shipments/{id}", json_endpoint(get_shipment), methods=["GET"]),
        Route("/v1/shipments/{id}", json_endpoint(remove_shipment), methods=["DELETE"]),
        Route("/v1/shipments/{id}/retrack", json_endpoint(retrack), methods=["POST"]),
        Route("/v1/shipments/{id}/why", json_endpoint(why), methods=["GET"]),
        Route("/v1/sync", json_endpoint(sync), methods=["POST"]),
        Route("/v1/runs", json_endpoint(runs), methods=["GET"]),
        Route("/v1/runs/{id:int}", json_endpoint(run), methods=["GET"]),
        Route("/v1/stats", json_endpoint(stats), methods=["GET"]),
        Route("/v1/reload", json_endpoint(reload), methods=["POST"]),
        Route("/v1/backup", json_endpoint(backup), methods=["POST"]),
        Route("/v1/events", json_endpoint(events), methods=["GET"]),
    ]
    return routes


def ndjson_events(bus: EventBus, since: int | None, heartbeat_s: float) -> Response:
    """Events as JSON lines; a heartbeat line whenever nothing happened for `heartbeat_s` (api/streaming.py)."""
    return EventStream(bus, since, heartbeat_s)
