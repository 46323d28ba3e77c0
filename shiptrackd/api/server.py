"""
The control API: HTTP/1.1 + JSON over a Unix socket, served by hypercorn.

Routes only parse, call a Service method and serialise. Errors are always
`{"error": {"code", "message"}}` with a fitting status. hypercorn is given a
shutdown trigger, so it installs no signal handlers of its own.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import __version__
from ..errors import InvalidRequestError, ShiptrackError
from ..events import EventBus
from ..service import Service

MAX_BODY_BYTES = 8 * 1024 * 1024  # an import of ~100k shipments; anything bigger is refused
HEARTBEAT_S = 10.0

Handler = Callable[[Request], Awaitable[Any]]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def read_json(request: Request) -> Any:
    """The request body as JSON, refusing oversize and malformed bodies with a clear 4xx."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _TooLarge()
    if not body:
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"body is not valid JSON: {exc}") from None


class _TooLarge(ShiptrackError):
    code = "body_too_large"
    http_status = 413

    def __init__(self) -> None:
        super().__init__(f"body larger than {MAX_BODY_BYTES} bytes")


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequestError(f"query parameter {name!r} must be an integer, not {raw!r}") from None


def _query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise InvalidRequestError(f"query parameter {name!r} must be true or false, not {raw!r}")


def _field(body: Any, name: str, kind: type, default: Any) -> Any:
    if not isinstance(body, dict):
        return default
    value = body.get(name, default)
    if value is not None and not isinstance(value, kind):
        raise InvalidRequestError(f"field {name!r} must be {kind.__name__}")
    return value


def build_app(service: Service, bus: EventBus, extra_routes: list[Route] | None = None) -> Starlette:
    """The ASGI app; `extra_routes` lets the health and alert modules add theirs."""

    async def status(request: Request) -> Any:
        return await service.status()

    async def loops(request: Request) -> Any:
        return await service.loops_list()

    async def loop_action(request: Request) -> Any:
        return await service.loop_action(request.path_params["name"], request.path_params["action"])

    async def list_shipments(request: Request) -> Any:
        q = request.query_params
        return await service.list_shipments(
            status=q.get("status") or None,
            carrier=q.get("carrier") or None,
            search=q.get("q") or None,
            active=_query_bool(request, "active"),
            cursor=q.get("cursor") or None,
            limit=_query_int(request, "limit", 100),
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
        return await service.remove_shipment(request.path_params["id"])

    async def retrack(request: Request) -> Any:
        return await service.retrack(request.path_params["id"])

    async def why(request: Request) -> Any:
        return await service.why(request.path_params["id"])

    async def sync(request: Request) -> Any:
        body = await read_json(request) or {}
        if not isinstance(body, dict):
            raise InvalidRequestError("body must be a JSON object")
        shipments = _field(body, "shipments", list, None)
        if shipments is not None and not all(isinstance(s, str) for s in shipments):
            raise InvalidRequestError("field 'shipments' must be a list of shipment ids")
        result = await service.sync(
            force=bool(_field(body, "force", bool, False)),
            dry_run=bool(_field(body, "dry_run", bool, False)),
            shipments=shipments,
        )
        return JSONResponse(result, status_code=200 if result.get("dry_run") else 202)

    async def runs(request: Request) -> Any:
        return await service.runs(_query_int(request, "limit", 20))

    async def run(request: Request) -> Any:
        return await service.run(request.path_params["id"])

    async def stats(request: Request) -> Any:
        return await service.stats()

    async def reload(request: Request) -> Any:
        return await service.reload()

    async def events(request: Request) -> Response:
        since = _query_int(request, "since", -1)
        raw = request.query_params.get("heartbeat") or ""
        try:
            heartbeat = float(raw) if raw else HEARTBEAT_S
        except ValueError:
            heartbeat = float("nan")
        if not math.isfinite(heartbeat):
            raise InvalidRequestError(f"query parameter 'heartbeat' must be a number of seconds, not {raw!r}")
        return StreamingResponse(
            _ndjson(bus, None if since < 0 else since, max(heartbeat, 0.05)), media_type="application/x-ndjson"
        )

    async def openapi(request: Request) -> Any:
        return openapi_spec(routes)

    routes = [
        Route("/v1/status", _json(status), methods=["GET"]),
        Route("/v1/loops", _json(loops), methods=["GET"]),
        Route("/v1/loops/{name}/{action}", _json(loop_action), methods=["POST"]),
        Route("/v1/shipments", _json(list_shipments), methods=["GET"]),
        Route("/v1/shipments", _json(add_shipments), methods=["POST"]),
        Route("/v1/shipments/{id}", _json(get_shipment), methods=["GET"]),
        Route("/v1/shipments/{id}", _json(remove_shipment), methods=["DELETE"]),
        Route("/v1/shipments/{id}/retrack", _json(retrack), methods=["POST"]),
        Route("/v1/shipments/{id}/why", _json(why), methods=["GET"]),
        Route("/v1/sync", _json(sync), methods=["POST"]),
        Route("/v1/runs", _json(runs), methods=["GET"]),
        Route("/v1/runs/{id:int}", _json(run), methods=["GET"]),
        Route("/v1/stats", _json(stats), methods=["GET"]),
        Route("/v1/reload", _json(reload), methods=["POST"]),
        Route("/v1/events", _json(events), methods=["GET"]),
        Route("/v1/openapi.json", _json(openapi), methods=["GET"]),
        *(extra_routes or []),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    app.add_middleware(_RejectBrowsers)
    return app


def _json(handler: Handler) -> Handler:
    """Wrap a handler: its return value becomes JSON, a ShiptrackError becomes the error shape."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except ShiptrackError as exc:
            return error_response(exc.http_status, exc.code, exc.message)
        return result if isinstance(result, Response) else JSONResponse(result)

    endpoint.__doc__ = handler.__doc__
    endpoint.__name__ = handler.__name__
    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
    return error_response(exc.status_code, code, message)


async def _internal_error(request: Request, exc: Exception) -> Response:
    from loguru import logger

    logger.opt(exception=exc).error("control API {} {} failed", request.method, request.url.path)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")


class _RejectBrowsers:
    """A browser page must never drive the daemon (DNS rebinding, CSRF): refuse Origin/Referer, as Tailscale does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if b"origin" in headers or b"referer" in headers:
                response = error_response(403, "forbidden", "requests from web pages are refused")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _ndjson(bus: EventBus, since: int | None, heartbeat_s: float) -> AsyncIterator[bytes]:
    """Events as JSON lines; a heartbeat line whenever nothing happened for `heartbeat_s`."""
    send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)

    async def pump() -> None:
        async with send:
            async for event in bus.subscribe(since):
                await send.send(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        try:
            async with receive:
                while True:
                    with anyio.move_on_after(heartbeat_s):
                        try:
                            event = await receive.receive()
                        except anyio.EndOfStream:
                            return
                        yield json.dumps(event, default=str).encode() + b"\n"
                        continue
                    yield json.dumps({"type": "heartbeat", "seq": bus.seq}).encode() + b"\n"
        finally:
            tg.cancel_scope.cancel()


def openapi_spec(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = route.path.replace("{id:int}", "{id}")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = {
                "operationId": f"{route.name}_{method.lower()}",
                "responses": {
                    "200": {"description": "OK, JSON body"},
                    "default": {"description": 'error: {"error": {"code", "message"}}'},
                },
            }
    return {"openapi": "3.1.0", "info": {"title": "shiptrackd control API", "version": __version__}, "paths": paths}


# --- the socket -----------------------------------------------------------------------


class SocketInUseError(ShiptrackError):
    code = "socket_in_use"


def claim_socket_path(path: Path) -> None:
    """
    Make *path* free to bind, or refuse.

    HTTP servers silently unlink whatever sits at the path, so a second daemon would
    steal a live socket. Probe it: if something answers, refuse; if the connection
    is refused (a stale file from a crash), remove it; anything else is not ours.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise SocketInUseError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise SocketInUseError(f"cannot probe {path}: {exc.strerror}") from None
        path.unlink(missing_ok=True)  # stale: nobody is listening
        return
    finally:
        probe.close()
    raise SocketInUseError(f"another shiptrackd is already listening on {path}; refusing to start")


async def serve(
    app: Starlette,
    path: Path,
    mode: int,
    stop: anyio.Event,
    *,
    grace_s: float = 2.0,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* on the Unix socket at *path* until *stop* is set; started() once it accepts connections."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config as HypercornConfig

    claim_socket_path(path)
    cfg = HypercornConfig()
    cfg.bind = [f"unix:{path}"]
    cfg.umask = 0o777 & ~mode  # the socket is never briefly more open than its mode
    cfg.graceful_timeout = grace_s
    cfg.errorlog = logging.getLogger("hypercorn.error")  # a Logger: no duplicate stderr handler
    cfg.accesslog = None
    cfg.keep_alive_timeout = 30
    try:
        async with anyio.create_task_group() as tg:
            # A stub clash, not a bug: hypercorn types ASGI scopes and events as TypedDicts, Starlette as
            # MutableMapping[str, Any], and mypy never passes a TypedDict as a MutableMapping.
            tg.start_soon(lambda: hypercorn_serve(app, cfg, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
            await _wait_listening(path)
            os.chmod(path, mode)
            task_status.started()
    finally:
        path.unlink(missing_ok=True)  # noqa: ASYNC240  (one unlink on the way out; must not be cancelled)


async def _wait_listening(path: Path) -> None:
    with anyio.fail_after(10):
        while True:
            try:
                stream = await anyio.connect_unix(path)
            except OSError:
                await anyio.sleep(0.005)
                continue
            await stream.aclose()
            return
