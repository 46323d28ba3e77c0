"""
Request and response helpers shared by every route module: bodies, query parameters, the error shape.

Routes only parse, call a plain async method and serialise; these helpers make the parsing
strict (a bad parameter is a 400 naming it) and every failure the same JSON shape.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidRequestError, ShiptrackError

Handler = Callable[[Request], Awaitable[Any]]

MAX_BODY_BYTES = 8 * 1024 * 1024  # an import of ~100k shipments; anything bigger is refused


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def read_json(request: Request) -> Any:
    """The request body as JSON, refusing oversize and malformed bodies with a clear 4xx."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLargeError()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLargeError()
    if not body:
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError("body is not valid JSON: nested too deeply") from None


class BodyTooLargeError(ShiptrackError):
    """The body is over MAX_BODY_BYTES: refused before it is read whole."""

    code = "body_too_large"
    http_status = 413

    def __init__(self) -> None:
        super().__init__(f"body larger than {MAX_BODY_BYTES} bytes")


def query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequestError(f"query parameter {name!r} must be an integer, not {raw!r}") from None


def query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise InvalidRequestError(f"query parameter {name!r} must be true or false, not {raw!r}")


def field(body: Any, name: str, kind: type, default: Any) -> Any:
    if not isinstance(body, dict):
        return default
    value = body.get(name, default)
    if value is not None and not isinstance(value, kind):
        raise InvalidRequestError(f"field {name!r} must be {kind.__name__}")
    return value


def json_endpoint(handler: Handler) -> Handler:
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
